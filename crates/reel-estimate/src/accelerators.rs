//! Accelerators an estimate can assume: peak dense bf16 tensor throughput (no sparsity), memory
//! and board power, from the vendors' data sheets; and this machine's CPU, measured.

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use crate::estimate::Hardware;
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
            let flops = cpu_flops(dtype)?;
            return Ok(Self {
                name: format!("this CPU ({} threads, {:.0} GFLOP/s measured in {dtype:?})", candle_core::utils::get_num_threads(), flops / 1e9),
                peak_flops: flops,
                memory_bytes: system_memory_bytes().unwrap_or(f64::INFINITY),
                watts: CPU_WATTS,
                count,
                utilisation: utilisation.unwrap_or(1.0),
                parallel_efficiency,
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
        })
    }
}

/// This CPU's matrix-product rate in `dtype` on products of a video transformer's shape (about a
/// second of measuring, once per process and dtype).
fn cpu_flops(dtype: DType) -> Result<f64> {
    static F32: OnceLock<f64> = OnceLock::new();
    static HALF: OnceLock<f64> = OnceLock::new();
    let cell = if dtype == DType::F32 { &F32 } else { &HALF };
    if let Some(flops) = cell.get() {
        return Ok(*flops);
    }
    let measure = || -> candle_core::Result<f64> {
        let (m, k, n) = (1024usize, 1536usize, 1536usize);
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?.to_dtype(dtype)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?.to_dtype(dtype)?;
        a.matmul(&b)?;
        let (mut runs, started) = (0u32, Instant::now());
        while runs < 3 || started.elapsed().as_secs_f64() < 1.0 {
            a.matmul(&b)?;
            runs += 1;
        }
        Ok(2.0 * (m * k * n) as f64 * runs as f64 / started.elapsed().as_secs_f64())
    };
    let flops = measure().map_err(|e| EstimateError::Input(format!("cannot measure this CPU: {e}")))?;
    Ok(*cell.get_or_init(|| flops))
}

fn system_memory_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}
