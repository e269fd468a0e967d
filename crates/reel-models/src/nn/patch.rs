//! Patch embedding of video latents and its inverse. A 3D convolution whose kernel equals its stride
//! (Wan's `patch_embedding`) is a matrix product over non-overlapping patches: it is computed as one.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::linear::Linear;

/// (pt, ph, pw): the patch size in frames, rows and columns.
pub type PatchSize = (usize, usize, usize);

/// `nn.Conv3d(in, out, kernel_size=patch, stride=patch)` with its checkpoint weights
/// `weight` (out, in, pt, ph, pw) and `bias` (out).
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
    patch: PatchSize,
}

impl PatchEmbed {
    pub fn new(in_channels: usize, out_channels: usize, patch: PatchSize, vb: VarBuilder) -> Result<Self> {
        let (pt, ph, pw) = patch;
        let weight = vb.get((out_channels, in_channels, pt, ph, pw), "weight")?;
        let weight = weight.reshape((out_channels, in_channels * pt * ph * pw))?;
        let bias = vb.get(out_channels, "bias")?;
        Ok(Self { proj: Linear::new(weight, Some(bias))?, patch })
    }

    /// `nn.Conv2d(in, out, kernel_size=patch, stride=patch, bias=False)` over images (CLIP's patch
    /// embedding), with its `weight` (out, in, patch, patch): a one-frame 3D patch embedding, so its
    /// `forward` takes (batch, channels, 1, height, width).
    pub fn image_without_bias(in_channels: usize, out_channels: usize, patch: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_channels, in_channels, patch, patch), "weight")?;
        let weight = weight.reshape((out_channels, in_channels * patch * patch))?;
        Ok(Self { proj: Linear::new(weight, None)?, patch: (1, patch, patch) })
    }

    /// (batch, channels, frames, height, width) -> (batch, tokens, out_channels), tokens in
    /// frame-major order as the reference's `flatten(2).transpose(1, 2)` gives them.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, f, h, w) = x.dims5()?;
        let (pt, ph, pw) = self.patch;
        let (gf, gh, gw) = (f / pt, h / ph, w / pw);
        let patches = x
            .reshape(&[b, c, gf, pt, gh, ph, gw, pw][..])?
            .permute(&[0, 2, 4, 6, 1, 3, 5, 7][..])?
            .reshape((b, gf * gh * gw, c * pt * ph * pw))?;
        self.proj.forward(&patches)
    }
}

/// Inverse of the patch layout of Wan's `proj_out`: (batch, tokens, pt*ph*pw*channels) with the
/// channel fastest -> (batch, channels, frames, height, width).
pub fn unpatchify(x: &Tensor, grid: (usize, usize, usize), patch: PatchSize, channels: usize) -> Result<Tensor> {
    let b = x.dim(0)?;
    let (gf, gh, gw) = grid;
    let (pt, ph, pw) = patch;
    x.reshape(&[b, gf, gh, gw, pt, ph, pw, channels][..])?
        .permute(&[0, 7, 1, 4, 2, 5, 3, 6][..])?
        .reshape((b, channels, gf * pt, gh * ph, gw * pw))
}
