//! `reel estimate`: the compute, time, cost and energy of a video before it is made.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use reel_estimate::{accelerator, estimate, Estimate, Hardware, ModelSpec, VideoSpec, ACCELERATORS};
use reel_models::device::parse_dtype;

#[derive(Args)]
pub struct EstimateArgs {
    /// demo (the bundled model), a published configuration (`reel models`) or a checkpoint folder
    #[arg(long, short, default_value = "demo")]
    model: String,
    /// WIDTHxHEIGHT [default: the model's]
    #[arg(long)]
    size: Option<String>,
    /// Length in seconds (with --fps); rounded to the nearest frame count the model makes
    #[arg(long, conflicts_with = "frames")]
    seconds: Option<f64>,
    /// Frames per second [default: the model's]
    #[arg(long)]
    fps: Option<f64>,
    /// Number of frames, 4k+1 [default: the model's]
    #[arg(long)]
    frames: Option<usize>,
    /// Denoising steps [default: the model's]
    #[arg(long)]
    steps: Option<usize>,
    /// Guidance scale; above 1 doubles the transformer's work [default: the model's]
    #[arg(long)]
    guidance: Option<f64>,
    /// Fraction of transformer evaluations a step cache skips (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    step_cache: f64,
    /// The accelerator: h100, h200, h800, a100, a800, l40s, rtx4090, or cpu (this machine, measured)
    #[arg(long, default_value = "h100")]
    gpu: String,
    /// How many of them share the work
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Model FLOPs utilisation, 0 to 1 [default: 0.4 on GPUs; 1 on the CPU, whose rate is measured]
    #[arg(long)]
    utilisation: Option<f64>,
    /// Speed-up efficiency of several devices
    #[arg(long, default_value_t = 0.9)]
    parallel_efficiency: f64,
    /// Price of one device per hour, in US dollars
    #[arg(long)]
    price_per_hour: Option<f64>,
    /// Compute dtype of the text encoder and transformer
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Print JSON for tools
    #[arg(long)]
    json: bool,
}

/// Utilisation GPUs reach on video diffusion transformers' long sequences (flash attention and large
/// matrix products), a middle value of published runs.
const GPU_UTILISATION: f64 = 0.4;

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let model = model_spec(&args.model)?;
    let defaults = model.defaults;
    let (width, height) = match &args.size {
        Some(size) => parse_size(size)?,
        None => (defaults.width, defaults.height),
    };
    let fps = args.fps.unwrap_or(defaults.fps);
    anyhow::ensure!(fps.is_finite() && fps > 0.0, "--fps must be positive, found {fps}");
    let temporal = model.latents.temporal;
    let frames = match (args.frames, args.seconds) {
        (Some(frames), _) => frames,
        (None, Some(seconds)) => {
            anyhow::ensure!(seconds.is_finite() && seconds > 0.0, "--seconds must be positive, found {seconds}");
            ((seconds * fps / temporal as f64).round().max(1.0) as usize) * temporal + 1
        }
        (None, None) => defaults.frames,
    };
    let dtype = parse_dtype(&args.dtype)?;
    let video = VideoSpec {
        width,
        height,
        frames,
        fps,
        steps: args.steps.unwrap_or(defaults.steps),
        guidance: args.guidance.unwrap_or(defaults.guidance),
        step_cache: args.step_cache,
        dtype_bytes: dtype.size_in_bytes(),
    };
    let hardware = hardware(&args, dtype)?;
    let estimate = estimate(&model, &video, &hardware, args.price_per_hour)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&estimate)?);
    } else {
        print_estimate(&estimate);
    }
    Ok(())
}

fn model_spec(name: &str) -> anyhow::Result<ModelSpec> {
    if name == "demo" {
        let dir = reel_demo::bundled::checkpoint_dir().context("the bundled demo model is unavailable")?;
        return Ok(ModelSpec::checkpoint("demo", &dir)?);
    }
    let path = Path::new(name);
    if path.is_dir() {
        return Ok(ModelSpec::checkpoint(name, path)?);
    }
    Ok(ModelSpec::published(name)?)
}

fn parse_size(size: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = size.split_once('x').and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    parsed.filter(|&(w, h)| w > 0 && h > 0).with_context(|| format!("--size '{size}' is not WIDTHxHEIGHT, such as 1280x720"))
}

fn hardware(args: &EstimateArgs, dtype: DType) -> anyhow::Result<Hardware> {
    anyhow::ensure!(args.count >= 1, "--count must be 1 or more");
    if args.gpu.eq_ignore_ascii_case("cpu") {
        let flops = measure_cpu_flops(dtype)?;
        return Ok(Hardware {
            name: format!("this CPU ({} threads, {:.0} GFLOP/s measured in {dtype:?})", candle_core::utils::get_num_threads(), flops / 1e9),
            peak_flops: flops,
            memory_bytes: system_memory_bytes().unwrap_or(f64::INFINITY),
            watts: 100.0,
            count: args.count,
            utilisation: args.utilisation.unwrap_or(1.0),
            parallel_efficiency: args.parallel_efficiency,
        });
    }
    let device = accelerator(&args.gpu).with_context(|| {
        let names: Vec<&str> = ACCELERATORS.iter().map(|a| a.name).collect();
        format!("unknown accelerator '{}': choose cpu or one of {}", args.gpu, names.join(", "))
    })?;
    Ok(Hardware {
        name: device.description.to_string(),
        peak_flops: device.peak_flops,
        memory_bytes: device.memory_bytes,
        watts: device.watts,
        count: args.count,
        utilisation: args.utilisation.unwrap_or(GPU_UTILISATION),
        parallel_efficiency: args.parallel_efficiency,
    })
}

/// This CPU's matrix-product rate in `dtype`, on products of a video transformer's shape
/// (about a second of measuring).
fn measure_cpu_flops(dtype: DType) -> anyhow::Result<f64> {
    let (m, k, n) = (1024usize, 1536usize, 1536usize);
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?.to_dtype(dtype)?;
    a.matmul(&b)?; // warm-up
    let (mut runs, started) = (0u32, Instant::now());
    while runs < 3 || started.elapsed().as_secs_f64() < 1.0 {
        a.matmul(&b)?;
        runs += 1;
    }
    Ok(2.0 * (m * k * n) as f64 * runs as f64 / started.elapsed().as_secs_f64())
}

fn system_memory_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// 1234 s -> "20 min 34 s".
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{seconds:.1} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

fn print_estimate(e: &Estimate) {
    let v = &e.video;
    println!(
        "{}: {}x{}, {} frames ({:.2} s at {} fps), {} steps, guidance {}",
        e.model,
        v.width,
        v.height,
        v.frames,
        (v.frames - 1) as f64 / v.fps,
        v.fps,
        v.steps,
        v.guidance
    );
    println!("on {} x {}\n", e.hardware.count, e.hardware.name);
    println!("{:<14} {:>12} {:>14} {:>10} {:>16}", "STAGE", "TFLOP", "TIME", "WEIGHTS", "WORKING MEMORY");
    for s in &e.stages {
        println!(
            "{:<14} {:>12.1} {:>14} {:>8.2} GB {:>13.2} GB",
            s.stage,
            s.flops / 1e12,
            duration(s.seconds),
            s.weight_bytes / 1e9,
            s.activation_bytes / 1e9
        );
    }
    println!("{:<14} {:>12.1} {:>14}\n", "total", e.total_flops / 1e12, duration(e.seconds));
    let cost = e.cost_usd.map(|c| format!("${c:.2}")).unwrap_or_else(|| "give --price-per-hour".into());
    println!("time {} · cost {cost} · energy {:.3} kWh", duration(e.seconds), e.energy_kwh);
    println!(
        "memory {:.1} GB per device of {:.0} GB: {}",
        e.peak_memory_bytes / 1e9,
        e.hardware.memory_bytes / 1e9,
        if e.fits { "fits" } else { "does NOT fit" }
    );
    println!("\nassumptions:");
    for a in &e.assumptions {
        println!("  - {a}");
    }
}
