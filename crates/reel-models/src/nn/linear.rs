//! A linear layer (candle's) that records its matrix product in [`super::flops`].

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::flops::record_matmul;

#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Self { inner: candle_nn::Linear::new(weight, bias), in_dim, out_dim })
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }
}

/// `in_dim` -> `out_dim` with a bias, from `weight` and `bias` under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let inner = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(Linear { inner, in_dim, out_dim })
}

/// `in_dim` -> `out_dim` without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let inner = candle_nn::linear_no_bias(in_dim, out_dim, vb)?;
    Ok(Linear { inner, in_dim, out_dim })
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        record_matmul(1, x.elem_count() / self.in_dim, self.in_dim, self.out_dim);
        self.inner.forward(x)
    }
}
