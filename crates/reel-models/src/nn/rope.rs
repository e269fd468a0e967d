//! Rotary position embedding over a 3D grid of tokens (frames x height x width), as Wan applies it
//! (diffusers' `WanRotaryPosEmbed` and `apply_rotary_emb` in transformer_wan.py).
//!
//! The head dimension is split into a temporal part and two equal spatial parts; each part rotates
//! its channel pairs (2i, 2i+1) by angles `position / theta^(2i/part)`. Angles are computed in f64
//! and the rotation in f32, as the reference does.

use candle_core::{DType, Device, Result, Tensor};

/// Sizes, in channels, of the (temporal, height, width) parts of a head of `head_dim` channels.
pub fn rope_split(head_dim: usize) -> (usize, usize, usize) {
    let spatial = 2 * (head_dim / 6);
    (head_dim - 2 * spatial, spatial, spatial)
}

#[derive(Debug, Clone)]
pub struct Rope3d {
    /// (tokens, head_dim / 2) f32 each, tokens in frame-major, then row, then column order.
    cos: Tensor,
    sin: Tensor,
}

impl Rope3d {
    pub fn new(head_dim: usize, grid: (usize, usize, usize), theta: f64, device: &Device) -> Result<Self> {
        let (frames, height, width) = grid;
        let parts = rope_split(head_dim);
        let axis_freqs = |dim: usize| -> Vec<f64> {
            (0..dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64)).collect()
        };
        let (ft, fh, fw) = (axis_freqs(parts.0), axis_freqs(parts.1), axis_freqs(parts.2));
        let pairs = head_dim / 2;
        let tokens = frames * height * width;
        let mut cos = Vec::with_capacity(tokens * pairs);
        let mut sin = Vec::with_capacity(tokens * pairs);
        for f in 0..frames {
            for h in 0..height {
                for w in 0..width {
                    let angles = ft.iter().map(|x| x * f as f64)
                        .chain(fh.iter().map(|x| x * h as f64))
                        .chain(fw.iter().map(|x| x * w as f64));
                    for angle in angles {
                        cos.push(angle.cos() as f32);
                        sin.push(angle.sin() as f32);
                    }
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (tokens, pairs), device)?,
            sin: Tensor::from_vec(sin, (tokens, pairs), device)?,
        })
    }

    /// Rotates `x` (batch, heads, tokens, head_dim); the result keeps `x`'s dtype.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let x32 = x.to_dtype(DType::F32)?.contiguous()?;
        let rotated = if x32.track_op() {
            // The fused kernel has no backward pass.
            candle_nn::rotary_emb::rope_i_slow(&x32, &self.cos, &self.sin)?
        } else {
            candle_nn::rotary_emb::rope_i(&x32, &self.cos, &self.sin)?
        };
        rotated.to_dtype(x.dtype())
    }
}
