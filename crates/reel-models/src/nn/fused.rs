//! Operations whose training gradient is fused on the CPU: the tanh GELU, the row
//! normalisations (LayerNorm, RMSNorm, without their affine) and the softmax.
//!
//! candle differentiates these as chains of tensor operations, each a pass over the activation:
//! about fifteen for the GELU (two `powf`, a second `tanh` and the arithmetic between them), about
//! twenty for a LayerNorm (means, broadcast subtractions and divisions, and their gradients), about
//! ten for a softmax. In a
//! training step of the demo transformer they took a large share of the time. Here, when such an
//! operation takes part in a gradient on the CPU in f32, it is a custom operation whose forward
//! and backward passes are one pass each ([`elementwise`]). Everything else (inference, GPUs,
//! `REEL_KERNELS=candle`) takes candle's operations unchanged.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::norm::training;
use crate::kernels::{self, elementwise};

/// Values per parallel task: large enough that the threads' start-up is paid off.
const CHUNK: usize = 1 << 14;

/// GELU with the tanh approximation (torch's `gelu(approximate="tanh")`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if training(&[x]) && kernels::use_f32_elementwise_kernel(x.dtype(), x.device()) {
        x.contiguous()?.apply_op1(GeluTanh)
    } else {
        x.gelu()
    }
}

/// `x` normalised over its last dimension by `norm` (no affine), or `None` where the fused
/// operation does not apply (outside training, off the CPU, not f32): the caller composes it.
pub fn row_norm(x: &Tensor, norm: elementwise::RowNorm) -> Result<Option<Tensor>> {
    if !(training(&[x]) && kernels::use_f32_elementwise_kernel(x.dtype(), x.device())) {
        return Ok(None);
    }
    x.contiguous()?.apply_op1(RowNormOp(norm)).map(Some)
}

/// Softmax over the last dimension, differentiable: reel's fused operation in training on the
/// CPU, candle's composition elsewhere in training, and candle's fused kernel outside it.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !training(&[x]) {
        candle_nn::ops::softmax_last_dim(x)
    } else if kernels::use_f32_elementwise_kernel(x.dtype(), x.device()) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    }
}

/// The values of a contiguous f32 CPU tensor.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &'static str) -> Result<&'a [f32]> {
    let CpuStorage::F32(all) = storage else { candle_core::bail!("{op} takes f32 values") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("{op} takes a contiguous tensor"),
    }
}

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out = values(storage, layout, self.name())?.to_vec();
        out.par_chunks_mut(CHUNK).for_each(elementwise::gelu_tanh_in_place);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluTanhGradient)?))
    }
}

/// `(x, grad)` -> `grad * gelu'(x)`.
struct GeluTanhGradient;

impl CustomOp2 for GeluTanhGradient {
    fn name(&self) -> &'static str {
        "gelu-tanh-gradient"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_layout: &Layout, grad: &CpuStorage, grad_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, grad) = same_length(self.name(), values(x, x_layout, self.name())?, values(grad, grad_layout, self.name())?)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(out, (x, grad))| elementwise::gelu_tanh_backward(x, grad, out));
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

struct RowNormOp(elementwise::RowNorm);

impl CustomOp1 for RowNormOp {
    fn name(&self) -> &'static str {
        "row-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        let rows = rows_per_task(width);
        out.par_chunks_mut(rows * width)
            .zip(x.par_chunks(rows * width))
            .for_each(|(out, x)| self.0.forward(x, out, width));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &RowNormGradient(self.0))?))
    }
}

/// `(x, grad)` -> the gradient of the normalisation at `x`.
struct RowNormGradient(elementwise::RowNorm);

impl CustomOp2 for RowNormGradient {
    fn name(&self) -> &'static str {
        "row-norm-gradient"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_layout: &Layout, grad: &CpuStorage, grad_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, grad) = same_length(self.name(), values(x, x_layout, self.name())?, values(grad, grad_layout, self.name())?)?;
        let width = x_layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        let rows = rows_per_task(width);
        out.par_chunks_mut(rows * width)
            .zip(x.par_chunks(rows * width).zip(grad.par_chunks(rows * width)))
            .for_each(|(out, (x, grad))| self.0.backward(x, grad, out, width));
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out = values(storage, layout, self.name())?.to_vec();
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        out.par_chunks_mut(rows_per_task(width) * width)
            .for_each(|rows| rows.chunks_exact_mut(width).for_each(elementwise::softmax_in_place));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGradient)?))
    }
}

/// `(softmax, grad)` -> the gradient of the softmax's input.
struct SoftmaxGradient;

impl CustomOp2 for SoftmaxGradient {
    fn name(&self) -> &'static str {
        "softmax-gradient"
    }

    fn cpu_fwd(&self, y: &CpuStorage, y_layout: &Layout, grad: &CpuStorage, grad_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, grad) = same_length(self.name(), values(y, y_layout, self.name())?, values(grad, grad_layout, self.name())?)?;
        let width = y_layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; y.len()];
        let rows = rows_per_task(width);
        out.par_chunks_mut(rows * width)
            .zip(y.par_chunks(rows * width).zip(grad.par_chunks(rows * width)))
            .for_each(|(out, (y, grad))| elementwise::softmax_backward(y, grad, out, width));
        Ok((CpuStorage::F32(out), y_layout.shape().clone()))
    }
}

/// Whole rows per parallel task, about [`CHUNK`] values.
fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

/// The two value slices of a binary gradient operation, refused if their lengths differ.
fn same_length<'a>(op: &str, x: &'a [f32], grad: &'a [f32]) -> Result<(&'a [f32], &'a [f32])> {
    if x.len() != grad.len() {
        candle_core::bail!("{op}: {} values against a gradient of {}", x.len(), grad.len());
    }
    Ok((x, grad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_relative_error(a: &Tensor, b: &Tensor) -> Result<f32> {
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-12);
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
    }

    /// Values and gradients match candle's GELU (whose backward uses rounded constants, hence the
    /// gradient's 1e-4), on fresh random inputs, also through a transposed (non-contiguous) view.
    #[test]
    fn gelu_and_its_gradient_match_candles() -> Result<()> {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (6, 40, 33), &Device::Cpu)? * 3.0)?)?;
        let weights = Tensor::randn(0f32, 1.0, (6, 33, 40), &Device::Cpu)?;
        let input = x.as_tensor().transpose(1, 2)?;
        let (ours, candles) = (gelu_tanh(&input)?, input.gelu()?);
        let value_error = max_relative_error(&ours, &candles)?;
        assert!(value_error < 1e-6, "values off by {value_error:e}");
        let grad = |y: &Tensor| -> Result<Tensor> { Ok((y * &weights)?.sum_all()?.backward()?.get(&x).expect("x takes part").clone()) };
        let grad_error = max_relative_error(&grad(&ours)?, &grad(&candles)?)?;
        assert!(grad_error < 1e-4, "gradient off by {grad_error:e}");
        Ok(())
    }

    /// LayerNorm and RMSNorm: values and gradients match the same normalisation composed from
    /// candle's differentiable operations, on rows of fresh random values with an offset (so that
    /// LayerNorm's centring matters) and widths with and without a tail past the 16 lanes.
    #[test]
    fn row_norms_and_their_gradients_match_candles_compositions() -> Result<()> {
        use candle_core::D;
        for width in [128, 37] {
            let x = Var::from_tensor(&((Tensor::randn(0f32, 1.0, (5, 9, width), &Device::Cpu)? * 2.0)? + 0.7)?)?;
            let weights = Tensor::randn(0f32, 1.0, (5, 9, width), &Device::Cpu)?;
            for norm in [elementwise::RowNorm::Layer { eps: 1e-6 }, elementwise::RowNorm::Rms { eps: 1e-5 }] {
                let ours = row_norm(x.as_tensor(), norm)?.expect("a tracked f32 CPU tensor takes the fused operation");
                let composed = match norm {
                    elementwise::RowNorm::Layer { eps } => {
                        let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                        centered.broadcast_div(&(centered.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?)?
                    }
                    elementwise::RowNorm::Rms { eps } => x.broadcast_div(&(x.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?)?,
                };
                let value_error = max_relative_error(&ours, &composed)?;
                assert!(value_error < 1e-5, "{norm:?} width {width}: values off by {value_error:e}");
                let grad = |y: &Tensor| -> Result<Tensor> { Ok((y * &weights)?.sum_all()?.backward()?.get(&x).expect("x takes part").clone()) };
                let grad_error = max_relative_error(&grad(&ours)?, &grad(&composed)?)?;
                assert!(grad_error < 1e-4, "{norm:?} width {width}: gradient off by {grad_error:e}");
            }
        }
        Ok(())
    }

    /// Softmax values and gradients match candle's differentiable softmax on fresh random scores,
    /// also through a transposed (non-contiguous) view and on a width with a tail past 16 lanes.
    #[test]
    fn softmax_and_its_gradient_match_candles() -> Result<()> {
        for width in [320, 23] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (3, width, 40), &Device::Cpu)? * 4.0)?)?;
            let weights = Tensor::randn(0f32, 1.0, (3, 40, width), &Device::Cpu)?;
            let scores = x.as_tensor().transpose(1, 2)?;
            let (ours, candles) = (softmax_last_dim(&scores)?, candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?);
            let value_error = max_relative_error(&ours, &candles)?;
            assert!(value_error < 1e-5, "width {width}: values off by {value_error:e}");
            let grad = |y: &Tensor| -> Result<Tensor> { Ok((y * &weights)?.sum_all()?.backward()?.get(&x).expect("x takes part").clone()) };
            let grad_error = max_relative_error(&grad(&ours)?, &grad(&candles)?)?;
            assert!(grad_error < 1e-4, "width {width}: gradient off by {grad_error:e}");
        }
        Ok(())
    }

    #[test]
    fn outside_training_the_row_norm_is_left_to_the_caller() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (3, 17), &Device::Cpu)?;
        assert!(row_norm(&x, elementwise::RowNorm::Rms { eps: 1e-6 })?.is_none());
        Ok(())
    }

    #[test]
    fn outside_training_it_is_candles_gelu() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (3, 17), &Device::Cpu)?;
        assert_eq!(gelu_tanh(&x)?.to_vec2::<f32>()?, x.gelu()?.to_vec2::<f32>()?);
        Ok(())
    }
}
