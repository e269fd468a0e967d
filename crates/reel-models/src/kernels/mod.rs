//! CPU kernels reel uses in place of candle's where they are faster, chosen at run time by what
//! the CPU supports. `REEL_KERNELS=candle` turns them all off (for comparisons and bisecting).

pub mod elementwise;
pub mod bf16_attention;
pub mod bf16_gemm;
pub mod panels;
pub mod conv;
pub mod patches;
pub mod int8_gemm;

use candle_core::{DType, Device};

/// Whether reel's kernels may be used (the environment has not turned them off).
fn enabled() -> bool {
    std::env::var("REEL_KERNELS").map_or(true, |v| v != "candle")
}

/// Whether f32 elementwise work on `device` (a training gradient's activation) should use
/// [`elementwise`]'s fused kernels.
pub fn use_f32_elementwise_kernel(dtype: DType, device: &Device) -> bool {
    dtype == DType::F32 && device.is_cpu() && enabled()
}

/// Whether a linear layer with a weight of `dtype` on `device` should use the packed bf16 kernel.
pub fn use_bf16_kernel(dtype: DType, device: &Device) -> bool {
    dtype == DType::BF16 && device.is_cpu() && enabled() && bf16_gemm::available()
}

/// Whether a linear layer quantized to int8 on `device` should use [`int8_gemm`] (else candle's
/// Q8_0 kernels).
pub fn use_int8_kernel(device: &Device) -> bool {
    device.is_cpu() && enabled() && int8_gemm::available()
}

/// Whether a convolution of `x` with `weight` should use [`conv::conv3d`]: f32 on the CPU, outside
/// training (the kernel has no backward pass).
pub fn use_cpu_conv(x: &candle_core::Tensor, weight: &candle_core::Tensor) -> bool {
    x.dtype() == DType::F32 && weight.dtype() == DType::F32 && x.device().is_cpu() && enabled() && !x.track_op() && !weight.track_op()
}

/// Whether a convolution of `x` with `weight` should run on [`patches`]: f32 on the CPU, in
/// training (where candle's conv2d backward pass is many times slower).
pub fn use_cpu_patches(x: &candle_core::Tensor, weight: &candle_core::Tensor) -> bool {
    x.dtype() == DType::F32 && weight.dtype() == DType::F32 && x.device().is_cpu() && enabled() && (x.track_op() || weight.track_op())
}
