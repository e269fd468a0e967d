//! Normalisation layers with the precision the references give them.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

/// LayerNorm over the last dimension, computed in f32 whatever the input dtype, as diffusers'
/// `FP32LayerNorm`. Returns f32: callers cast where the reference casts.
#[derive(Debug, Clone)]
pub struct LayerNormF32 {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNormF32 {
    /// With `affine`, reads `weight` and `bias` from `vb` (kept in f32); without, the identity affine.
    pub fn new(dim: usize, eps: f64, affine: bool, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) = if affine {
            let vb = vb.to_dtype(DType::F32);
            (vb.get(dim, "weight")?, vb.get(dim, "bias")?)
        } else {
            (
                Tensor::ones(dim, DType::F32, vb.device())?,
                Tensor::zeros(dim, DType::F32, vb.device())?,
            )
        };
        Ok(Self { weight, bias, eps: eps as f32 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&x.to_dtype(DType::F32)?, &self.weight, &self.bias, self.eps)
    }
}

/// RMSNorm with a learned scale (torch's `nn.RMSNorm`): statistics in f32, output in the input dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// The weight is read in `vb`'s dtype (rounded as the reference rounds it) and applied in f32.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(dim, "weight")?.to_dtype(DType::F32)?;
        Ok(Self { weight, eps: eps as f32 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, &self.weight, self.eps)?;
        out.to_dtype(x.dtype())
    }
}
