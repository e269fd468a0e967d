//! Convolutions for video models. On the CPU in f32 (outside training) they run on reel's
//! patch-matrix kernel ([`crate::kernels::conv`]). Elsewhere, candle having 2D convolutions only,
//! a 3D convolution is the sum, over its temporal taps, of one batched 2D convolution of all the
//! frames that tap sees; that path runs on every device candle supports and has gradients.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::kernels::{self, conv::ConvGeometry};

/// (frames, height, width).
pub type Triple = (usize, usize, usize);

/// `nn.Conv2d` with a square kernel, stride and symmetric padding, from `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_out, c_in, kernel, kernel), "weight")?,
            bias: vb.get(c_out, "bias")?,
            stride,
            padding,
        })
    }
}

impl Module for Conv2d {
    /// (batch, channels, height, width) -> (batch, c_out, height', width')
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if kernels::use_cpu_conv(x, &self.weight) {
            let k = self.weight.dim(2)?;
            let geometry = ConvGeometry { kernel: (1, k, k), stride: (1, self.stride), padding: (self.padding, self.padding) };
            return kernels::conv::conv3d(&x.unsqueeze(2)?, &self.weight.unsqueeze(2)?, &self.bias, geometry)?.squeeze(2);
        }
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

/// `nn.Conv3d` without temporal padding (callers pad in time, as causal convolutions need).
#[derive(Debug, Clone)]
pub struct Conv3d {
    /// (c_out, c_in, kt, kh, kw), sliced into one 2D kernel per temporal tap at each call (slices
    /// made once would be copies that training could not update).
    weight: Tensor,
    bias: Tensor,
    stride: Triple,
    /// Spatial zero padding (height, width).
    padding: (usize, usize),
}

impl Conv3d {
    pub fn new(c_in: usize, c_out: usize, kernel: Triple, stride: Triple, padding: (usize, usize), vb: VarBuilder) -> Result<Self> {
        if stride.1 != stride.2 {
            candle_core::bail!("conv3d needs equal height and width strides, got {stride:?}");
        }
        let (kt, kh, kw) = kernel;
        let weight = vb.get((c_out, c_in, kt, kh, kw), "weight")?;
        Ok(Self { weight, bias: vb.get(c_out, "bias")?, stride, padding })
    }

    pub fn kernel_frames(&self) -> usize {
        self.weight.dims()[2]
    }

    /// (batch, c_in, frames, height, width) -> (batch, c_out, frames', height', width')
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, _, _) = x.dims5()?;
        let (st, stride, _) = self.stride;
        let kt = self.kernel_frames();
        if t < kt {
            candle_core::bail!("conv3d needs at least {kt} frames, got {t}");
        }
        if kernels::use_cpu_conv(x, &self.weight) {
            let (_, _, _, kh, kw) = self.weight.dims5()?;
            let geometry = ConvGeometry { kernel: (kt, kh, kw), stride: (st, stride), padding: self.padding };
            return kernels::conv::conv3d(x, &self.weight, &self.bias, geometry);
        }
        let t_out = (t - kt) / st + 1;
        // Frames first, so that the frames each tap sees form one batch of images.
        let mut frames = x.permute((0, 2, 1, 3, 4))?;
        let (ph, pw) = self.padding;
        let conv_padding = if ph == pw {
            ph
        } else {
            frames = frames.pad_with_zeros(3, ph, ph)?.pad_with_zeros(4, pw, pw)?;
            0
        };
        let (h, w) = (frames.dim(3)?, frames.dim(4)?);
        let mut sum: Option<Tensor> = None;
        for k in 0..kt {
            let kernel = self.weight.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
            let seen = if st == 1 {
                frames.narrow(1, k, t_out)?
            } else {
                let picked = (0..t_out).map(|i| frames.narrow(1, k + i * st, 1)).collect::<Result<Vec<_>>>()?;
                Tensor::cat(&picked, 1)?
            };
            let images = seen.contiguous()?.reshape((b * t_out, c, h, w))?;
            let y = images.conv2d(&kernel, conv_padding, stride, 1, 1)?;
            sum = Some(match sum {
                None => y,
                Some(total) => (total + y)?,
            });
        }
        let y = sum.expect("at least one tap");
        let (_, c_out, h_out, w_out) = y.dims4()?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?
            .reshape((b, t_out, c_out, h_out, w_out))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()
    }
}

/// A causal 3D convolution (diffusers' `WanCausalConv3d`): all temporal padding goes before the
/// first frame, and frames kept from the previous chunk can stand in for it, so a video can be
/// processed chunk by chunk with the same result as all at once.
#[derive(Debug, Clone)]
pub struct CausalConv3d {
    conv: Conv3d,
    /// Frames of zero padding before the input when no earlier frames are given.
    time_padding: usize,
}

impl CausalConv3d {
    /// `padding` as in `nn.Conv3d` (frames, height, width); the temporal part is doubled and moved
    /// to the front.
    pub fn new(c_in: usize, c_out: usize, kernel: Triple, stride: Triple, padding: Triple, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv3d::new(c_in, c_out, kernel, stride, (padding.1, padding.2), vb)?,
            time_padding: 2 * padding.0,
        })
    }

    /// A cube kernel of `k` with "same" spatial padding (k / 2) and unit stride.
    pub fn cube(c_in: usize, c_out: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(c_in, c_out, (k, k, k), (1, 1, 1), (k / 2, k / 2, k / 2), vb)
    }

    /// `earlier`: the last frames of the previous chunk's input, replacing as much padding.
    pub fn forward(&self, x: &Tensor, earlier: Option<&Tensor>) -> Result<Tensor> {
        let mut padding = self.time_padding;
        let mut x = x.clone();
        if let (Some(earlier), true) = (earlier, self.time_padding > 0) {
            padding = padding.saturating_sub(earlier.dim(2)?);
            x = Tensor::cat(&[earlier, &x], 2)?;
        }
        if padding > 0 {
            x = x.pad_with_zeros(2, padding, 0)?;
        }
        self.conv.forward(&x)
    }
}
