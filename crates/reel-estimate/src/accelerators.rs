//! Accelerators an estimate can assume: peak dense bf16 tensor throughput (no sparsity), memory
//! and board power, from the vendors' data sheets; and this machine's CPU, measured.

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use crate::cost::vae_decode;
use crate::estimate::{CallOverhead, Hardware, MeasuredRates};
use crate::{EstimateError, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accelerator {
    /// The name `--gpu` takes.
    pub name: &'static str,
    pub description: &'static str,
    /// Peak dense bf16 tensor FLOP/s.
    pub peak_flops: f64,
    pub memory_bytes: f64,
    /// Board power at full load, in watts (what energy estimates charge).
    pub watts: f64,
}

const T: f64 = 1e12;
const GB: f64 = 1e9;

/// The table. H800 and A800 are the export versions of H100 and A100: the same compute, slower
/// links between GPUs.
pub const ACCELERATORS: [Accelerator; 7] = [
    Accelerator { name: "h100", description: "NVIDIA H100 SXM5 80 GB", peak_flops: 989.4 * T, memory_bytes: 80.0 * GB, watts: 700.0 },
    Accelerator { name: "h200", description: "NVIDIA H200 SXM 141 GB", peak_flops: 989.4 * T, memory_bytes: 141.0 * GB, watts: 700.0 },
    Accelerator { name: "h800", description: "NVIDIA H800 SXM5 80 GB", peak_flops: 989.4 * T, memory_bytes: 80.0 * GB, watts: 700.0 },
    Accelerator { name: "a100", description: "NVIDIA A100 SXM4 80 GB", peak_flops: 312.0 * T, memory_bytes: 80.0 * GB, watts: 400.0 },
    Accelerator { name: "a800", description: "NVIDIA A800 SXM4 80 GB", peak_flops: 312.0 * T, memory_bytes: 80.0 * GB, watts: 400.0 },
    Accelerator { name: "l40s", description: "NVIDIA L40S 48 GB", peak_flops: 362.05 * T, memory_bytes: 48.0 * GB, watts: 350.0 },
    Accelerator { name: "rtx4090", description: "NVIDIA GeForce RTX 4090 24 GB (bf16 with f32 accumulation)", peak_flops: 165.2 * T, memory_bytes: 24.0 * GB, watts: 450.0 },
];

/// An accelerator of the table by name (case does not matter).
pub fn accelerator(name: &str) -> Option<Accelerator> {
    ACCELERATORS.iter().find(|a| a.name.eq_ignore_ascii_case(name)).copied()
}

/// Utilisation GPUs reach on video diffusion transformers' long sequences (flash attention and
/// large matrix products): a middle value of published runs, 35 to 50%.
pub const GPU_UTILISATION: f64 = 0.4;

/// What one CPU board draws under full load, for energy estimates (a typical server socket).
const CPU_WATTS: f64 = 100.0;

impl Hardware {
    /// `count` accelerators of the table, or `cpu` (this machine, its matrix-product rate measured
    /// once per process); utilisation defaults to [`GPU_UTILISATION`] on GPUs and to 1 on the CPU,
    /// whose measured rate is already an achieved one.
    pub fn named(name: &str, dtype: DType, count: usize, utilisation: Option<f64>, parallel_efficiency: f64) -> Result<Self> {
        if count == 0 {
            return Err(EstimateError::Input("the device count must be 1 or more".into()));
        }
        if name.eq_ignore_ascii_case("cpu") {
            let cpu = cpu_calibration(dtype)?;
            return Ok(Self {
                name: format!("this CPU ({} threads, rates measured in {dtype:?})", candle_core::utils::get_num_threads()),
                peak_flops: cpu.rates.matmul.iter().flat_map(|(_, table)| table.iter().map(|(_, r)| *r)).fold(0.0, f64::max),
                memory_bytes: reel_models::device::system_memory_bytes().unwrap_or(f64::INFINITY),
                watts: CPU_WATTS,
                count,
                utilisation: utilisation.unwrap_or(1.0),
                parallel_efficiency,
                measured: Some(cpu.rates.clone()),
                overhead: cpu.overhead,
            });
        }
        let device = accelerator(name).ok_or_else(|| {
            let names: Vec<&str> = ACCELERATORS.iter().map(|a| a.name).collect();
            EstimateError::Input(format!("unknown accelerator '{name}': choose cpu or one of {}", names.join(", ")))
        })?;
        Ok(Self {
            name: device.description.to_string(),
            peak_flops: device.peak_flops,
            memory_bytes: device.memory_bytes,
            watts: device.watts,
            count,
            utilisation: utilisation.unwrap_or(GPU_UTILISATION),
            parallel_efficiency,
            measured: None,
            overhead: CallOverhead::default(),
        })
    }
}

/// What this CPU achieves, measured on reel's own layers.
#[derive(Debug, Clone)]
struct CpuCalibration {
    rates: MeasuredRates,
    overhead: CallOverhead,
}

/// Measures this CPU once per process and dtype (a few seconds): the rate of matrix products of a
/// video transformer's shape and of a VAE-sized convolution, and the fixed cost of a transformer
/// block and of a VAE convolution call on models so small that their arithmetic is negligible.
fn cpu_calibration(dtype: DType) -> Result<CpuCalibration> {
    static F32: OnceLock<CpuCalibration> = OnceLock::new();
    static HALF: OnceLock<CpuCalibration> = OnceLock::new();
    let cell = if dtype == DType::F32 { &F32 } else { &HALF };
    if let Some(calibration) = cell.get() {
        return Ok(calibration.clone());
    }
    let measured = measure_cpu(dtype).map_err(|e| EstimateError::Input(format!("cannot measure this CPU: {e}")))?;
    Ok(cell.get_or_init(|| measured).clone())
}

/// Median seconds of `f` over runs filling about `budget` seconds (at least three).
fn time(budget: f64, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut runs = Vec::new();
    let started = Instant::now();
    while runs.len() < 3 || started.elapsed().as_secs_f64() < budget {
        let run = Instant::now();
        f()?;
        runs.push(run.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

fn measure_cpu(dtype: DType) -> candle_core::Result<CpuCalibration> {
    use reel_models::nn::conv::CausalConv3d;
    use reel_models::wan::{WanTransformer, WanTransformerConfig, WanVae, WanVaeConfig};
    use reel_models::weights::random_var_builder;
    let cpu = Device::Cpu;

    let mut matmul = Vec::new();
    for rows in [64usize, 256, 1024] {
        let mut table = Vec::new();
        for width in [16usize, 32, 64, 128, 256, 512, 1024, 2048] {
            let a = Tensor::randn(0f32, 1.0, (rows, width), &cpu)?.to_dtype(dtype)?;
            let b = Tensor::randn(0f32, 1.0, (width, width), &cpu)?.to_dtype(dtype)?;
            table.push((width, 2.0 * (rows * width * width) as f64 / time(0.08, || a.matmul(&b).map(drop))?));
        }
        matmul.push((rows, table));
    }
    let (frames, side) = (4usize, 32usize);
    let mut conv = Vec::new();
    for width in [4usize, 8, 16, 32, 64, 128, 256] {
        let layer = CausalConv3d::cube(width, width, 3, random_var_builder(DType::F32, &cpu))?;
        let x = Tensor::randn(0f32, 1.0, (1, width, frames, side, side), &cpu)?;
        let flops = 2.0 * 27.0 * (width * width * frames * side * side) as f64;
        conv.push((width, flops / time(0.15, || layer.forward(&x, None).map(drop))?));
    }

    // Blocks: the difference between transformers of 1 and 5 tiny layers, per layer.
    let tiny = |layers: usize| -> candle_core::Result<f64> {
        let mut config: WanTransformerConfig = serde_json::from_str("{}").expect("defaults deserialize");
        (config.num_attention_heads, config.attention_head_dim, config.ffn_dim, config.num_layers) = (2, 8, 32, layers);
        (config.in_channels, config.out_channels, config.text_dim, config.freq_dim) = (4, Some(4), 16, 16);
        let model = WanTransformer::new(&config, random_var_builder(dtype, &cpu)).map_err(candle_core::Error::wrap)?;
        let latents = Tensor::randn(0f32, 1.0, (1, 4, 1, 4, 4), &cpu)?;
        let context = Tensor::randn(0f32, 1.0, (1, 4, 16), &cpu)?.to_dtype(dtype)?;
        let timestep = Tensor::new(&[500f32], &cpu)?;
        time(0.3, || model.forward(&latents, &timestep, &context).map(drop).map_err(candle_core::Error::wrap))
    };
    let block_seconds = ((tiny(5)? - tiny(1)?) / 4.0).max(0.0);

    // Convolution calls: a tiny VAE's decode, per call.
    let config: WanVaeConfig = serde_json::from_value(serde_json::json!({
        "base_dim": 4, "z_dim": 4, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 1, "attn_scales": [],
        "temperal_downsample": [false, true, true], "latents_mean": [0.0, 0.0, 0.0, 0.0], "latents_std": [1.0, 1.0, 1.0, 1.0]
    }))
    .expect("a valid VAE configuration");
    let vae = WanVae::new(&config, random_var_builder(DType::F32, &cpu)).map_err(candle_core::Error::wrap)?;
    let latents = Tensor::randn(0f32, 1.0, (1, 4, 2, 2, 2), &cpu)?;
    let decode = time(0.3, || vae.decode(&latents, None).map(drop).map_err(candle_core::Error::wrap))?;
    let conv_seconds = decode / vae_decode(&config, 2, 2, 2).calls;

    Ok(CpuCalibration { rates: MeasuredRates { matmul, conv }, overhead: CallOverhead { block_seconds, conv_seconds } })
}
