//! A linear layer that records its matrix product in [`super::flops`] and picks the fastest
//! product this machine has for its weights: reel's AVX-512 BF16 kernel for bf16 weights on a
//! CPU that has it ([`crate::kernels::bf16_gemm`]), candle's matmul otherwise; or, on request
//! ([`with_quantization`]), int8 weights: reel's VNNI kernel where the CPU has AVX-512 VNNI
//! ([`crate::kernels::int8_gemm`]), else GGML's Q8_0 (blocks of 32 values with one f16 scale)
//! multiplied by candle's quantized kernels, as quantized GGUF weights are.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use half::bf16;

use super::fused::gelu_tanh;
use super::broadcast::broadcast_add;
use super::flops::record_matmul;
use crate::kernels::{self, bf16_gemm::{Activation, PackedBf16}, int8_gemm::PackedInt8};

#[derive(Debug, Clone)]
enum Product {
    /// candle's matmul (any device, any dtype), the bias added by [`broadcast_add`] (fast to train).
    Candle { matmul: candle_nn::Linear, bias: Option<Tensor> },
    /// The weight packed for the AVX-512 BF16 kernel; the bias is added in f32 before rounding.
    PackedBf16 { weight: Arc<PackedBf16>, bias: Option<Arc<Vec<f32>>> },
    /// int8 weights for reel's VNNI kernel (one copy, a byte per weight); bias added in f32.
    PackedInt8 { weight: Arc<PackedInt8>, bias: Option<Arc<Vec<f32>>> },
    /// A quantized weight for candle's kernels; inputs go in as f32, the bias (f32) is added to the f32 result.
    Quantized { weight: QMatMul, bias: Option<Tensor> },
}

/// Weight formats linear layers can be built in besides the loaded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// int8: a scale per output channel and inputs quantized per row on reel's VNNI kernel
    /// (8 bits per weight); elsewhere Q8_0, a scale per 32 weights (8.5 bits).
    Q8,
}

impl std::str::FromStr for Quantization {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "q8" | "int8" => Ok(Self::Q8),
            other => Err(format!("unknown quantization {other:?}: expected q8")),
        }
    }
}

thread_local! {
    static QUANTIZATION: Cell<Option<Quantization>> = const { Cell::new(None) };
    /// Weights that come quantized from the checkpoint (GGUF), by tensor name.
    static PREQUANTIZED: RefCell<HashMap<String, Arc<QTensor>>> = RefCell::new(HashMap::new());
}

/// Runs `f` with the linear layers built inside it (on this thread) taking their weight from
/// `weights` (by full tensor name, `<layer>.weight`) when it is there, as loaded: quantized
/// checkpoints keep their format. Returns the weights no layer took, so loaders can tell.
pub fn with_prequantized<T>(weights: HashMap<String, Arc<QTensor>>, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = PREQUANTIZED.with(|p| p.replace(weights));
    let result = f();
    let unused = PREQUANTIZED.with(|p| p.replace(outer)).into_keys().collect();
    (result, unused)
}

/// The checkpoint's quantized weight for the layer under `vb`, if it has one of the right shape.
fn prequantized(vb: &VarBuilder, out_dim: usize, in_dim: usize) -> Result<Option<Arc<QTensor>>> {
    let name = format!("{}.weight", vb.prefix());
    let Some(weight) = PREQUANTIZED.with(|p| p.borrow_mut().remove(&name)) else {
        return Ok(None);
    };
    if weight.shape().dims() != [out_dim, in_dim] {
        candle_core::bail!("{name} has shape {:?} in the checkpoint, the model expects [{out_dim}, {in_dim}]", weight.shape().dims());
    }
    Ok(Some(weight))
}

/// Runs `f` with every linear layer built inside it (on this thread) quantized to `quantization`,
/// or as loaded with `None`: how a model loader is asked for int8 weights without threading the
/// choice through every constructor. Without the VNNI kernel, layers whose input width is not a
/// multiple of Q8_0's 32-value block stay as loaded.
pub fn with_quantization<T>(quantization: Option<Quantization>, f: impl FnOnce() -> T) -> T {
    let outer = QUANTIZATION.with(|q| q.replace(quantization));
    let result = f();
    QUANTIZATION.with(|q| q.set(outer));
    result
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
        let quantization = QUANTIZATION.with(Cell::get);
        let f32_bias = |bias: Option<Tensor>| bias.map(|b| b.to_dtype(DType::F32)?.to_vec1::<f32>().map(Arc::new)).transpose();
        let product = if quantization == Some(Quantization::Q8) && kernels::use_int8_kernel(weight.device()) {
            let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            Product::PackedInt8 { weight: Arc::new(PackedInt8::quantize(&values, out_dim, in_dim)), bias: f32_bias(bias)? }
        } else if quantization == Some(Quantization::Q8) && in_dim % GgmlDType::Q8_0.block_size() == 0 {
            let quantized = QTensor::quantize(&weight.to_dtype(DType::F32)?, GgmlDType::Q8_0)?;
            drop(weight);
            let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
            Product::Quantized { weight: QMatMul::from_qtensor(quantized)?, bias }
        } else if kernels::use_bf16_kernel(weight.dtype(), weight.device()) {
            let values = weight.flatten_all()?.to_vec1::<bf16>()?;
            Product::PackedBf16 { weight: Arc::new(PackedBf16::pack(&values, out_dim, in_dim)), bias: f32_bias(bias)? }
        } else {
            Product::Candle { matmul: candle_nn::Linear::new(weight, None), bias }
        };
        Ok(Self { product, in_dim, out_dim })
    }

    fn quantized(weight: Arc<QTensor>, bias: Option<Tensor>, in_dim: usize, out_dim: usize) -> Result<Self> {
        let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
        Ok(Self { product: Product::Quantized { weight: QMatMul::from_arc(weight)?, bias }, in_dim, out_dim })
    }

    /// Whether products run on reel's packed bf16 kernel.
    pub fn is_packed(&self) -> bool {
        matches!(self.product, Product::PackedBf16 { .. })
    }

    /// Whether the weight is quantized.
    pub fn is_quantized(&self) -> bool {
        matches!(self.product, Product::Quantized { .. } | Product::PackedInt8 { .. })
    }
}

/// `in_dim` -> `out_dim` with a bias, from `weight` and `bias` under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bias = vb.get(out_dim, "bias")?;
    if let Some(weight) = prequantized(&vb, out_dim, in_dim)? {
        return Linear::quantized(weight, Some(bias), in_dim, out_dim);
    }
    Linear::new(vb.get((out_dim, in_dim), "weight")?, Some(bias))
}

/// `in_dim` -> `out_dim` without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    if let Some(weight) = prequantized(&vb, out_dim, in_dim)? {
        return Linear::quantized(weight, None, in_dim, out_dim);
    }
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
            Product::Candle { matmul, bias } => {
                let mut out = matmul.forward(x)?;
                if let Some(bias) = bias {
                    out = broadcast_add(&out, bias)?;
                }
                match activation {
                    Activation::None => Ok(out),
                    Activation::GeluTanh => gelu_tanh(&out),
                }
            }
            Product::Quantized { weight, bias } => {
                let mut out = weight.forward(&x.to_dtype(DType::F32)?)?;
                if let Some(bias) = bias {
                    out = out.broadcast_add(bias)?;
                }
                if activation == Activation::GeluTanh {
                    out = out.gelu()?;
                }
                out.to_dtype(x.dtype())
            }
            Product::PackedInt8 { weight, bias } => {
                let mut out_shape = x.dims().to_vec();
                *out_shape.last_mut().expect("a linear layer's input has a last dimension") = self.out_dim;
                let x32 = x.to_dtype(DType::F32)?;
                let bias = bias.as_deref().map(Vec::as_slice);
                if x.dtype() == DType::BF16 {
                    let out = with_cpu_values::<f32, _>(&x32, |values| weight.matmul::<bf16>(values, rows, bias, activation))?;
                    Tensor::from_vec(out, out_shape, &Device::Cpu)
                } else {
                    let out = with_cpu_values::<f32, _>(&x32, |values| weight.matmul::<f32>(values, rows, bias, activation))?;
                    Tensor::from_vec(out, out_shape, &Device::Cpu)?.to_dtype(x.dtype())
                }
            }
            Product::PackedBf16 { weight, bias } => {
                let mut out_shape = x.dims().to_vec();
                *out_shape.last_mut().expect("a linear layer's input has a last dimension") = self.out_dim;
                let x = x.to_dtype(DType::BF16)?;
                let out = with_cpu_values::<bf16, _>(&x, |values| weight.matmul::<bf16>(values, rows, bias.as_deref().map(Vec::as_slice), activation))?;
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

/// Runs `f` on a CPU tensor's values in row-major order, copied only when it is not contiguous.
fn with_cpu_values<V: candle_core::WithDType, T>(x: &Tensor, f: impl FnOnce(&[V]) -> T) -> Result<T> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&cpu.as_slice::<V>()?[start..end]));
        }
    }
    Ok(f(&x.flatten_all()?.to_vec1::<V>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
        let diff = (got - want).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        let norm = want.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        (diff / norm).sqrt() as f64
    }

    #[test]
    fn q8_layers_match_f32_within_int8_error() {
        let device = Device::Cpu;
        let weight = Tensor::randn(0f32, 0.05, (96, 256), &device).unwrap();
        let bias = Tensor::randn(0f32, 0.1, 96, &device).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 7, 256), &device).unwrap();
        let dense = Linear::new(weight.clone(), Some(bias.clone())).unwrap();
        let quantized = with_quantization(Some(Quantization::Q8), || Linear::new(weight.clone(), Some(bias.clone()))).unwrap();
        assert!(quantized.is_quantized() && !dense.is_quantized());
        let want = dense.forward(&x).unwrap();
        let error = relative_error(&quantized.forward(&x).unwrap(), &want);
        eprintln!("q8 linear: relative error {error:.1e}");
        // Q8_0 rounds weights and inputs to 8 bits per 32-value block (about 0.6% each, rms).
        assert!(error < 2e-2 && error > 0.0, "q8 error {error:e}");
        let gelu = relative_error(&quantized.forward_gelu_tanh(&x).unwrap(), &want.gelu().unwrap());
        assert!(gelu < 3e-2, "q8 + GELU error {gelu:e}");
        // Outside the scope layers stay as loaded; widths that are not whole Q8_0 blocks are
        // quantized only by the VNNI kernel.
        assert!(!Linear::new(weight.clone(), None).unwrap().is_quantized());
        let odd = with_quantization(Some(Quantization::Q8), || Linear::new(Tensor::randn(0f32, 1.0, (8, 40), &device).unwrap(), None)).unwrap();
        assert_eq!(odd.is_quantized(), kernels::use_int8_kernel(&device));
    }

    #[test]
    fn bf16_layers_use_the_packed_kernel_where_the_cpu_has_it() {
        let weight = Tensor::randn(0f32, 0.05, (64, 128), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let layer = Linear::new(weight.clone(), None).unwrap();
        assert_eq!(layer.is_packed(), kernels::use_bf16_kernel(DType::BF16, &Device::Cpu));
        let x = Tensor::randn(0f32, 1.0, (5, 128), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let want = x.to_dtype(DType::F32).unwrap().matmul(&weight.to_dtype(DType::F32).unwrap().t().unwrap()).unwrap();
        let got = layer.forward(&x).unwrap().to_dtype(DType::F32).unwrap();
        let error = relative_error(&got, &want);
        assert!(error < 4e-3, "bf16 linear error {error:e}");
    }
}
