//! `reel bench matmul`: the linear layers of a published transformer at a video size, timed with
//! each matrix product reel has on this machine (candle's in f32 and bf16, reel's packed bf16
//! kernel where the CPU has AVX-512 BF16), in GFLOP/s.

use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use half::bf16;
use reel_models::kernels::bf16_gemm::{self, Activation, PackedBf16};
use reel_models::kernels::int8_gemm::{self, PackedInt8};

/// (name, rows, in, out) of each distinct product of one transformer block.
fn shapes(model: &reel_models::wan::PublishedModel, video_tokens: usize, text_tokens: usize) -> Vec<(&'static str, usize, usize, usize)> {
    let dim = model.transformer.inner_dim();
    let ffn = model.transformer.ffn_dim;
    vec![
        ("attention q/k/v/o", video_tokens, dim, dim),
        ("cross-attention k/v (text)", text_tokens, dim, dim),
        ("feed-forward up", video_tokens, dim, ffn),
        ("feed-forward down", video_tokens, ffn, dim),
    ]
}

/// Median seconds of `runs` calls after one untimed call.
fn time(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut seconds = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    seconds.sort_by(f64::total_cmp);
    Ok(seconds[seconds.len() / 2])
}

/// A kernel's GFLOP/s from `measure`'s seconds, or `missing` where this CPU lacks the kernel.
fn rate(available: bool, missing: &str, flops: f64, measure: impl FnOnce() -> anyhow::Result<f64>) -> anyhow::Result<String> {
    Ok(if available { format!("{:>12.0}", flops / measure()? / 1e9) } else { format!("{missing:>12}") })
}

pub fn run(model: &reel_models::wan::PublishedModel, video_tokens: usize, text_tokens: usize, runs: usize) -> anyhow::Result<()> {
    let device = Device::Cpu;
    println!("{} linear layers, {video_tokens} video tokens, {text_tokens} text tokens, GFLOP/s (median of {runs})", model.name);
    println!("{:<28} {:>16} {:>10} {:>10} {:>12} {:>12}", "product", "shape", "candle f32", "candle bf16", "reel bf16", "reel int8");
    for (name, rows, in_dim, out_dim) in shapes(model, video_tokens, text_tokens) {
        let flops = 2.0 * rows as f64 * in_dim as f64 * out_dim as f64;
        let x = Tensor::randn(0f32, 1.0, (rows, in_dim), &device)?;
        let w = (Tensor::randn(0f32, 1.0, (out_dim, in_dim), &device)? * (in_dim as f64).powf(-0.5))?;
        let candle_f32 = candle_nn::Linear::new(w.clone(), None);
        let f32_seconds = time(runs, || Ok(drop(candle_f32.forward(&x)?)))?;
        let (x16, w16) = (x.to_dtype(DType::BF16)?, w.to_dtype(DType::BF16)?);
        let candle_bf16 = candle_nn::Linear::new(w16.clone(), None);
        let bf16_seconds = time(runs, || Ok(drop(candle_bf16.forward(&x16)?)))?;
        let packed_rate = rate(bf16_gemm::available(), "no AVX-512 BF16", flops, || {
            let packed = PackedBf16::pack(&w16.flatten_all()?.to_vec1()?, out_dim, in_dim);
            let values = x16.flatten_all()?.to_vec1()?;
            time(runs, || Ok(drop(packed.matmul::<bf16>(&values, rows, None, Activation::None))))
        })?;
        let int8_rate = rate(int8_gemm::available(), "no VNNI", flops, || {
            let packed = PackedInt8::quantize(&w.flatten_all()?.to_vec1()?, out_dim, in_dim);
            let values = x.flatten_all()?.to_vec1()?;
            time(runs, || Ok(drop(packed.matmul::<bf16>(&values, rows, None, Activation::None))))
        })?;
        println!(
            "{name:<28} {:>16} {:>10.0} {:>10.0} {packed_rate} {int8_rate}",
            format!("{rows}x{in_dim}x{out_dim}"),
            flops / f32_seconds / 1e9,
            flops / bf16_seconds / 1e9
        );
    }
    Ok(())
}
