//! Parsing the user's choice of device and dtype: the same model code runs on every device.

use candle_core::{DType, Device};

use crate::{ModelError, Result};

/// `cpu`, `cuda`, `cuda:N` or `metal`. CUDA and Metal need reel built with the feature of that name.
pub fn parse_device(name: &str) -> Result<Device> {
    let unavailable = |what: &str, e: candle_core::Error| {
        ModelError::Unsupported(format!(
            "device '{name}' is not available ({e}); build reel with `--features {what}` on a machine \
             with that accelerator, or use `--device cpu`"
        ))
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "metal" => Device::new_metal(0).map_err(|e| unavailable("metal", e)),
        "cuda" => Device::new_cuda(0).map_err(|e| unavailable("cuda", e)),
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => Device::new_cuda(ordinal).map_err(|e| unavailable("cuda", e)),
            _ => Err(ModelError::InvalidInput(format!(
                "unknown device '{name}': expected cpu, cuda, cuda:N or metal"
            ))),
        },
    }
}

/// `f32`, `bf16` or `f16`: the dtype the weights are converted to and the model computes in.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        _ => Err(ModelError::InvalidInput(format!(
            "unknown dtype '{name}': expected f32, bf16 or f16"
        ))),
    }
}
