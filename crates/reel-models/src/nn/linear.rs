//! A linear layer that records its matrix product in [`super::flops`] and picks the fastest
//! product this machine has for its weights: reel's AVX-512 BF16 kernel for bf16 weights on a
//! CPU that has it ([`crate::kernels::bf16_gemm`]), candle's matmul otherwise.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use half::bf16;

use super::flops::record_matmul;
use crate::kernels::{self, bf16_gemm::{Activation, PackedBf16}};

#[derive(Debug, Clone)]
enum Product {
    /// candle's matmul (any device, any dtype).
    Candle(candle_nn::Linear),
    /// The weight packed for the AVX-512 BF16 kernel; the bias is added in f32 before rounding.
    PackedBf16 { weight: Arc<PackedBf16>, bias: Option<Arc<Vec<f32>>> },
}

#[derive(Debug, Clone)]
pub struct Linear {
    product: Product,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let product = if kernels::use_bf16_kernel(weight.dtype(), weight.device()) {
            let values = weight.flatten_all()?.to_vec1::<bf16>()?;
            let bias = bias.map(|b| b.to_dtype(DType::F32)?.to_vec1::<f32>().map(Arc::new)).transpose()?;
            Product::PackedBf16 { weight: Arc::new(PackedBf16::pack(&values, out_dim, in_dim)), bias }
        } else {
            Product::Candle(candle_nn::Linear::new(weight, bias))
        };
        Ok(Self { product, in_dim, out_dim })
    }

    /// Whether products run on reel's packed bf16 kernel.
    pub fn is_packed(&self) -> bool {
        matches!(self.product, Product::PackedBf16 { .. })
    }
}

/// `in_dim` -> `out_dim` with a bias, from `weight` and `bias` under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Linear::new(weight, Some(bias))
}

/// `in_dim` -> `out_dim` without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(vb.get((out_dim, in_dim), "weight")?, None)
}

impl Linear {
    /// `gelu_tanh(x Wᵀ + b)`: the GELU is applied to the f32 sums before rounding on the packed kernel.
    pub fn forward_gelu_tanh(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, Activation::GeluTanh)
    }

    fn product(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        let rows = x.elem_count() / self.in_dim;
        record_matmul(1, rows, self.in_dim, self.out_dim);
        match &self.product {
            Product::Candle(inner) => {
                let out = inner.forward(x)?;
                match activation {
                    Activation::None => Ok(out),
                    Activation::GeluTanh => out.gelu(),
                }
            }
            Product::PackedBf16 { weight, bias } => {
                let mut out_shape = x.dims().to_vec();
                *out_shape.last_mut().expect("a linear layer's input has a last dimension") = self.out_dim;
                let x = x.to_dtype(DType::BF16)?;
                let out = with_cpu_bf16_values(&x, |values| weight.matmul(values, rows, bias.as_deref().map(Vec::as_slice), activation))?;
                Tensor::from_vec(out, out_shape, &Device::Cpu)?.to_dtype(x.dtype())
            }
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, Activation::None)
    }
}

/// Runs `f` on a CPU bf16 tensor's values in row-major order, copied only when it is not contiguous.
fn with_cpu_bf16_values<T>(x: &Tensor, f: impl FnOnce(&[bf16]) -> T) -> Result<T> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&cpu.as_slice::<bf16>()?[start..end]));
        }
    }
    Ok(f(&x.flatten_all()?.to_vec1::<bf16>()?))
}
