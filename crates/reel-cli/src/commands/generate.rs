//! `reel generate`: one prompt, one video.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Args, ValueEnum};
use reel_media::thumbnail::{thumbnail, write_still, StillFormat, ThumbnailFrame};
use reel_media::{write_video, VideoFormat, VideoFrames, VideoOptions};
use reel_models::device::{parse_device, parse_dtype};
use reel_models::hub::HubSettings;
use reel_models::nn::linear::Quantization;
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{GenerationRequest, VaeTiling, WanPipeline, DEFAULT_FPS};
use reel_sampling::prompt::{DEFAULT_MAX_SEQUENCE_LENGTH, WAN_DEFAULT_NEGATIVE_PROMPT};
use reel_sampling::scheduler::SchedulerChoice;

use super::memory::peak_memory_bytes;
use super::progress::StageBars;

#[derive(Clone, Copy, ValueEnum)]
enum TilingArg {
    Auto,
    On,
    Off,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// What the video shows
    prompt: String,
    /// Checkpoint: a folder in the diffusers layout, or a hub repository id such as
    /// Wan-AI/Wan2.1-T2V-1.3B-Diffusers (found in or downloaded to the Hugging Face cache);
    /// without it, the bundled demo model
    #[arg(long, short)]
    model: Option<String>,
    /// What the video should not show (guidance pushes away from it)
    #[arg(long, default_value = "", conflicts_with = "wan_negative_prompt")]
    negative_prompt: String,
    /// Use Wan's own default negative prompt
    #[arg(long)]
    wan_negative_prompt: bool,
    /// Frame height in pixels [default: the model's, else 480]
    #[arg(long)]
    height: Option<usize>,
    /// Frame width in pixels [default: the model's, else 832]
    #[arg(long)]
    width: Option<usize>,
    /// Number of frames, 4k+1 [default: the model's, else 81]
    #[arg(long)]
    frames: Option<usize>,
    /// Playback frame rate of the output [default: the model's, else 16]
    #[arg(long)]
    fps: Option<f64>,
    /// Denoising steps [default: the model's, else 50]
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale, 1 or less turns guidance off [default: the model's, else 5]
    #[arg(long)]
    guidance: Option<f64>,
    /// Guidance of the low-noise expert of two-expert models (Wan2.2 A14B) [default: --guidance]
    #[arg(long)]
    guidance_2: Option<f64>,
    /// Seed of the initial noise; the same seed gives the same video
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scheduler [default: the checkpoint's]
    #[arg(long)]
    scheduler: Option<String>,
    /// Flow shift of the schedule [default: the checkpoint's]
    #[arg(long)]
    shift: Option<f64>,
    /// Prompt tokens given to the model [default: the model's, else 512]
    #[arg(long)]
    max_sequence_length: Option<usize>,
    /// Safetensors file holding one tensor `latents` in the pipeline's latent shape: replaces the
    /// seeded noise (to reproduce a reference run exactly)
    #[arg(long)]
    init_latents: Option<PathBuf>,
    /// Compute dtype of the text encoder and transformer (the VAE decodes in f32)
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// cpu, cuda, cuda:N or metal
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Decode in overlapping tiles: auto tiles frames larger than 832x480
    #[arg(long, value_enum, default_value_t = TilingArg::Auto)]
    vae_tiling: TilingArg,
    /// Transformer weights from a GGUF file (Wan's original names, as community quantizations such
    /// as Q8_0 or Q4_K are published) in place of the model's transformer folder
    #[arg(long, value_name = "FILE.gguf")]
    transformer: Option<PathBuf>,
    /// Quantize the text encoder's and transformer's linear layers at load time: q8 (int8 with a
    /// scale per 32 weights; about half the memory of bf16, small changes in the output)
    #[arg(long, value_name = "FORMAT")]
    quantize: Option<Quantization>,
    /// Reuse the transformer's prediction on steps where it is estimated to change by less than
    /// this (relative, accumulated; 0.05 to 0.2 typical): faster, slightly different output.
    /// Off by default
    #[arg(long, value_name = "THRESHOLD")]
    step_cache: Option<f64>,
    /// Output: .mp4 (H.264), .gif, .webp (animated), or a folder (a path ending in /) for PNG
    /// frames 00000.png, 00001.png, ... with a video.json of the settings
    #[arg(long, short, default_value = "out.mp4")]
    output: PathBuf,
    /// MP4 quality: the H.264 quantiser, 0 (best, largest) to 51 (smallest)
    #[arg(long, default_value_t = reel_media::mp4::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(0..=51))]
    quality: u8,
    /// Also write a thumbnail of the middle frame (.jpg, .webp or .png)
    #[arg(long)]
    thumbnail: Option<PathBuf>,
    /// No progress bars
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let model: String = match &args.model {
        Some(model) => model.clone(),
        None => reel_demo::bundled::checkpoint_dir()
            .context("no --model given and the bundled demo model is unavailable")?
            .to_string_lossy()
            .into_owned(),
    };
    let model_label = args.model.clone().unwrap_or_else(|| "reel demo (bundled)".into());
    let format = VideoFormat::from_path(&args.output)?;
    if let Some(thumbnail) = &args.thumbnail {
        StillFormat::from_path(thumbnail)?;
    }
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let mut settings = HubSettings::from_env();
    settings.progress = !args.quiet;
    let checkpoint = WanCheckpoint::resolve(&model, &settings)?;
    let defaults = checkpoint.generation_defaults()?;
    let pipeline = WanPipeline::new(checkpoint, dtype, &device).with_quantization(args.quantize).with_transformer_gguf(args.transformer.clone());
    let fps = args.fps.or(defaults.fps).unwrap_or(DEFAULT_FPS);

    let mut request = GenerationRequest::new(args.prompt.clone());
    request.negative_prompt =
        if args.wan_negative_prompt { WAN_DEFAULT_NEGATIVE_PROMPT.to_string() } else { args.negative_prompt.clone() };
    request.height = args.height.or(defaults.height).unwrap_or(request.height);
    request.width = args.width.or(defaults.width).unwrap_or(request.width);
    request.frames = args.frames.or(defaults.frames).unwrap_or(request.frames);
    request.steps = args.steps.or(defaults.steps).unwrap_or(request.steps);
    request.guidance = args.guidance.or(defaults.guidance).unwrap_or(request.guidance);
    request.guidance_2 = args.guidance_2;
    request.seed = args.seed;
    request.scheduler = args.scheduler.as_deref().map(str::parse::<SchedulerChoice>).transpose().map_err(anyhow::Error::msg)?;
    request.shift = args.shift;
    request.max_sequence_length = args.max_sequence_length.or(defaults.max_sequence_length).unwrap_or(DEFAULT_MAX_SEQUENCE_LENGTH);
    request.vae_tiling = match args.vae_tiling {
        TilingArg::Auto => VaeTiling::Auto,
        TilingArg::On => VaeTiling::On,
        TilingArg::Off => VaeTiling::Off,
    };
    request.step_cache = args.step_cache;
    request.init_latents = args.init_latents.as_deref().map(read_init_latents).transpose()?;
    pipeline.latent_shape(&request)?;

    let started = Instant::now();
    let mut bars = StageBars::new(args.quiet);
    let generated = pipeline.generate(&request, &mut |p| bars.update(p))?;
    bars.finish();

    let video = VideoFrames::new(request.width as u32, request.height as u32, fps, generated.rgb8()?)?;
    let options = VideoOptions { mp4_quality: args.quality, ..VideoOptions::default() };
    write_video(&video, None, &args.output, options)?;
    if format == VideoFormat::PngFrames {
        write_manifest(&args.output, &args, &request, &model_label, fps)?;
    }
    if let Some(path) = &args.thumbnail {
        write_still(&thumbnail(&video, ThumbnailFrame::Middle), path)?;
    }

    if !args.quiet {
        let stages: Vec<String> = generated.stage_seconds.iter().map(|(stage, s)| format!("{stage} {s:.1} s")).collect();
        eprintln!("{} frames of {}x{} in {:.1} s ({})", video.len(), video.width, video.height, started.elapsed().as_secs_f64(), stages.join(", "));
        if request.step_cache.is_some() {
            let stats = generated.denoise_stats;
            eprintln!("step cache: {} of {} steps reused", stats.reused_steps, stats.computed_steps + stats.reused_steps);
        }
        if let Some(peak) = peak_memory_bytes() {
            eprintln!("peak memory {:.2} GiB", peak as f64 / (1u64 << 30) as f64);
        }
    }
    println!("{}", args.output.display());
    Ok(())
}

/// The tensor `latents` of a safetensors file.
fn read_init_latents(path: &Path) -> anyhow::Result<Tensor> {
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("cannot read --init-latents {}: expected a safetensors file", path.display()))?;
    let names: Vec<String> = tensors.keys().cloned().collect();
    tensors.remove("latents").with_context(|| {
        format!("{} has no tensor named 'latents' (it holds: {})", path.display(), names.join(", "))
    })
}

/// `video.json` next to the frames: what made them.
fn write_manifest(dir: &Path, args: &GenerateArgs, request: &GenerationRequest, model: &str, fps: f64) -> anyhow::Result<()> {
    let manifest = serde_json::json!({
        "model": model,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "frames": request.frames,
        "height": request.height,
        "width": request.width,
        "fps": fps,
        "steps": request.steps,
        "guidance": request.guidance,
        "guidance_2": request.guidance_2,
        "seed": request.seed,
        "init_latents": args.init_latents,
        "scheduler": args.scheduler,
        "shift": request.shift,
        "step_cache": request.step_cache,
        "transformer": args.transformer,
        "quantize": args.quantize.map(|_| "q8"),
        "dtype": args.dtype,
    });
    let path = dir.join("video.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?).with_context(|| format!("cannot write {}", path.display()))
}
