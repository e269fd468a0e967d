//! `reel estimate`: the compute, time, cost and energy of a video before it is made.

use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device};
use clap::Args;
use reel_estimate::{estimate, Estimate, Hardware, ModelSpec, VideoSpec};
use reel_models::device::DtypeChoice;

#[derive(Args)]
pub struct EstimateArgs {
    /// demo (the bundled model), a published configuration by its `reel models` name or hub id, or a checkpoint folder
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
    /// Compute dtype of the text encoder and transformer: f32, bf16, f16 or auto (as `reel
    /// generate`'s: bf16 on GPUs, on this CPU what generation would pick)
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Print JSON for tools
    #[arg(long)]
    json: bool,
}

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
    let dtype = match DtypeChoice::parse(&args.dtype)? {
        // What `auto` resolves to on any GPU.
        DtypeChoice::Auto if !args.gpu.eq_ignore_ascii_case("cpu") => DType::BF16,
        choice => choice.resolve(&Device::Cpu, model.largest_component_parameters()),
    };
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
    Ok(Hardware::named(&args.gpu, dtype, args.count, args.utilisation, args.parallel_efficiency)?)
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
