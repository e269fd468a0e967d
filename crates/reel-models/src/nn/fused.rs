//! Operations whose training gradient is fused on the CPU: the tanh GELU, the row
//! normalisations (LayerNorm, RMSNorm, without their affine) and the softmax.
//!
//! candle differentiates these as chains of tensor operations, each a pass over the activation:
//! about fifteen for the GELU (two `powf`, a second `tanh` and the arithmetic between them), about
//! twenty for a LayerNorm (means, broadcast subtractions and divisions, and their gradients), about
//! ten for a softmax. In a
//! training step of the demo transformer they took a large share of the time. Here, when such an
//! operation takes part in a gradient on the CPU in f32, it is a custom operation whose forward
//! and backward passes are one pass each ([`elementwise`]). The GELU's forward pass is the same
//! one pass at inference on the CPU in f32 too: candle's calls libm's `tanh` value by value (the
//! demo model's f32 denoising took 4.3 s with it, 3.6 s with this pass). Everything else (the row
//! norms and softmax at inference, where candle's kernels are fused already, GPUs,
//! `REEL_KERNELS=candle`) takes candle's operations unchanged.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::norm::training;
use crate::kernels::{self, elementwise};

/// Values per parallel task: large enough that the threads' start-up is paid off.
const CHUNK: usize = 1 << 14;

/// GELU with the tanh approximation (torch's `gelu(approximate="tanh")`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    match Fused::GeluTanh.apply(x)? {
        Some(y) => Ok(y),
        None => x.gelu(),
    }
}

/// `x` normalised over its last dimension by `norm` (no affine), or `None` where the fused
/// operation does not apply (outside training, off the CPU, not f32): the caller composes it.
pub fn row_norm(x: &Tensor, norm: elementwise::RowNorm) -> Result<Option<Tensor>> {
    Fused::RowNorm(norm).apply(x)
}

/// Softmax over the last dimension, differentiable: reel's fused operation in training on the
/// CPU, candle's composition elsewhere in training, and candle's fused kernel outside it.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match Fused::Softmax.apply(x)? {
        Some(y) => Ok(y),
        None if training(&[x]) => candle_nn::ops::softmax(x, candle_core::D::Minus1),
        None => candle_nn::ops::softmax_last_dim(x),
    }
}

/// An operation with a fused forward and backward pass on f32 CPU values.
#[derive(Debug, Clone, Copy)]
enum Fused {
    GeluTanh,
    RowNorm(elementwise::RowNorm),
    Softmax,
}

impl Fused {
    /// The operation applied to `x` on the CPU in f32 where it takes part in a gradient (the GELU
    /// also where it does not), else `None`.
    fn apply(self, x: &Tensor) -> Result<Option<Tensor>> {
        let wanted = matches!(self, Fused::GeluTanh) || training(&[x]);
        if !(wanted && kernels::use_f32_elementwise_kernel(x.dtype(), x.device())) {
            return Ok(None);
        }
        x.contiguous()?.apply_op1(self).map(Some)
    }

    /// Values that the operation reads together: a row of the last dimension, or one for the GELU.
    fn width(self, layout: &Layout) -> usize {
        match self {
            Fused::GeluTanh => 1,
            Fused::RowNorm(_) | Fused::Softmax => layout.dims().last().copied().unwrap_or(1).max(1),
        }
    }

    fn forward(self, x: &[f32], out: &mut [f32], width: usize) {
        match self {
            Fused::GeluTanh => {
                out.copy_from_slice(x);
                elementwise::gelu_tanh_in_place(out);
            }
            Fused::RowNorm(norm) => norm.forward(x, out, width),
            Fused::Softmax => {
                out.copy_from_slice(x);
                out.chunks_exact_mut(width).for_each(elementwise::softmax_in_place);
            }
        }
    }

    /// The input's gradient from `saved` (the input, or the output where
    /// [`Fused::backward_reads_output`]) and the output's gradient.
    fn backward(self, saved: &[f32], grad: &[f32], out: &mut [f32], width: usize) {
        match self {
            Fused::GeluTanh => elementwise::gelu_tanh_backward(saved, grad, out),
            Fused::RowNorm(norm) => norm.backward(saved, grad, out, width),
            Fused::Softmax => elementwise::softmax_backward(saved, grad, out, width),
        }
    }

    fn backward_reads_output(self) -> bool {
        matches!(self, Fused::Softmax)
    }
}

impl CustomOp1 for Fused {
    fn name(&self) -> &'static str {
        match self {
            Fused::GeluTanh => "gelu-tanh",
            Fused::RowNorm(_) => "row-norm",
            Fused::Softmax => "softmax",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let width = self.width(layout);
        let task = rows_per_task(width) * width;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(task).zip(x.par_chunks(task)).for_each(|(out, x)| self.forward(x, out, width));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let saved = if self.backward_reads_output() { res } else { arg };
        Ok(Some(saved.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &Gradient(*self))?))
    }
}

/// `(saved, grad)` -> the gradient of a [`Fused`] operation's input.
struct Gradient(Fused);

impl CustomOp2 for Gradient {
    fn name(&self) -> &'static str {
        "fused-gradient"
    }

    fn cpu_fwd(&self, saved: &CpuStorage, saved_layout: &Layout, grad: &CpuStorage, grad_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (saved, grad) = (values(saved, saved_layout, self.0.name())?, values(grad, grad_layout, self.0.name())?);
        if saved.len() != grad.len() {
            candle_core::bail!("{} gradient: {} values against a gradient of {}", self.0.name(), saved.len(), grad.len());
        }
        let width = self.0.width(saved_layout);
        let task = rows_per_task(width) * width;
        let mut out = vec![0f32; saved.len()];
        out.par_chunks_mut(task)
            .zip(saved.par_chunks(task).zip(grad.par_chunks(task)))
            .for_each(|(out, (saved, grad))| self.0.backward(saved, grad, out, width));
        Ok((CpuStorage::F32(out), saved_layout.shape().clone()))
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

/// Whole rows per parallel task, about [`CHUNK`] values.
fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_relative_error(a: &Tensor, b: &Tensor) -> Result<f32> {
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-12);
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
    }

    /// Asserts that `ours` and `reference`, both computed from `x`, agree in value (relative error
    /// `value_tolerance`) and in the gradient that a random weighting of them sends back to `x`
    /// (`grad_tolerance`).
    fn assert_same_values_and_gradients(x: &Var, ours: &Tensor, reference: &Tensor, what: &str, value_tolerance: f32, grad_tolerance: f32) -> Result<()> {
        let value_error = max_relative_error(ours, reference)?;
        assert!(value_error < value_tolerance, "{what}: values off by {value_error:e}");
        let weights = Tensor::randn(0f32, 1.0, reference.shape(), &Device::Cpu)?;
        let grad = |y: &Tensor| -> Result<Tensor> { Ok((y * &weights)?.sum_all()?.backward()?.get(x).expect("x takes part").clone()) };
        let grad_error = max_relative_error(&grad(ours)?, &grad(reference)?)?;
        assert!(grad_error < grad_tolerance, "{what}: gradient off by {grad_error:e}");
        Ok(())
    }

    /// Values and gradients match candle's GELU (whose backward uses rounded constants, hence the
    /// gradient's 1e-4), on fresh random inputs, also through a transposed (non-contiguous) view.
    #[test]
    fn gelu_and_its_gradient_match_candles() -> Result<()> {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (6, 40, 33), &Device::Cpu)? * 3.0)?)?;
        let input = x.as_tensor().transpose(1, 2)?;
        assert_same_values_and_gradients(&x, &gelu_tanh(&input)?, &input.gelu()?, "gelu", 1e-6, 1e-4)
    }

    /// LayerNorm and RMSNorm: values and gradients match the same normalisation composed from
    /// candle's differentiable operations, on rows of fresh random values with an offset (so that
    /// LayerNorm's centring matters) and widths with and without a tail past the 16 lanes.
    #[test]
    fn row_norms_and_their_gradients_match_candles_compositions() -> Result<()> {
        use candle_core::D;
        for width in [128, 37] {
            let x = Var::from_tensor(&((Tensor::randn(0f32, 1.0, (5, 9, width), &Device::Cpu)? * 2.0)? + 0.7)?)?;
            for norm in [elementwise::RowNorm::Layer { eps: 1e-6 }, elementwise::RowNorm::Rms { eps: 1e-5 }] {
                let ours = row_norm(x.as_tensor(), norm)?.expect("a tracked f32 CPU tensor takes the fused operation");
                let composed = match norm {
                    elementwise::RowNorm::Layer { eps } => {
                        let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                        centered.broadcast_div(&(centered.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?)?
                    }
                    elementwise::RowNorm::Rms { eps } => x.broadcast_div(&(x.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?)?,
                };
                assert_same_values_and_gradients(&x, &ours, &composed, &format!("{norm:?} width {width}"), 1e-5, 1e-4)?;
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
            let scores = x.as_tensor().transpose(1, 2)?;
            let (ours, candles) = (softmax_last_dim(&scores)?, candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?);
            assert_same_values_and_gradients(&x, &ours, &candles, &format!("softmax width {width}"), 1e-5, 1e-4)?;
        }
        Ok(())
    }

    #[test]
    fn outside_training_the_row_norm_is_left_to_the_caller() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (3, 17), &Device::Cpu)?;
        assert!(row_norm(&x, elementwise::RowNorm::Rms { eps: 1e-6 })?.is_none());
        Ok(())
    }

    /// At inference the GELU is reel's one pass too, within 1e-6 of candle's on fresh random
    /// values, through a transposed view; in bf16 it is candle's.
    #[test]
    fn outside_training_the_gelu_is_the_fused_pass_and_matches_candles() -> Result<()> {
        let x = (Tensor::randn(0f32, 1.0, (5, 40, 33), &Device::Cpu)? * 3.0)?.transpose(1, 2)?;
        let error = max_relative_error(&gelu_tanh(&x)?, &x.gelu()?)?;
        assert!(error < 1e-6, "inference GELU off by {error:e}");
        let fused = Fused::GeluTanh.apply(&x)?.expect("an f32 CPU tensor takes the fused GELU");
        assert_eq!(fused.to_vec3::<f32>()?, gelu_tanh(&x)?.to_vec3::<f32>()?);
        let half = x.to_dtype(candle_core::DType::BF16)?;
        assert!(Fused::GeluTanh.apply(&half)?.is_none());
        Ok(())
    }
}
