//! The Wan video VAE: mirrors diffusers' `AutoencoderKLWan` (diffusers 0.42.1,
//! models/autoencoders/autoencoder_kl_wan.py) in both variants: Wan 2.1 (16 latent channels, 8x
//! spatial and 4x temporal compression) and Wan 2.2 (48 channels, residual blocks, 2x2 patches,
//! 16x spatial compression).
//!
//! Video is encoded and decoded chunk by chunk in time (the first frame, then four frames or one
//! latent frame at a time); causal convolutions carry their last frames from one chunk to the next
//! in a [`FrameCache`]. Spatial tiling with blended seams ([`Tiling`]) bounds memory for large
//! frames, exactly as the reference's `enable_tiling` does.

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor, D};
use candle_nn::VarBuilder;

use super::config::WanVaeConfig;
use crate::nn::attention::scaled_dot_product_attention;
use crate::nn::conv::{CausalConv3d, Conv2d};
use crate::weights::ComponentFolder;
use crate::{ModelError, Result};

/// Frames a causal convolution keeps from the previous chunk.
const CACHE_FRAMES: usize = 2;

/// What one causal convolution remembers between chunks (diffusers' `feat_cache` entries).
#[derive(Debug, Clone)]
enum Slot {
    Empty,
    /// The temporal upsampler has seen the first chunk (diffusers' "Rep" marker).
    FirstChunk,
    Frames(Tensor),
}

/// The per-call state of chunked encoding or decoding: one slot per causal convolution, visited in
/// the same order for every chunk.
struct FrameCache {
    slots: Vec<Slot>,
    cursor: usize,
}

impl FrameCache {
    fn new() -> Self {
        Self { slots: Vec::new(), cursor: 0 }
    }

    fn start_chunk(&mut self) {
        self.cursor = 0;
    }

    fn next_slot(&mut self) -> usize {
        if self.cursor == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.cursor += 1;
        self.cursor - 1
    }

    /// The input's last frames, topped up from the previous chunk's when the input is shorter.
    fn frames_to_keep(x: &Tensor, slot: &Slot, pad_first_chunk: bool) -> CandleResult<Tensor> {
        let t = x.dim(2)?;
        let keep = x.narrow(2, t.saturating_sub(CACHE_FRAMES), t.min(CACHE_FRAMES))?;
        if keep.dim(2)? >= CACHE_FRAMES {
            return Ok(keep);
        }
        match slot {
            Slot::Frames(prev) => Tensor::cat(&[&prev.narrow(2, prev.dim(2)? - 1, 1)?, &keep], 2),
            Slot::FirstChunk if pad_first_chunk => Tensor::cat(&[&keep.zeros_like()?, &keep], 2),
            _ => Ok(keep),
        }
    }

    /// A causal convolution of `x` that continues from the previous chunk.
    fn conv(&mut self, conv: &CausalConv3d, x: &Tensor) -> CandleResult<Tensor> {
        let i = self.next_slot();
        let keep = Self::frames_to_keep(x, &self.slots[i], false)?;
        let out = match &self.slots[i] {
            Slot::Frames(prev) => conv.forward(x, Some(prev))?,
            _ => conv.forward(x, None)?,
        };
        self.slots[i] = Slot::Frames(keep);
        Ok(out)
    }
}

/// RMS normalisation over channels (diffusers' `WanRMS_norm`): `x / ||x|| * sqrt(C) * gamma`.
#[derive(Debug, Clone)]
struct ChannelRmsNorm {
    /// Shaped to broadcast over (C, [T,] H, W).
    gamma: Tensor,
    sqrt_dim: f64,
}

impl ChannelRmsNorm {
    /// `spatial_dims`: 3 for video (C, T, H, W), 2 for images (C, H, W).
    fn new(dim: usize, spatial_dims: usize, vb: VarBuilder) -> CandleResult<Self> {
        let shape: Vec<usize> = std::iter::once(dim).chain(std::iter::repeat_n(1, spatial_dims)).collect();
        Ok(Self { gamma: vb.get(shape, "gamma")?, sqrt_dim: (dim as f64).sqrt() })
    }

    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let norm = x32.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        (x32.broadcast_div(&norm)?.to_dtype(dtype)? * self.sqrt_dim)?.broadcast_mul(&self.gamma)
    }
}

/// `WanResidualBlock`: two (norm, SiLU, causal 3x3x3 conv) steps plus a shortcut.
#[derive(Debug, Clone)]
struct ResidualBlock {
    norm1: ChannelRmsNorm,
    conv1: CausalConv3d,
    norm2: ChannelRmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            norm1: ChannelRmsNorm::new(in_dim, 3, vb.pp("norm1"))?,
            conv1: CausalConv3d::cube(in_dim, out_dim, 3, vb.pp("conv1"))?,
            norm2: ChannelRmsNorm::new(out_dim, 3, vb.pp("norm2"))?,
            conv2: CausalConv3d::cube(out_dim, out_dim, 3, vb.pp("conv2"))?,
            shortcut: if in_dim != out_dim {
                Some(CausalConv3d::cube(in_dim, out_dim, 1, vb.pp("conv_shortcut"))?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let h = match &self.shortcut {
            Some(conv) => conv.forward(x, None)?,
            None => x.clone(),
        };
        let y = cache.conv(&self.conv1, &self.norm1.forward(x)?.silu()?)?;
        let y = cache.conv(&self.conv2, &self.norm2.forward(&y)?.silu()?)?;
        y + h
    }
}

/// Applies a 2D layer to every frame of a (B, C, T, H, W) video.
fn per_frame(x: &Tensor, f: impl FnOnce(&Tensor) -> CandleResult<Tensor>) -> CandleResult<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let frames = x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?;
    let y = f(&frames)?;
    let (_, c2, h2, w2) = y.dims4()?;
    y.reshape((b, t, c2, h2, w2))?.permute((0, 2, 1, 3, 4))?.contiguous()
}

/// `WanAttentionBlock`: single-head self-attention over the pixels of each frame.
#[derive(Debug, Clone)]
struct AttentionBlock {
    norm: ChannelRmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    fn new(dim: usize, vb: VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            norm: ChannelRmsNorm::new(dim, 2, vb.pp("norm"))?,
            to_qkv: Conv2d::new(dim, 3 * dim, 1, 1, 0, vb.pp("to_qkv"))?,
            proj: Conv2d::new(dim, dim, 1, 1, 0, vb.pp("proj"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let y = per_frame(x, |frames| {
            let (n, c, h, w) = frames.dims4()?;
            let qkv = self.to_qkv.forward(&self.norm.forward(frames)?)?;
            // (n, 3c, h*w) -> (n, 1, h*w, 3c), as the reference reshapes it.
            let qkv = qkv.reshape((n, 1, 3 * c, h * w))?.transpose(2, 3)?.contiguous()?;
            let q = qkv.narrow(D::Minus1, 0, c)?;
            let k = qkv.narrow(D::Minus1, c, c)?;
            let v = qkv.narrow(D::Minus1, 2 * c, c)?;
            let out = scaled_dot_product_attention(&q, &k, &v)?;
            let out = out.squeeze(1)?.transpose(1, 2)?.reshape((n, c, h, w))?;
            self.proj.forward(&out)
        })?;
        y + x
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResampleMode {
    Upsample2d,
    Upsample3d,
    Downsample2d,
    Downsample3d,
}

/// `WanResample`: 2x spatial up- or downsampling per frame, with 2x temporal resampling in the 3d
/// modes.
#[derive(Debug, Clone)]
struct Resample {
    mode: ResampleMode,
    conv: Conv2d,
    time_conv: Option<CausalConv3d>,
}

impl Resample {
    fn new(dim: usize, mode: ResampleMode, upsample_out_dim: usize, vb: VarBuilder) -> CandleResult<Self> {
        let conv_vb = vb.pp("resample.1");
        let (conv, time_conv) = match mode {
            ResampleMode::Upsample2d => (Conv2d::new(dim, upsample_out_dim, 3, 1, 1, conv_vb)?, None),
            ResampleMode::Upsample3d => (
                Conv2d::new(dim, upsample_out_dim, 3, 1, 1, conv_vb)?,
                Some(CausalConv3d::new(dim, 2 * dim, (3, 1, 1), (1, 1, 1), (1, 0, 0), vb.pp("time_conv"))?),
            ),
            ResampleMode::Downsample2d => (Conv2d::new(dim, dim, 3, 2, 0, conv_vb)?, None),
            ResampleMode::Downsample3d => (
                Conv2d::new(dim, dim, 3, 2, 0, conv_vb)?,
                Some(CausalConv3d::new(dim, dim, (3, 1, 1), (2, 1, 1), (0, 0, 0), vb.pp("time_conv"))?),
            ),
        };
        Ok(Self { mode, conv, time_conv })
    }

    fn forward(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let mut x = x.clone();
        if let (ResampleMode::Upsample3d, Some(time_conv)) = (self.mode, &self.time_conv) {
            x = Self::upsample_time(time_conv, &x, cache)?;
        }
        x = per_frame(&x, |frames| match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                let (_, _, h, w) = frames.dims4()?;
                let up = frames.to_dtype(DType::F32)?.upsample_nearest2d(2 * h, 2 * w)?;
                self.conv.forward(&up.to_dtype(frames.dtype())?)
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => {
                // ZeroPad2d((0, 1, 0, 1)): one column on the right, one row at the bottom.
                self.conv.forward(&frames.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?)
            }
        })?;
        if let (ResampleMode::Downsample3d, Some(time_conv)) = (self.mode, &self.time_conv) {
            x = Self::downsample_time(time_conv, &x, cache)?;
        }
        Ok(x)
    }

    /// Doubles the frames of every chunk after the first (the first frame stands alone).
    fn upsample_time(time_conv: &CausalConv3d, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let i = cache.next_slot();
        if matches!(cache.slots[i], Slot::Empty) {
            cache.slots[i] = Slot::FirstChunk;
            return Ok(x.clone());
        }
        let keep = FrameCache::frames_to_keep(x, &cache.slots[i], true)?;
        let y = match &cache.slots[i] {
            Slot::Frames(prev) => time_conv.forward(x, Some(prev))?,
            _ => time_conv.forward(x, None)?,
        };
        cache.slots[i] = Slot::Frames(keep);
        // (b, 2c, t, h, w): two frames per input frame, interleaved in time.
        let (b, c2, t, h, w) = y.dims5()?;
        y.reshape((b, 2, c2 / 2, t, h, w))?
            .permute((0, 2, 3, 1, 4, 5))?
            .contiguous()?
            .reshape((b, c2 / 2, 2 * t, h, w))
    }

    /// Halves the frames of every chunk after the first, using the previous chunk's last frame.
    fn downsample_time(time_conv: &CausalConv3d, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let i = cache.next_slot();
        let last = x.narrow(2, x.dim(2)? - 1, 1)?;
        let y = match &cache.slots[i] {
            Slot::Frames(prev) => time_conv.forward(&Tensor::cat(&[prev, x], 2)?, None)?,
            _ => x.clone(),
        };
        cache.slots[i] = Slot::Frames(last);
        Ok(y)
    }
}

/// `AvgDown3D`: the parameter-free shortcut of Wan 2.2's down blocks (space/time to channels, then
/// the mean over channel groups).
fn avg_down(x: &Tensor, out_channels: usize, factor_t: usize, factor_s: usize) -> CandleResult<Tensor> {
    let pad_t = (factor_t - x.dim(2)? % factor_t) % factor_t;
    let x = x.pad_with_zeros(2, pad_t, 0)?;
    let (b, c, t, h, w) = x.dims5()?;
    let (tt, hh, ww) = (t / factor_t, h / factor_s, w / factor_s);
    let factor = factor_t * factor_s * factor_s;
    let group = c * factor / out_channels;
    x.reshape(&[b, c, tt, factor_t, hh, factor_s, ww, factor_s][..])?
        .permute(&[0, 1, 3, 5, 7, 2, 4, 6][..])?
        .contiguous()?
        .reshape(&[b, out_channels, group, tt, hh, ww][..])?
        .mean(2)
}

/// `DupUp3D`: the parameter-free shortcut of Wan 2.2's up blocks (channels to space/time).
#[derive(Debug, Clone)]
struct DupUp {
    out_channels: usize,
    factor_t: usize,
    factor_s: usize,
    repeats: usize,
}

impl DupUp {
    fn forward(&self, x: &Tensor, first_chunk: bool) -> CandleResult<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let (ft, fs) = (self.factor_t, self.factor_s);
        // repeat_interleave over channels: each channel `repeats` times in a row.
        let x = x.unsqueeze(2)?.broadcast_as(&[b, c, self.repeats, t, h, w][..])?.contiguous()?;
        let x = x
            .reshape(&[b, self.out_channels, ft, fs, fs, t, h, w][..])?
            .permute(&[0, 1, 5, 2, 6, 3, 7, 4][..])?
            .contiguous()?
            .reshape((b, self.out_channels, t * ft, h * fs, w * fs))?;
        if first_chunk {
            x.narrow(2, ft - 1, t * ft - (ft - 1))
        } else {
            Ok(x)
        }
    }
}

/// `WanMidBlock` with one attention layer: resnet, attention, resnet.
#[derive(Debug, Clone)]
struct MidBlock {
    resnet_in: ResidualBlock,
    attention: AttentionBlock,
    resnet_out: ResidualBlock,
}

impl MidBlock {
    fn new(dim: usize, vb: VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            resnet_in: ResidualBlock::new(dim, dim, vb.pp("resnets.0"))?,
            attention: AttentionBlock::new(dim, vb.pp("attentions.0"))?,
            resnet_out: ResidualBlock::new(dim, dim, vb.pp("resnets.1"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let x = self.resnet_in.forward(x, cache)?;
        let x = self.attention.forward(&x)?;
        self.resnet_out.forward(&x, cache)
    }
}

/// One entry of the encoder's `down_blocks`.
#[derive(Debug, Clone)]
enum DownLayer {
    Residual(ResidualBlock),
    Attention(AttentionBlock),
    Resample(Resample),
    /// Wan 2.2's `WanResidualDownBlock`: resnets, optional downsampler, plus the averaging shortcut.
    ResidualDown { resnets: Vec<ResidualBlock>, downsampler: Option<Resample>, out_dim: usize, factor_t: usize, factor_s: usize },
}

impl DownLayer {
    fn forward(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        match self {
            Self::Residual(block) => block.forward(x, cache),
            Self::Attention(block) => block.forward(x),
            Self::Resample(resample) => resample.forward(x, cache),
            Self::ResidualDown { resnets, downsampler, out_dim, factor_t, factor_s } => {
                let mut y = x.clone();
                for resnet in resnets {
                    y = resnet.forward(&y, cache)?;
                }
                if let Some(down) = downsampler {
                    y = down.forward(&y, cache)?;
                }
                y + avg_down(x, *out_dim, *factor_t, *factor_s)?
            }
        }
    }
}

/// The start and end of both halves: a causal 3x3x3 convolution in, RMS norm + SiLU + convolution out.
#[derive(Debug, Clone)]
struct Ends {
    conv_in: CausalConv3d,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Ends {
    fn new(c_in: usize, first: usize, last: usize, c_out: usize, vb: &VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            conv_in: CausalConv3d::cube(c_in, first, 3, vb.pp("conv_in"))?,
            norm_out: ChannelRmsNorm::new(last, 3, vb.pp("norm_out"))?,
            conv_out: CausalConv3d::cube(last, c_out, 3, vb.pp("conv_out"))?,
        })
    }

    fn finish(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        cache.conv(&self.conv_out, &self.norm_out.forward(x)?.silu()?)
    }
}

/// `WanEncoder3d`.
#[derive(Debug, Clone)]
struct Encoder {
    ends: Ends,
    down: Vec<DownLayer>,
    mid: MidBlock,
}

impl Encoder {
    fn new(config: &WanVaeConfig, vb: VarBuilder) -> CandleResult<Self> {
        let dim = config.base_dim;
        let dims: Vec<usize> = std::iter::once(1).chain(config.dim_mult.iter().copied()).map(|m| m * dim).collect();
        let levels = config.dim_mult.len();
        let mut down = Vec::new();
        let mut scale = 1.0;
        for i in 0..levels {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            let last = i == levels - 1;
            let temporal = !last && config.temperal_downsample[i];
            let mode = if temporal { ResampleMode::Downsample3d } else { ResampleMode::Downsample2d };
            let block_vb = vb.pp(format!("down_blocks.{}", down.len()));
            if config.is_residual {
                let resnets = (0..config.num_res_blocks)
                    .map(|j| ResidualBlock::new(if j == 0 { in_dim } else { out_dim }, out_dim, block_vb.pp(format!("resnets.{j}"))))
                    .collect::<CandleResult<Vec<_>>>()?;
                let downsampler = if last { None } else { Some(Resample::new(out_dim, mode, out_dim, block_vb.pp("downsampler"))?) };
                down.push(DownLayer::ResidualDown {
                    resnets,
                    downsampler,
                    out_dim,
                    factor_t: if temporal { 2 } else { 1 },
                    factor_s: if last { 1 } else { 2 },
                });
                continue;
            }
            for _ in 0..config.num_res_blocks {
                down.push(DownLayer::Residual(ResidualBlock::new(in_dim, out_dim, vb.pp(format!("down_blocks.{}", down.len())))?));
                if config.attn_scales.contains(&scale) {
                    down.push(DownLayer::Attention(AttentionBlock::new(out_dim, vb.pp(format!("down_blocks.{}", down.len())))?));
                }
                in_dim = out_dim;
            }
            if !last {
                down.push(DownLayer::Resample(Resample::new(out_dim, mode, out_dim, vb.pp(format!("down_blocks.{}", down.len())))?));
                scale /= 2.0;
            }
        }
        let top = dims[levels];
        Ok(Self {
            ends: Ends::new(config.in_channels, dims[0], top, 2 * config.z_dim, &vb)?,
            down,
            mid: MidBlock::new(top, vb.pp("mid_block"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FrameCache) -> CandleResult<Tensor> {
        let mut x = cache.conv(&self.ends.conv_in, x)?;
        for layer in &self.down {
            x = layer.forward(&x, cache)?;
        }
        let x = self.mid.forward(&x, cache)?;
        self.ends.finish(&x, cache)
    }
}

/// One of the decoder's `up_blocks`: `WanUpBlock` (Wan 2.1) or `WanResidualUpBlock` (Wan 2.2).
#[derive(Debug, Clone)]
struct UpBlock {
    resnets: Vec<ResidualBlock>,
    upsampler: Option<Resample>,
    shortcut: Option<DupUp>,
}

impl UpBlock {
    fn forward(&self, x: &Tensor, cache: &mut FrameCache, first_chunk: bool) -> CandleResult<Tensor> {
        let mut y = x.clone();
        for resnet in &self.resnets {
            y = resnet.forward(&y, cache)?;
        }
        if let Some(up) = &self.upsampler {
            y = up.forward(&y, cache)?;
        }
        match &self.shortcut {
            Some(dup) => y + dup.forward(x, first_chunk)?,
            None => Ok(y),
        }
    }
}

/// `WanDecoder3d`.
#[derive(Debug, Clone)]
struct Decoder {
    ends: Ends,
    mid: MidBlock,
    up: Vec<UpBlock>,
}

impl Decoder {
    fn new(config: &WanVaeConfig, vb: VarBuilder) -> CandleResult<Self> {
        let dim = config.decoder_base_dim();
        let mults: Vec<usize> = std::iter::once(*config.dim_mult.last().expect("validated"))
            .chain(config.dim_mult.iter().rev().copied())
            .collect();
        let dims: Vec<usize> = mults.iter().map(|m| m * dim).collect();
        let levels = config.dim_mult.len();
        let temporal_upsample: Vec<bool> = config.temperal_downsample.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(levels);
        for i in 0..levels {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if i > 0 && !config.is_residual {
                in_dim /= 2;
            }
            let up_flag = i != levels - 1;
            let temporal = up_flag && temporal_upsample[i];
            let mode = if temporal { ResampleMode::Upsample3d } else { ResampleMode::Upsample2d };
            let block_vb = vb.pp(format!("up_blocks.{i}"));
            let resnets = (0..=config.num_res_blocks)
                .map(|j| ResidualBlock::new(if j == 0 { in_dim } else { out_dim }, out_dim, block_vb.pp(format!("resnets.{j}"))))
                .collect::<CandleResult<Vec<_>>>()?;
            let block = if config.is_residual {
                let factor_t = if temporal { 2 } else { 1 };
                UpBlock {
                    resnets,
                    upsampler: if up_flag { Some(Resample::new(out_dim, mode, out_dim, block_vb.pp("upsampler"))?) } else { None },
                    shortcut: up_flag.then(|| DupUp {
                        out_channels: out_dim,
                        factor_t,
                        factor_s: 2,
                        repeats: out_dim * factor_t * 4 / in_dim,
                    }),
                }
            } else {
                UpBlock {
                    resnets,
                    upsampler: if up_flag { Some(Resample::new(out_dim, mode, out_dim / 2, block_vb.pp("upsamplers.0"))?) } else { None },
                    shortcut: None,
                }
            };
            up.push(block);
        }
        Ok(Self {
            ends: Ends::new(config.z_dim, dims[0], dims[levels], config.out_channels, &vb)?,
            mid: MidBlock::new(dims[0], vb.pp("mid_block"))?,
            up,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FrameCache, first_chunk: bool) -> CandleResult<Tensor> {
        let x = cache.conv(&self.ends.conv_in, x)?;
        let mut x = self.mid.forward(&x, cache)?;
        for block in &self.up {
            x = block.forward(&x, cache, first_chunk)?;
        }
        self.ends.finish(&x, cache)
    }
}

/// Spatial tiling: tiles of `tile` pixels (height, width) every `stride` pixels, blended over the
/// overlap (diffusers' `enable_tiling` parameters; its defaults are 256 and 192).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub tile: (usize, usize),
    pub stride: (usize, usize),
}

impl Default for Tiling {
    fn default() -> Self {
        Self { tile: (256, 256), stride: (192, 192) }
    }
}

/// The encoder's output distribution over latents.
#[derive(Debug, Clone)]
pub struct LatentDistribution {
    pub mean: Tensor,
    /// Clamped to [-30, 20] as in the reference.
    pub logvar: Tensor,
}

/// The Wan VAE (`AutoencoderKLWan`).
#[derive(Debug, Clone)]
pub struct WanVae {
    config: WanVaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: CausalConv3d,
    post_quant_conv: CausalConv3d,
    dtype: DType,
}

impl WanVae {
    pub fn new(config: &WanVaeConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let z = config.z_dim;
        Ok(Self {
            encoder: Encoder::new(config, vb.pp("encoder"))?,
            decoder: Decoder::new(config, vb.pp("decoder"))?,
            quant_conv: CausalConv3d::cube(2 * z, 2 * z, 1, vb.pp("quant_conv"))?,
            post_quant_conv: CausalConv3d::cube(z, z, 1, vb.pp("post_quant_conv"))?,
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// Loads a `vae/` folder in the diffusers layout.
    pub fn load(folder: &ComponentFolder, dtype: DType, device: &Device) -> Result<Self> {
        let config: WanVaeConfig = folder.config()?;
        config.validate().map_err(|e| {
            ModelError::Unsupported(format!("{}: {e}", folder.dir().join("config.json").display()))
        })?;
        let weights = folder.weights(dtype, device)?;
        let model = Self::new(&config, weights.var_builder())?;
        weights.finish(&[])?;
        Ok(model)
    }

    pub fn config(&self) -> &WanVaeConfig {
        &self.config
    }

    /// Pixel-space size of one latent pixel after unpatchifying (8 for Wan 2.1, 16 for Wan 2.2).
    fn spatial(&self) -> usize {
        self.config.scale_factor_spatial
    }

    /// Encodes video (batch, 3, frames, height, width) in [-1, 1]; frames must be 4k+1 and the size
    /// a multiple of the spatial compression.
    pub fn encode(&self, video: &Tensor, tiling: Option<Tiling>) -> Result<LatentDistribution> {
        let (_, c, t, h, w) = video.dims5()?;
        let s = self.spatial();
        if c != 3 || (t - 1) % self.config.scale_factor_temporal != 0 || h % s != 0 || w % s != 0 {
            return Err(ModelError::InvalidInput(format!(
                "cannot encode video of {c} channels, {t} frames, {h}x{w}: expected 3 channels, \
                 {}k+1 frames and a size that is a multiple of {s}",
                self.config.scale_factor_temporal
            )));
        }
        let x = patchify(&video.to_dtype(self.dtype)?, self.config.patch())?;
        let tiled = tiling.filter(|t| w > t.tile.1 || h > t.tile.0);
        let moments = match tiled {
            Some(tiling) => self.encode_tiled(&x, tiling)?,
            None => self.quant_conv.forward(&self.encode_chunks(&x)?, None)?,
        };
        let z = self.config.z_dim;
        Ok(LatentDistribution {
            mean: moments.narrow(1, 0, z)?,
            logvar: moments.narrow(1, z, z)?.clamp(-30f32, 20f32)?,
        })
    }

    /// The encoder over time: the first frame alone, then four frames at a time.
    fn encode_chunks(&self, x: &Tensor) -> CandleResult<Tensor> {
        let t = x.dim(2)?;
        let mut cache = FrameCache::new();
        let mut outputs = Vec::with_capacity(1 + (t - 1) / 4);
        for i in 0..1 + (t - 1) / 4 {
            cache.start_chunk();
            let chunk = if i == 0 { x.narrow(2, 0, 1)? } else { x.narrow(2, 1 + 4 * (i - 1), 4)? };
            outputs.push(self.encoder.forward(&chunk, &mut cache)?);
        }
        Tensor::cat(&outputs, 2)
    }

    /// Decodes latents (batch, z_dim, frames, height, width) to video in [-1, 1].
    pub fn decode(&self, latents: &Tensor, tiling: Option<Tiling>) -> Result<Tensor> {
        self.decode_with_progress(latents, tiling, &mut |_, _| {})
    }

    /// [`WanVae::decode`], calling `on_chunk(done, total)` after each latent frame of each tile.
    pub fn decode_with_progress(
        &self,
        latents: &Tensor,
        tiling: Option<Tiling>,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        Ok(self.decode_unclamped(latents, tiling, on_chunk)?.clamp(-1f32, 1f32)?)
    }

    /// The decoder's output before the final clamp to [-1, 1]. Training needs it: a clamped output
    /// has no gradient where it saturates.
    pub fn decode_unclamped(
        &self,
        latents: &Tensor,
        tiling: Option<Tiling>,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        let (_, z, _, h, w) = latents.dims5()?;
        if z != self.config.z_dim {
            return Err(ModelError::InvalidInput(format!(
                "latents have {z} channels but the VAE expects {}",
                self.config.z_dim
            )));
        }
        let latents = latents.to_dtype(self.dtype)?;
        let s = self.spatial();
        let tiled = tiling.filter(|t| w > t.tile.1 / s || h > t.tile.0 / s);
        let video = match tiled {
            Some(tiling) => self.decode_tiled(&latents, tiling, on_chunk)?,
            None => {
                let mut progress = ChunkProgress { done: 0, total: latents.dim(2)?, report: on_chunk };
                self.decode_chunks(&self.post_quant_conv.forward(&latents, None)?, true, &mut progress)?
            }
        };
        Ok(unpatchify(&video, self.config.patch())?)
    }

    /// The decoder over time, one latent frame at a time; `post_quant` says whether the latents
    /// have already been through `post_quant_conv` (tiles go through it chunk by chunk).
    fn decode_chunks(&self, z: &Tensor, post_quant_done: bool, progress: &mut ChunkProgress) -> CandleResult<Tensor> {
        let mut cache = FrameCache::new();
        let frames = z.dim(2)?;
        let mut outputs = Vec::with_capacity(frames);
        for i in 0..frames {
            cache.start_chunk();
            let mut chunk = z.narrow(2, i, 1)?;
            if !post_quant_done {
                chunk = self.post_quant_conv.forward(&chunk, None)?;
            }
            outputs.push(self.decoder.forward(&chunk, &mut cache, i == 0)?);
            progress.advance();
        }
        Tensor::cat(&outputs, 2)
    }

    /// diffusers' `tiled_decode`: overlapping latent tiles decoded separately, blended, cropped.
    fn decode_tiled(&self, z: &Tensor, tiling: Tiling, on_chunk: &mut dyn FnMut(usize, usize)) -> CandleResult<Tensor> {
        let (_, _, frames, height, width) = z.dims5()?;
        let s = self.spatial();
        let p = self.config.patch();
        let tile_latent = (tiling.tile.0 / s, tiling.tile.1 / s);
        let stride_latent = (tiling.stride.0 / s, tiling.stride.1 / s);
        let stride_sample = (tiling.stride.0 / p, tiling.stride.1 / p);
        let blend = (tiling.tile.0 / p - stride_sample.0, tiling.tile.1 / p - stride_sample.1);
        let sample_size = (height * s / p, width * s / p);
        let tile_count = height.div_ceil(stride_latent.0) * width.div_ceil(stride_latent.1);
        let mut progress = ChunkProgress { done: 0, total: tile_count * frames, report: on_chunk };
        let tiles = grid(height, width, stride_latent, |i, j| {
            let tile = z
                .narrow(3, i, tile_latent.0.min(height - i))?
                .narrow(4, j, tile_latent.1.min(width - j))?;
            self.decode_chunks(&tile, false, &mut progress)
        })?;
        stitch(tiles, blend, stride_sample, sample_size)
    }

    /// diffusers' `tiled_encode`, on the patchified video: overlapping tiles (sizes in the
    /// patchified tensor's pixels, as the reference indexes it) encoded separately, blended, cropped.
    fn encode_tiled(&self, x: &Tensor, tiling: Tiling) -> CandleResult<Tensor> {
        let (_, _, t, height, width) = x.dims5()?;
        let ratio = self.spatial() / self.config.patch();
        let tile_latent = (tiling.tile.0 / ratio, tiling.tile.1 / ratio);
        let stride_latent = (tiling.stride.0 / ratio, tiling.stride.1 / ratio);
        let blend = (tile_latent.0 - stride_latent.0, tile_latent.1 - stride_latent.1);
        let tiles = grid(height, width, tiling.stride, |i, j| {
            let tile = x
                .narrow(3, i, tiling.tile.0.min(height - i))?
                .narrow(4, j, tiling.tile.1.min(width - j))?;
            let mut cache = FrameCache::new();
            let mut chunks = Vec::new();
            for k in 0..1 + (t - 1) / 4 {
                cache.start_chunk();
                let frames = if k == 0 { tile.narrow(2, 0, 1)? } else { tile.narrow(2, 1 + 4 * (k - 1), 4)? };
                let encoded = self.encoder.forward(&frames, &mut cache)?;
                chunks.push(self.quant_conv.forward(&encoded, None)?);
            }
            Tensor::cat(&chunks, 2)
        })?;
        stitch(tiles, blend, stride_latent, (height / ratio, width / ratio))
    }

    /// Latents as the sampler produces them -> latents the VAE decodes: `z / (1 / std) + mean`.
    pub fn denormalize(&self, latents: &Tensor) -> Result<Tensor> {
        let (mean, inv_std) = self.normalization(latents)?;
        Ok(latents.broadcast_div(&inv_std)?.broadcast_add(&mean)?)
    }

    /// Encoder means -> latents on the sampler's scale: `(z - mean) * (1 / std)`.
    pub fn normalize(&self, latents: &Tensor) -> Result<Tensor> {
        let (mean, inv_std) = self.normalization(latents)?;
        Ok(latents.broadcast_sub(&mean)?.broadcast_mul(&inv_std)?)
    }

    fn normalization(&self, like: &Tensor) -> Result<(Tensor, Tensor)> {
        let z = self.config.z_dim;
        let mean: Vec<f32> = self.config.latents_mean.iter().map(|v| *v as f32).collect();
        let inv_std: Vec<f32> = self.config.latents_std.iter().map(|v| 1.0 / *v as f32).collect();
        let shape = (1, z, 1, 1, 1);
        let device = like.device();
        Ok((
            Tensor::from_vec(mean, shape, device)?.to_dtype(like.dtype())?,
            Tensor::from_vec(inv_std, shape, device)?.to_dtype(like.dtype())?,
        ))
    }
}

/// Counts decoded chunks for a progress callback.
struct ChunkProgress<'a> {
    done: usize,
    total: usize,
    report: &'a mut dyn FnMut(usize, usize),
}

impl ChunkProgress<'_> {
    fn advance(&mut self) {
        self.done += 1;
        (self.report)(self.done, self.total);
    }
}

/// Runs `f` on the tile starting at each (row, column) of a `stride` grid over `height` x `width`.
fn grid(
    height: usize,
    width: usize,
    stride: (usize, usize),
    mut f: impl FnMut(usize, usize) -> CandleResult<Tensor>,
) -> CandleResult<Vec<Vec<Tensor>>> {
    (0..height)
        .step_by(stride.0)
        .map(|i| (0..width).step_by(stride.1).map(|j| f(i, j)).collect())
        .collect()
}

/// Blends each tile into its upper and left neighbours (in order, as the reference does it in
/// place), keeps `keep` pixels of each, and crops the stitched result to `size`.
fn stitch(mut tiles: Vec<Vec<Tensor>>, blend: (usize, usize), keep: (usize, usize), size: (usize, usize)) -> CandleResult<Tensor> {
    let mut rows = Vec::with_capacity(tiles.len());
    for i in 0..tiles.len() {
        let mut row = Vec::with_capacity(tiles[i].len());
        for j in 0..tiles[i].len() {
            let mut tile = tiles[i][j].clone();
            if i > 0 {
                tile = blend_edge(&tiles[i - 1][j], &tile, blend.0, 3)?;
            }
            if j > 0 {
                tile = blend_edge(&tiles[i][j - 1], &tile, blend.1, 4)?;
            }
            tiles[i][j] = tile.clone();
            let h = keep.0.min(tile.dim(3)?);
            let w = keep.1.min(tile.dim(4)?);
            row.push(tile.narrow(3, 0, h)?.narrow(4, 0, w)?);
        }
        rows.push(Tensor::cat(&row, 4)?);
    }
    let stitched = Tensor::cat(&rows, 3)?;
    stitched.narrow(3, 0, size.0.min(stitched.dim(3)?))?.narrow(4, 0, size.1.min(stitched.dim(4)?))
}

/// diffusers' `blend_v` (dim 3) / `blend_h` (dim 4): the first `extent` rows or columns of `b` fade
/// in from the last `extent` of `a`.
fn blend_edge(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> CandleResult<Tensor> {
    let extent = extent.min(a.dim(dim)?).min(b.dim(dim)?);
    if extent == 0 {
        return Ok(b.clone());
    }
    let mut shape = vec![1; 5];
    shape[dim] = extent;
    let ramp: Vec<f32> = (0..extent).map(|y| (y as f64 / extent as f64) as f32).collect();
    let fade: Vec<f32> = (0..extent).map(|y| (1.0 - y as f64 / extent as f64) as f32).collect();
    let device = b.device();
    let ramp = Tensor::from_vec(ramp, shape.as_slice(), device)?.to_dtype(b.dtype())?;
    let fade = Tensor::from_vec(fade, shape.as_slice(), device)?.to_dtype(b.dtype())?;
    let a_end = a.narrow(dim, a.dim(dim)? - extent, extent)?;
    let b_start = b.narrow(dim, 0, extent)?;
    let blended = (a_end.broadcast_mul(&fade)? + b_start.broadcast_mul(&ramp)?)?;
    let rest = b.narrow(dim, extent, b.dim(dim)? - extent)?;
    Tensor::cat(&[&blended, &rest], dim)
}

/// Wan 2.2's input patching: (B, C, T, H, W) -> (B, C*p*p, T, H/p, W/p), channels ordered
/// (C, column offset, row offset) as the reference orders them.
fn patchify(x: &Tensor, p: usize) -> CandleResult<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, c, t, h, w) = x.dims5()?;
    x.reshape(&[b, c, t, h / p, p, w / p, p][..])?
        .permute(&[0, 1, 6, 4, 2, 3, 5][..])?
        .contiguous()?
        .reshape((b, c * p * p, t, h / p, w / p))
}

/// Inverse of [`patchify`].
fn unpatchify(x: &Tensor, p: usize) -> CandleResult<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, cp, t, h, w) = x.dims5()?;
    let c = cp / (p * p);
    x.reshape(&[b, c, p, p, t, h, w][..])?
        .permute(&[0, 1, 4, 5, 3, 6, 2][..])?
        .contiguous()?
        .reshape((b, c, t, h * p, w * p))
}
