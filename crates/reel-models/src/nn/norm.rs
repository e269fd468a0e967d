//! Normalisation layers with the precision the references give them.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::broadcast::{broadcast_add, broadcast_mul};
use super::fused::row_norm;
use crate::kernels::elementwise::RowNorm;

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
        let x = x.to_dtype(DType::F32)?;
        if training(&[&x, &self.weight]) {
            // candle's fused kernel has no backward pass: reel's where it applies, else a composition
            // of differentiable operations.
            let normed = match row_norm(&x, RowNorm::Layer { eps: self.eps })? {
                Some(normed) => normed,
                None => {
                    let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                    let variance = centered.sqr()?.mean_keepdim(D::Minus1)?;
                    centered.broadcast_div(&(variance + self.eps as f64)?.sqrt()?)?
                }
            };
            return broadcast_add(&broadcast_mul(&normed, &self.weight)?, &self.bias);
        }
        candle_nn::ops::layer_norm(&x, &self.weight, &self.bias, self.eps)
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
        let x32 = x.to_dtype(DType::F32)?;
        let out = if training(&[&x32, &self.weight]) {
            let normed = match row_norm(&x32, RowNorm::Rms { eps: self.eps })? {
                Some(normed) => normed,
                None => x32.broadcast_div(&(x32.sqr()?.mean_keepdim(D::Minus1)? + self.eps as f64)?.sqrt()?)?,
            };
            broadcast_mul(&normed, &self.weight)?
        } else {
            candle_nn::ops::rms_norm(&x32, &self.weight, self.eps)?
        };
        out.to_dtype(x.dtype())
    }
}

/// Whether any input takes part in a gradient computation: then layers use operations with a
/// backward pass instead of candle's fused kernels, which have none.
pub fn training(inputs: &[&Tensor]) -> bool {
    inputs.iter().any(|t| t.track_op())
}
