//! `reel bench`: speed measurements on this machine. Timings belong here, never in tests.

use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use reel_models::device::{parse_device, parse_dtype};
use reel_models::nn::linear::{with_quantization, Quantization};
use reel_models::wan::{published_model, published_models, PublishedModel, WanTransformer, WanVae};
use reel_models::weights::random_var_builder;
use reel_sampling::pipeline::{GenerationRequest, WanPipeline};
use reel_sampling::progress::Stage;

use super::memory::{peak_memory_bytes, reset_peak_memory};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Time one forward of a Wan transformer of a published configuration, with random weights
    Transformer(TransformerBench),
    /// Run the whole pipeline of a published configuration with random weights: time and peak
    /// memory of each stage
    Pipeline(PipelineBench),
    /// Encode a synthetic clip as MP4, GIF and WebP: time per frame and file sizes
    Media(MediaBench),
    /// Compare `reel estimate`'s predictions for this CPU with measured runs: the bundled demo
    /// model's generation, and a published configuration's transformer forward and VAE decode
    /// with random weights
    Estimate(EstimateBench),
    /// Time one VAE decode of a published configuration with random weights (f32)
    Vae(VaeBench),
    /// GFLOP/s of each matrix product of a published transformer's linear layers, with every
    /// kernel this machine has
    Matmul(MatmulBench),
    /// The step cache on the demo model: evaluations saved, time, PSNR against uncached clips and
    /// prompt-adherence scores, per threshold
    StepCache(StepCacheBench),
    /// Throughput of the studio's API alone: create + retrieve against an in-process server
    /// without workers (no generation)
    Api(ApiBench),
}

#[derive(Args)]
struct ApiBench {
    /// Seconds to measure
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent clients
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

#[derive(Args)]
struct MediaBench {
    /// Frame width in pixels
    #[arg(long, default_value_t = 832)]
    width: u32,
    /// Frame height in pixels
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Frames
    #[arg(long, default_value_t = 81)]
    frames: usize,
    /// Frames per second
    #[arg(long, default_value_t = 16.0)]
    fps: f64,
}

/// The model and video size a benchmark runs.
#[derive(Args)]
pub(super) struct BenchShape {
    /// Published configuration (see `reel models`)
    #[arg(long, default_value = "wan2.1-t2v-1.3b")]
    pub(super) model: String,
    /// Video frames (4k+1)
    #[arg(long, default_value_t = 17)]
    pub(super) frames: usize,
    /// Video width in pixels
    #[arg(long, default_value_t = 320)]
    pub(super) width: usize,
    /// Video height in pixels
    #[arg(long, default_value_t = 192)]
    pub(super) height: usize,
}

#[derive(Args)]
struct PipelineBench {
    #[command(flatten)]
    shape: BenchShape,
    /// Denoising steps
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Guidance scale (above 1 doubles the transformer's work)
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Compute dtype of the text encoder and transformer
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Quantize the text encoder's and transformer's linear layers at load time (q8)
    #[arg(long, value_name = "FORMAT")]
    quantize: Option<Quantization>,
    /// cpu, cuda, cuda:N or metal
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Also run diffusers' pipeline on the same work in this run (scripts/bench/pipeline.py, bf16,
    /// which needs torch, transformers and diffusers) and print both by stage
    #[arg(long, value_parser = ["diffusers"], conflicts_with = "json")]
    compare: Option<String>,
    /// Python interpreter for --compare
    #[arg(long, default_value = "python3")]
    python: String,
}

#[derive(Args)]
struct EstimateBench {
    #[command(flatten)]
    shape: BenchShape,
    /// Compute dtype of the text encoder and transformer
    #[arg(long, default_value = "f32")]
    dtype: String,
}

#[derive(Args)]
struct VaeBench {
    #[command(flatten)]
    shape: BenchShape,
    /// Timed decodes
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Also run the reference implementation on the same shape in this run (scripts/bench/vae.py,
    /// which needs torch and diffusers) and print both with their ratio
    #[arg(long, value_parser = ["diffusers"])]
    compare: Option<String>,
    /// Python interpreter for --compare
    #[arg(long, default_value = "python3")]
    python: String,
}

#[derive(Args)]
struct StepCacheBench {
    /// Checkpoint of the demo's geometry [default: the bundled demo model]
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Thresholds to compare with the uncached run
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.05, 0.1, 0.2, 0.4])]
    thresholds: Vec<f64>,
    /// Held-out prompts
    #[arg(long, default_value_t = 20)]
    count: usize,
}

#[derive(Args)]
struct MatmulBench {
    #[command(flatten)]
    shape: BenchShape,
    /// Prompt tokens (rows of the cross-attention key/value products)
    #[arg(long, default_value_t = 512)]
    text_tokens: usize,
    /// Timed runs of each product
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Args)]
struct TransformerBench {
    #[command(flatten)]
    shape: BenchShape,
    /// Prompt tokens given to cross-attention (Wan pads prompts to 512)
    #[arg(long, default_value_t = 512)]
    text_tokens: usize,
    /// Videos per forward (2 measures classifier-free guidance batched into one forward)
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Compute dtype: f32, bf16 or f16
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Quantize the linear layers at load time (q8)
    #[arg(long, value_name = "FORMAT")]
    quantize: Option<Quantization>,
    /// cpu, cuda, cuda:N or metal
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Untimed forwards before measuring
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed forwards
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Also run the reference implementation on the same shape in this run (scripts/bench/transformer.py,
    /// which needs torch and diffusers) and print both with their ratio
    #[arg(long, value_parser = ["diffusers"])]
    compare: Option<String>,
    /// Python interpreter for --compare
    #[arg(long, default_value = "python3")]
    python: String,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Transformer(bench) => transformer(bench),
        BenchTarget::Pipeline(bench) => pipeline(bench),
        BenchTarget::Media(bench) => media(bench),
        BenchTarget::Estimate(bench) => super::estimate_bench::run(&bench.shape.model, bench.shape.frames, bench.shape.height, bench.shape.width, &bench.dtype),
        BenchTarget::Matmul(bench) => matmul(bench),
        BenchTarget::Vae(bench) => vae(bench),
        BenchTarget::StepCache(bench) => {
            let dir = match bench.model {
                Some(dir) => dir,
                None => reel_demo::bundled::checkpoint_dir().context("the bundled demo model is unavailable")?,
            };
            super::step_cache_bench::run(&dir, &bench.thresholds, bench.count)
        }
        BenchTarget::Api(bench) => api(bench),
    }
}

fn media(args: MediaBench) -> anyhow::Result<()> {
    let video = reel_media::test_clip::clip(args.width, args.height, args.frames, args.fps);
    let dir = std::env::temp_dir().join(format!("reel-bench-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "{} frames of {}x{} at {} fps (synthetic clip: gradients, moving shapes, texture), default quality",
        args.frames, args.width, args.height, args.fps
    );
    for name in ["clip.mp4", "clip.gif", "clip.webp"] {
        let path = dir.join(name);
        let started = Instant::now();
        reel_media::write_video(&video, None, &path, reel_media::VideoOptions::default())?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path)?.len();
        println!(
            "  {name:<10} {:>7.1} ms/frame  {:>9} bytes  ({:.0} kbit/s)",
            seconds * 1000.0 / args.frames as f64,
            bytes,
            bytes as f64 * 8.0 / 1000.0 / video.duration()
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn published(name: &str) -> anyhow::Result<PublishedModel> {
    published_model(name).with_context(|| {
        let names: Vec<_> = published_models().iter().map(|m| m.name).collect();
        format!("unknown model '{name}': choose one of {}", names.join(", "))
    })
}

fn pipeline(args: PipelineBench) -> anyhow::Result<()> {
    let model = published(&args.shape.model)?;
    if args.compare.is_some() {
        super::compare::check_reference(&args.python, "pipeline")?;
    }
    let stage_flops = pipeline_flops(&model, &args)?;
    let name = model.name;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let pipeline = WanPipeline::random(model, dtype, &device).with_quantization(args.quantize);
    let mut request = GenerationRequest::new("random weights");
    request.frames = args.shape.frames;
    request.width = args.shape.width;
    request.height = args.shape.height;
    request.steps = args.steps;
    request.guidance = args.guidance;
    pipeline.latent_shape(&request)?;

    // Peak resident memory per stage: the kernel's high-water mark, reset when a stage begins.
    let mut peaks: Vec<(String, u64)> = Vec::new();
    let mut current: Option<Stage> = None;
    reset_peak_memory();
    let started = Instant::now();
    let generated = pipeline.generate(&request, &mut |p| {
        if current != Some(p.stage) {
            if let Some(stage) = current {
                peaks.push((stage.to_string(), peak_memory_bytes().unwrap_or(0)));
            }
            reset_peak_memory();
            current = Some(p.stage);
        }
    })?;
    if let Some(stage) = current {
        peaks.push((stage.to_string(), peak_memory_bytes().unwrap_or(0)));
    }
    let total = started.elapsed().as_secs_f64();
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    let overall = peaks.iter().map(|(_, b)| *b).max().unwrap_or(0);
    if args.json {
        let report = serde_json::json!({
            "model": name, "dtype": args.dtype, "device": args.device,
            "frames": args.shape.frames, "height": args.shape.height, "width": args.shape.width, "steps": args.steps,
            "guidance": args.guidance, "seconds": total,
            "stage_seconds": generated.stage_seconds.iter().map(|(s, t)| (s.to_string(), *t)).collect::<Vec<_>>(),
            "stage_peak_bytes": peaks, "peak_bytes": overall,
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "{name} pipeline (random weights), {} frames at {}x{}, {} steps, guidance {}, {} on {}: {total:.1} s",
        args.shape.frames, args.shape.width, args.shape.height, args.steps, args.guidance, args.dtype, args.device
    );
    for (stage, seconds) in &generated.stage_seconds {
        println!("  {stage:<22} {seconds:>8.1} s");
    }
    println!("peak resident memory by stage:");
    for (stage, bytes) in &peaks {
        println!("  {stage:<22} {:>8.2} GiB", gib(*bytes));
    }
    println!("peak resident memory: {:.2} GiB", gib(overall));
    if args.compare.is_some() {
        let reference = super::compare::diffusers_pipeline(&args.python, name, &args.shape, args.steps, args.guidance)?;
        let mut rows = Vec::new();
        for ((stage, seconds), (part, flops)) in generated.stage_seconds.iter().zip(["encode", "denoise", "decode"].iter().zip(stage_flops)) {
            let theirs = reference.stage_seconds.get(*part).copied().with_context(|| format!("the diffusers report has no {part} stage"))?;
            rows.push((stage.to_string(), *seconds, theirs, flops));
        }
        rows.push(("whole pipeline".into(), generated.stage_seconds.iter().map(|(_, s)| s).sum(), reference.stage_seconds.values().sum(), stage_flops.iter().sum()));
        let rows: Vec<(&str, f64, f64, f64)> = rows.iter().map(|(p, a, b, f)| (p.as_str(), *a, *b, *f)).collect();
        super::compare::print_table(&rows, Some(overall), reference.peak_bytes);
    }
    Ok(())
}

/// FLOPs of the pipeline benchmark's stages: prompt encoding (prompt and negative prompt),
/// denoising (every step, twice with guidance), decoding.
fn pipeline_flops(model: &PublishedModel, args: &PipelineBench) -> anyhow::Result<[f64; 3]> {
    let text_tokens = reel_sampling::prompt::DEFAULT_MAX_SEQUENCE_LENGTH;
    let passes = if args.guidance > 1.0 { 2.0 } else { 1.0 };
    let (frames, height, width) = model.latents.latent_dims(args.shape.frames, args.shape.height, args.shape.width)?;
    let tokens = video_tokens(model, &args.shape)?;
    Ok([
        passes * reel_estimate::cost::text_encoder(&model.text_encoder, text_tokens).flops,
        args.steps as f64 * passes * model.transformer.forward_flops(tokens, text_tokens).total(),
        reel_estimate::cost::vae_decode(&model.vae, frames, height, width).flops,
    ])
}

fn vae(args: VaeBench) -> anyhow::Result<()> {
    let model = published(&args.shape.model)?;
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    if args.compare.is_some() {
        super::compare::check_reference(&args.python, "vae")?;
    }
    let device = Device::Cpu;
    let (frames, height, width) = model.latents.latent_dims(args.shape.frames, args.shape.height, args.shape.width)?;
    let vae = WanVae::new(&model.vae, random_var_builder(DType::F32, &device))?;
    let latents = Tensor::randn(0f32, 1.0, (1, model.latents.channels, frames, height, width), &device)?;
    reset_peak_memory();
    let mut seconds = (0..args.runs)
        .map(|_| {
            let started = Instant::now();
            vae.decode(&latents, None)?;
            Ok(started.elapsed().as_secs_f64())
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let peak = peak_memory_bytes();
    drop(vae);
    let flops = reel_estimate::cost::vae_decode(&model.vae, frames, height, width).flops;
    println!("{} VAE decode, {} frames at {}x{}, f32 on cpu", model.name, args.shape.frames, args.shape.width, args.shape.height);
    println!("decode: {median:.3} s median of {}, {:.0} GFLOP -> {:.0} GFLOP/s", args.runs, flops / 1e9, flops / median / 1e9);
    if args.compare.is_some() {
        let reference = super::compare::diffusers_vae(&args.python, model.name, &args.shape, 0, args.runs)?;
        super::compare::print_table(&[("vae decode", median, reference.seconds, flops)], peak, reference.peak_bytes);
    }
    Ok(())
}

fn matmul(args: MatmulBench) -> anyhow::Result<()> {
    let model = published(&args.shape.model)?;
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let tokens = video_tokens(&model, &args.shape)?;
    super::matmul_bench::run(&model, tokens, args.text_tokens, args.runs)
}

/// Tokens the transformer sees for a video of the benchmark's shape.
fn video_tokens(model: &PublishedModel, shape: &BenchShape) -> anyhow::Result<usize> {
    let (frames, height, width) = model.latents.latent_dims(shape.frames, shape.height, shape.width)?;
    let (pt, ph, pw) = model.transformer.patch();
    Ok((frames / pt) * (height / ph) * (width / pw))
}

fn transformer(args: TransformerBench) -> anyhow::Result<()> {
    let model = published(&args.shape.model)?;
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    if args.compare.is_some() {
        super::compare::check_reference(&args.python, "transformer")?;
    }
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let (frames, height, width) = model.latents.latent_dims(args.shape.frames, args.shape.height, args.shape.width)?;
    let config = &model.transformer;
    let tokens = video_tokens(&model, &args.shape)?;

    let build = Instant::now();
    let transformer = with_quantization(args.quantize, || WanTransformer::new(config, random_var_builder(dtype, &device)))?;
    let build_seconds = build.elapsed().as_secs_f64();

    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.batch == 1 || args.compare.is_none(), "--compare runs the reference with one video per forward: leave out --batch");
    let latents = Tensor::randn(0f32, 1.0, (args.batch, config.in_channels, frames, height, width), &device)?;
    let context = Tensor::randn(0f32, 1.0, (args.batch, args.text_tokens, config.text_dim), &device)?.to_dtype(dtype)?;
    let timestep = Tensor::new(vec![500f32; args.batch], &device)?;

    reset_peak_memory();
    for _ in 0..args.warmup {
        forward(&transformer, &latents, &timestep, &context, &device)?;
    }
    let mut seconds: Vec<f64> = (0..args.runs)
        .map(|_| {
            let start = Instant::now();
            forward(&transformer, &latents, &timestep, &context, &device)?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect::<anyhow::Result<_>>()?;
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let flops = args.batch as f64 * config.forward_flops(tokens, args.text_tokens).total();
    let gflops_per_second = flops / median / 1e9;
    let peak = peak_memory_bytes();
    // Drop reel's model before the reference allocates its own.
    drop(transformer);
    let reference = match args.compare {
        Some(_) => Some(super::compare::diffusers_transformer(&args.python, model.name, &args.shape, args.text_tokens, &args.dtype, args.warmup, args.runs)?),
        None => None,
    };

    if args.json {
        let report = serde_json::json!({
            "implementation": "reel",
            "model": model.name,
            "dtype": args.dtype,
            "quantize": args.quantize.map(|_| "q8"),
            "device": args.device,
            "frames": args.shape.frames, "height": args.shape.height, "width": args.shape.width,
            "video_tokens": tokens, "text_tokens": args.text_tokens, "batch": args.batch,
            "seconds_per_forward": median, "runs": seconds,
            "gflop_per_forward": flops / 1e9,
            "gflops_per_second": gflops_per_second,
            "build_seconds": build_seconds,
            "peak_resident_bytes": peak,
            "diffusers": reference.as_ref().map(|r| serde_json::json!({
                "seconds_per_forward": r.seconds, "peak_resident_bytes": r.peak_bytes, "speedup": r.seconds / median,
            })),
        });
        println!("{report}");
    } else {
        println!(
            "{} transformer, {} x {} frames at {}x{} ({tokens} video tokens, {} text tokens), {}{} on {}",
            model.name, args.batch, args.shape.frames, args.shape.width, args.shape.height, args.text_tokens, args.dtype,
            if args.quantize.is_some() { " with q8 linear layers" } else { "" }, args.device
        );
        println!(
            "forward: {median:.3} s median of {} (min {:.3} s), {:.0} GFLOP -> {gflops_per_second:.0} GFLOP/s",
            args.runs,
            seconds[0],
            flops / 1e9
        );
        if let Some(reference) = &reference {
            super::compare::print_table(
                &[("transformer forward", median, reference.seconds, flops)],
                peak,
                reference.peak_bytes,
            );
        }
    }
    Ok(())
}

/// One forward, waiting for the device to finish so the time is real.
fn forward(model: &WanTransformer, latents: &Tensor, timestep: &Tensor, context: &Tensor, device: &Device) -> anyhow::Result<()> {
    let out = model.forward(latents, timestep, context)?;
    device.synchronize()?;
    anyhow::ensure!(out.dtype() == model.dtype() || out.dtype() == DType::F32);
    Ok(())
}

fn api(args: ApiBench) -> anyhow::Result<()> {
    use std::sync::mpsc;
    let dir = tempfile::tempdir()?;
    let paths = reel_studio::StudioPaths::new(dir.path().to_path_buf(), None);
    let options = reel_studio::ServeOptions {
        paths,
        address: "127.0.0.1:0".parse()?,
        workers: 0,
        worker: Default::default(),
        limits: reel_studio::Limits { max_pending_per_key: i64::MAX, ..Default::default() },
        extra_models: vec![],
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    std::thread::spawn(move || {
        let result = runtime.block_on(reel_studio::serve(options, move |address, key| {
            let _ = ready_tx.send((address, key.unwrap_or_default()));
        }));
        if let Err(e) = result {
            eprintln!("studio failed: {e}");
        }
    });
    let (address, key) = ready_rx.recv_timeout(Duration::from_secs(30))?;
    let url = format!("http://{address}/v1/videos");
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let agent = ureq::AgentBuilder::new().build();
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let created: serde_json::Value = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {key}"))
                        .send_json(serde_json::json!({"prompt": "a red ball bounces"}))?
                        .into_json()?;
                    let id = created["id"].as_str().unwrap_or_default();
                    agent.get(&format!("{url}/{id}")).set("Authorization", &format!("Bearer {key}")).call()?;
                    latencies.push(start.elapsed().as_secs_f64());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies: Vec<f64> = Vec::new();
    for client in clients {
        latencies.extend(client.join().map_err(|_| anyhow::anyhow!("a client panicked"))??);
    }
    latencies.sort_by(f64::total_cmp);
    let pairs = latencies.len();
    let percentile = |p: f64| latencies[((pairs as f64 * p) as usize).min(pairs - 1)] * 1000.0;
    println!(
        "{} clients, {:.0} s: {pairs} create+retrieve pairs = {:.0} requests/s; per pair p50 {:.1} ms, p99 {:.1} ms (SQLite queue)",
        args.clients,
        args.seconds,
        2.0 * pairs as f64 / args.seconds,
        percentile(0.5),
        percentile(0.99)
    );
    Ok(())
}