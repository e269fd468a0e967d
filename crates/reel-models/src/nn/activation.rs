//! Activations whose training gradient is fused on the CPU.
//!
//! candle differentiates its tanh GELU as a chain of about fifteen tensor operations (two `powf`,
//! a second `tanh`, and the arithmetic between them), each a pass over the activation. In a
//! training step of the demo transformer that chain took about a seventh of the time. Here a GELU
//! that takes part in a gradient on the CPU is a custom operation whose backward pass is one
//! pass ([`elementwise::gelu_tanh_backward`]). Everything else (inference, GPUs, `REEL_KERNELS=candle`) takes
//! candle's `gelu` unchanged.

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
        let (x, grad) = (values(x, x_layout, self.name())?, values(grad, grad_layout, self.name())?);
        if x.len() != grad.len() {
            candle_core::bail!("{}: {} values against a gradient of {}", self.name(), x.len(), grad.len());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(out, (x, grad))| elementwise::gelu_tanh_backward(x, grad, out));
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values and gradients match candle's GELU (whose backward uses rounded constants, hence the
    /// gradient's 1e-4), on fresh random inputs, also through a transposed (non-contiguous) view.
    #[test]
    fn gelu_and_its_gradient_match_candles() -> Result<()> {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (6, 40, 33), &Device::Cpu)? * 3.0)?)?;
        let weights = Tensor::randn(0f32, 1.0, (6, 33, 40), &Device::Cpu)?;
        let input = x.as_tensor().transpose(1, 2)?;
        let (ours, candles) = (gelu_tanh(&input)?, input.gelu()?);
        let scale = candles.abs()?.max_all()?.to_scalar::<f32>()?;
        let value_error = (&ours - &candles)?.abs()?.max_all()?.to_scalar::<f32>()? / scale;
        assert!(value_error < 1e-6, "values off by {value_error:e}");
        let grad = |y: &Tensor| -> Result<Tensor> { Ok((y * &weights)?.sum_all()?.backward()?.get(&x).expect("x takes part").clone()) };
        let (ours, candles) = (grad(&ours)?, grad(&candles)?);
        let scale = candles.abs()?.max_all()?.to_scalar::<f32>()?;
        let grad_error = (&ours - &candles)?.abs()?.max_all()?.to_scalar::<f32>()? / scale;
        assert!(grad_error < 1e-4, "gradient off by {grad_error:e}");
        Ok(())
    }

    #[test]
    fn outside_training_it_is_candles_gelu() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (3, 17), &Device::Cpu)?;
        assert_eq!(gelu_tanh(&x)?.to_vec2::<f32>()?, x.gelu()?.to_vec2::<f32>()?);
        Ok(())
    }
}
