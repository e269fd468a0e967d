//! CPU kernels reel uses in place of candle's where they are faster, chosen at run time by what
//! the CPU supports. `REEL_KERNELS=candle` turns them all off (for comparisons and bisecting).

pub mod elementwise;
pub mod bf16_attention;
pub mod bf16_gemm;

use candle_core::{DType, Device};

/// Whether reel's kernels may be used (the environment has not turned them off).
fn enabled() -> bool {
    std::env::var("REEL_KERNELS").map_or(true, |v| v != "candle")
}

/// Whether a linear layer with a weight of `dtype` on `device` should use the packed bf16 kernel.
pub fn use_bf16_kernel(dtype: DType, device: &Device) -> bool {
    dtype == DType::BF16 && device.is_cpu() && enabled() && bf16_gemm::available()
}
