//! Parsing the user's choice of device and dtype: the same model code runs on every device.
//! `--dtype auto` picks the dtype per device and model.

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

/// `--dtype`: a dtype, or `auto`, which each model resolves with [`DtypeChoice::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeChoice {
    Auto,
    Fixed(DType),
}

/// The share of the machine's memory the largest component may take in f32 for `auto` to pick f32
/// on a CPU without bf16 instructions: the rest holds activations, the VAE and everything else.
const F32_MEMORY_SHARE: f64 = 0.25;

/// The memory `auto` assumes where the system does not say (outside Linux): a small laptop's.
const ASSUMED_MEMORY_BYTES: f64 = 8.0 * (1u64 << 30) as f64;

impl DtypeChoice {
    /// `auto`, or a name [`parse_dtype`] takes.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Self::Auto),
            _ => parse_dtype(name).map(Self::Fixed).map_err(|_| {
                ModelError::InvalidInput(format!("unknown dtype '{name}': expected auto, f32, bf16 or f16"))
            }),
        }
    }

    /// The dtype to compute in on `device` for a model whose largest component computing in it
    /// (the text encoder or a transformer) holds `parameters` weights.
    pub fn resolve(self, device: &Device, parameters: u64) -> DType {
        match self {
            Self::Fixed(dtype) => dtype,
            Self::Auto => {
                let native_bf16 = !device.is_cpu() || crate::kernels::bf16_gemm::available();
                auto_dtype(native_bf16, parameters as f64 * 4.0, system_memory_bytes())
            }
        }
    }
}

/// `auto`: bf16 where the device computes in it (GPUs, CPUs with AVX-512 BF16). Other CPUs compute
/// bf16 by converting each value to f32 and back, which makes the bundled demo model about twice as
/// slow as in f32; there f32 is chosen whenever the largest component's f32 weights fit in
/// [`F32_MEMORY_SHARE`] of memory, and bf16, which halves them, otherwise.
fn auto_dtype(native_bf16: bool, f32_weight_bytes: f64, memory_bytes: Option<f64>) -> DType {
    let memory = memory_bytes.unwrap_or(ASSUMED_MEMORY_BYTES);
    if !native_bf16 && f32_weight_bytes <= F32_MEMORY_SHARE * memory {
        DType::F32
    } else {
        DType::BF16
    }
}

/// The machine's memory in bytes (Linux's MemTotal; elsewhere unknown).
pub fn system_memory_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = (1u64 << 30) as f64;

    #[test]
    fn auto_is_bf16_where_the_device_computes_it() {
        assert_eq!(auto_dtype(true, 1e6, Some(64.0 * GIB)), DType::BF16);
    }

    #[test]
    fn auto_is_f32_on_other_cpus_for_a_model_that_fits() {
        // The bundled demo model: its largest component, the transformer, holds 2.5 M weights.
        assert_eq!(auto_dtype(false, 2.5e6 * 4.0, Some(24.0 * GIB)), DType::F32);
        // Wan2.1-T2V-1.3B's transformer (1.4 B weights, 5.7 GB in f32) on a 32 GiB machine.
        assert_eq!(auto_dtype(false, 1.42e9 * 4.0, Some(32.0 * GIB)), DType::F32);
        assert_eq!(auto_dtype(false, 1e9, None), DType::F32);
    }

    #[test]
    fn auto_keeps_bf16_for_a_model_that_would_crowd_memory_in_f32() {
        // Wan's UMT5-XXL text encoder (5.7 B weights, 22.7 GB in f32) on a 24 GiB machine.
        assert_eq!(auto_dtype(false, 5.68e9 * 4.0, Some(24.0 * GIB)), DType::BF16);
        assert_eq!(auto_dtype(false, 3.0 * GIB, None), DType::BF16);
    }

    #[test]
    fn a_fixed_dtype_is_kept_and_unknown_names_are_refused() {
        assert_eq!(DtypeChoice::parse("bf16").unwrap().resolve(&Device::Cpu, 10), DType::BF16);
        assert_eq!(DtypeChoice::parse("f32").unwrap().resolve(&Device::Cpu, u64::MAX / 8), DType::F32);
        assert_eq!(DtypeChoice::parse("auto").unwrap(), DtypeChoice::Auto);
        let err = DtypeChoice::parse("f64").unwrap_err().to_string();
        assert!(err.contains("f64") && err.contains("auto, f32, bf16 or f16"), "{err}");
    }

    #[test]
    fn auto_resolves_on_this_cpu_by_its_instructions_and_memory() {
        let native = crate::kernels::bf16_gemm::available();
        let small = DtypeChoice::Auto.resolve(&Device::Cpu, 1000);
        assert_eq!(small, if native { DType::BF16 } else { DType::F32 });
        // Weights that could never fit in f32 stay bf16 whatever the CPU.
        assert_eq!(DtypeChoice::Auto.resolve(&Device::Cpu, u64::MAX / 8), DType::BF16);
    }
}
