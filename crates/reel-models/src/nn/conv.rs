//! Convolutions for video models. On the CPU in f32 (outside training) they run on reel's
//! patch-matrix kernel ([`crate::kernels::conv`]); in training on the CPU, as a matrix product
//! with a differentiable patch matrix ([`crate::kernels::patches`]). Elsewhere, candle having 2D
//! convolutions only, a 3D convolution is the sum, over its temporal taps, of one batched 2D
//! convolution of all the frames that tap sees; that path runs on every device candle supports.

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
        if kernels::use_cpu_patches(x, &self.weight) {
            let k = self.weight.dim(2)?;
            let geometry = ConvGeometry { kernel: (1, k, k), stride: (1, self.stride), padding: (self.padding, self.padding) };
            return conv3d_by_patches(&x.unsqueeze(2)?, &self.weight.unsqueeze(2)?, &self.bias, geometry)?.squeeze(2);
        }
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

/// `nn.Conv3d` without temporal padding (callers pad in time, as causal convolutions need).
#[derive(Debug, Clone)]
pub struct Conv3d {
    /// (c_out, c_in, kt, kh, kw)
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
        let t = x.dim(2)?;
        let (_, _, kt, kh, kw) = self.weight.dims5()?;
        if t < kt {
            candle_core::bail!("conv3d needs at least {kt} frames, got {t}");
        }
        let geometry = ConvGeometry { kernel: (kt, kh, kw), stride: (self.stride.0, self.stride.1), padding: self.padding };
        if kernels::use_cpu_conv(x, &self.weight) {
            kernels::conv::conv3d(x, &self.weight, &self.bias, geometry)
        } else if kernels::use_cpu_patches(x, &self.weight) {
            conv3d_by_patches(x, &self.weight, &self.bias, geometry)
        } else {
            conv3d_by_taps(x, &self.weight, &self.bias, geometry)
        }
    }
}

/// The convolution as the sum, over temporal taps, of one batched candle conv2d of the frames
/// each tap sees.
fn conv3d_by_taps(x: &Tensor, weight: &Tensor, bias: &Tensor, geometry: ConvGeometry) -> Result<Tensor> {
    let (b, c, t, _, _) = x.dims5()?;
    let ConvGeometry { kernel: (kt, _, _), stride: (st, stride), padding: (ph, pw) } = geometry;
    let t_out = (t - kt) / st + 1;
    // Frames first, so that the frames each tap sees form one batch of images.
    let mut frames = x.permute((0, 2, 1, 3, 4))?;
    let conv_padding = if ph == pw {
        ph
    } else {
        frames = frames.pad_with_zeros(3, ph, ph)?.pad_with_zeros(4, pw, pw)?;
        0
    };
    let (h, w) = (frames.dim(3)?, frames.dim(4)?);
    let mut sum: Option<Tensor> = None;
    for k in 0..kt {
        // Sliced at each call: slices made once would be copies that training could not update.
        let kernel = weight.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
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
    y.broadcast_add(&bias.reshape((1, (), 1, 1))?)?.reshape((b, t_out, c_out, h_out, w_out))?.permute((0, 2, 1, 3, 4))?.contiguous()
}

/// The convolution as one matrix product `W (c_out, c_in·kt·kh·kw) · patches` over the
/// differentiable patch matrix of [`kernels::patches`]: for training on the CPU.
fn conv3d_by_patches(x: &Tensor, weight: &Tensor, bias: &Tensor, geometry: ConvGeometry) -> Result<Tensor> {
    let (b, _, _, _, _) = x.dims5()?;
    let c_out = weight.dim(0)?;
    let (patches, (t_out, h_out, w_out)) = kernels::patches::patches(&x.contiguous()?, geometry)?;
    let y = weight.reshape((c_out, ()))?.matmul(&patches)?.broadcast_add(&bias.unsqueeze(1)?)?;
    // Columns are in (batch, t', h', w') order.
    y.reshape((c_out, b, t_out, h_out, w_out))?.transpose(0, 1)?.contiguous()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::relative_error;
    use candle_core::{Device, Var};

    /// Output and gradients (input, weight, bias) of a convolution of random tensors under a
    /// random linear loss.
    fn with_gradients(
        conv: fn(&Tensor, &Tensor, &Tensor, ConvGeometry) -> Result<Tensor>,
        inputs: &[Tensor; 4],
        geometry: ConvGeometry,
    ) -> Result<Vec<Tensor>> {
        let vars = inputs[..3].iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
        let y = conv(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor(), geometry)?;
        let grads = (&y * &inputs[3])?.sum_all()?.backward()?;
        let mut out = vec![y];
        for var in &vars {
            out.push(grads.get(var.as_tensor()).expect("a gradient").clone());
        }
        Ok(out)
    }

    /// The training path's values and gradients against candle's conv2d path, for the geometries
    /// the Wan VAE uses: a "same" 3x3x3 cube, a temporal downsampling 3x1x1 at stride 2, a 2D 3x3
    /// at stride 2, a 1x1, and unequal padding.
    #[test]
    fn patch_convolution_matches_candle_conv2d_with_gradients() -> Result<()> {
        let cpu = Device::Cpu;
        let cases = [
            ((2, 3, 5, 9, 7), (4, 3, 3, 3), ConvGeometry { kernel: (3, 3, 3), stride: (1, 1), padding: (1, 1) }),
            ((1, 4, 7, 6, 6), (4, 4, 3, 1), ConvGeometry { kernel: (3, 1, 1), stride: (2, 1), padding: (0, 0) }),
            ((2, 3, 1, 9, 11), (5, 3, 1, 3), ConvGeometry { kernel: (1, 3, 3), stride: (1, 2), padding: (0, 0) }),
            ((1, 6, 3, 5, 5), (2, 6, 1, 1), ConvGeometry { kernel: (1, 1, 1), stride: (1, 1), padding: (0, 0) }),
            ((1, 2, 4, 6, 5), (3, 2, 2, 3), ConvGeometry { kernel: (2, 3, 3), stride: (1, 1), padding: (2, 1) }),
        ];
        for ((b, c_in, t, h, w), (c_out, _, kt, k), geometry) in cases {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, t, h, w), &cpu)?;
            let weight = Tensor::randn(0f32, 0.5, (c_out, c_in, kt, k, k), &cpu)?;
            let bias = Tensor::randn(0f32, 0.5, c_out, &cpu)?;
            let expected_shape = conv3d_by_taps(&x, &weight, &bias, geometry)?.dims().to_vec();
            let upstream = Tensor::randn(0f32, 1.0, expected_shape, &cpu)?;
            let inputs = [x, weight, bias, upstream];
            let by_patches = with_gradients(conv3d_by_patches, &inputs, geometry)?;
            let by_taps = with_gradients(conv3d_by_taps, &inputs, geometry)?;
            for (what, (a, e)) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().zip(by_patches.iter().zip(&by_taps)) {
                assert_eq!(a.dims(), e.dims(), "{what} shape, {geometry:?}");
                let error = relative_error(a, e);
                assert!(error < 1e-5, "{what} differs by {error:.2e} for {geometry:?}");
            }
        }
        Ok(())
    }
}
