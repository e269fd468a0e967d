//! `reel generate`: one prompt, one video.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, ValueEnum};
use reel_media::thumbnail::{thumbnail, write_still, StillFormat, ThumbnailFrame};
use reel_film::continuation::generate_into;
use reel_media::{check_video_output, check_writable, write_video, VideoFormat, VideoFrames, VideoOptions, VideoSink};
use reel_models::device::{parse_device, DtypeChoice};
use reel_models::hub::HubSettings;
use reel_models::nn::linear::Quantization;
use reel_sampling::checkpoint::WanCheckpoint;
use reel_media::ImageFit;
use reel_sampling::pipeline::{frames_from_rgb8, GenerationRequest, VaeTiling, WanPipeline, DEFAULT_FPS};
use reel_sampling::prompt::{DEFAULT_MAX_SEQUENCE_LENGTH, WAN_DEFAULT_NEGATIVE_PROMPT};
use reel_sampling::scheduler::SchedulerChoice;

use super::memory::peak_memory_bytes;
use super::progress::StageBars;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TilingArg {
    Auto,
    On,
    Off,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// What the video shows
    pub(crate) prompt: String,
    /// Checkpoint: a folder in the diffusers layout, or a hub repository id such as
    /// Wan-AI/Wan2.1-T2V-1.3B-Diffusers (found in or downloaded to the Hugging Face cache);
    /// without it, the bundled demo model
    #[arg(long, short)]
    pub(crate) model: Option<String>,
    /// What the video should not show (guidance pushes away from it)
    #[arg(long, default_value = "", conflicts_with = "wan_negative_prompt")]
    pub(crate) negative_prompt: String,
    /// Use Wan's own default negative prompt
    #[arg(long)]
    pub(crate) wan_negative_prompt: bool,
    /// Frame height in pixels [default: the model's, else 480]
    #[arg(long)]
    pub(crate) height: Option<usize>,
    /// Frame width in pixels [default: the model's, else 832]
    #[arg(long)]
    pub(crate) width: Option<usize>,
    /// Number of frames, 4k+1 [default: the model's, else 81]
    #[arg(long)]
    pub(crate) frames: Option<usize>,
    /// Playback frame rate of the output [default: the model's, else 16]
    #[arg(long)]
    pub(crate) fps: Option<f64>,
    /// Denoising steps [default: the model's, else 50]
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Classifier-free guidance scale, 1 or less turns guidance off [default: the model's, else 5]
    #[arg(long)]
    pub(crate) guidance: Option<f64>,
    /// Guidance of the low-noise expert of two-expert models (Wan2.2 A14B) [default: --guidance]
    #[arg(long)]
    pub(crate) guidance_2: Option<f64>,
    /// Seed of the initial noise; the same seed gives the same video
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Scheduler [default: the checkpoint's]
    #[arg(long)]
    pub(crate) scheduler: Option<String>,
    /// Flow shift of the schedule [default: the checkpoint's]
    #[arg(long)]
    pub(crate) shift: Option<f64>,
    /// Prompt tokens given to the model [default: the model's, else 512]
    #[arg(long)]
    pub(crate) max_sequence_length: Option<usize>,
    /// Safetensors file holding one tensor `latents` in the pipeline's latent shape: replaces the
    /// seeded noise (to reproduce a reference run exactly)
    #[arg(long)]
    pub(crate) init_latents: Option<PathBuf>,
    /// Compute dtype of the text encoder and transformer (the VAE decodes in f32): f32, bf16, f16,
    /// or auto: bf16 on GPUs and CPUs with AVX-512 BF16; on other CPUs f32 when the model's largest
    /// component takes at most a quarter of memory in f32, else bf16. Give it explicitly for the
    /// same video on machines of different kinds
    #[arg(long, default_value = "auto")]
    pub(crate) dtype: String,
    /// cpu, cuda, cuda:N or metal
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Decode in overlapping tiles: auto tiles frames larger than 832x480
    #[arg(long, value_enum, default_value_t = TilingArg::Auto)]
    pub(crate) vae_tiling: TilingArg,
    /// Transformer weights from a GGUF file (Wan's original names, as community quantizations such
    /// as Q8_0 or Q4_K are published) in place of the model's transformer folder
    #[arg(long, value_name = "FILE.gguf")]
    pub(crate) transformer: Option<PathBuf>,
    /// Quantize the text encoder's and transformer's linear layers at load time: q8 (int8 with a
    /// scale per 32 weights; about half the memory of bf16, small changes in the output)
    #[arg(long, value_name = "FORMAT")]
    pub(crate) quantize: Option<Quantization>,
    /// Reuse the transformer's prediction on steps where it is estimated to change by less than
    /// this (relative, accumulated; 0.05 to 0.2 typical): faster, slightly different output.
    /// Off by default
    #[arg(long, value_name = "THRESHOLD")]
    pub(crate) step_cache: Option<f64>,
    /// Start the video from this image (PNG, JPEG, WebP or GIF): image-to-video. Needs a model with
    /// per-token timesteps (Wan2.2-TI2V-5B, the bundled demo model)
    #[arg(long, value_name = "FILE")]
    pub(crate) image: Option<PathBuf>,
    /// How an --image of another size or shape becomes the first frame: crop (scale to cover the
    /// frame and cut the overflow), pad (scale to fit, black bars) or stretch (distort to the size)
    #[arg(long, default_value = "crop", value_name = "FIT")]
    pub(crate) image_fit: ImageFit,
    /// Length of the video in seconds: longer than one generation (--frames), it is made window
    /// after window, each continuing the last frames of the one before, in bounded memory
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Frames each window shares with the one before (1 + 4k); more carry the motion over better
    #[arg(long, default_value_t = reel_film::continuation::DEFAULT_OVERLAP)]
    pub(crate) overlap: usize,
    /// Output: .mp4 (H.264), .gif, .webp (animated), or a folder (a path ending in /) for PNG
    /// frames 00000.png, 00001.png, ... with a video.json of the settings
    #[arg(long, short, default_value = "out.mp4")]
    pub(crate) output: PathBuf,
    /// MP4 quality: the H.264 quantiser, 0 (best, largest) to 51 (smallest)
    #[arg(long, default_value_t = reel_media::mp4::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub(crate) quality: u8,
    /// Also write a thumbnail of the middle frame (.jpg, .webp or .png)
    #[arg(long)]
    pub(crate) thumbnail: Option<PathBuf>,
    /// No progress bars
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// What every generation command prepares from its arguments.
pub struct Prepared {
    pub pipeline: WanPipeline,
    pub request: GenerationRequest,
    pub fps: f64,
    pub model_label: String,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    check_outputs(&args)?;
    let mut prepared = prepare(&args)?;
    if let Some(image) = &args.image {
        let (width, height) = (prepared.request.width, prepared.request.height);
        let rgb = reel_media::read_image(image, width, height, args.image_fit)?;
        prepared.request.first_frames = Some(frames_from_rgb8(&[rgb], height, width)?);
        prepared.pipeline.latent_shape(&prepared.request)?;
    }
    match args.seconds {
        Some(seconds) => {
            let total = frames_for_seconds(seconds, prepared.fps)?;
            let sink = video_sink(&args, prepared.request.width, prepared.request.height, prepared.fps, total)?;
            generate_long(&args, &prepared, total, None, sink)
        }
        None => generate_one(&args, &prepared),
    }
}

/// Frames that fill `seconds` at `fps` (at least one).
pub fn frames_for_seconds(seconds: f64, fps: f64) -> anyhow::Result<usize> {
    anyhow::ensure!(seconds.is_finite() && seconds > 0.0, "--seconds must be a positive number, found {seconds}");
    Ok(((seconds * fps).round() as usize).max(1))
}

/// Generates window by window into `sink` until it holds `total` frames, reporting as it goes.
/// `continue_from` holds the last `--overlap` frames of a video whose earlier frames are in the sink
/// already (extension); the request's first frames (an image) start the first window otherwise.
pub fn generate_long(args: &GenerateArgs, prepared: &Prepared, total: usize, continue_from: Option<Tensor>, mut sink: VideoSink) -> anyhow::Result<()> {
    let Prepared { pipeline, request, fps, .. } = prepared;
    let started = Instant::now();
    let mut bars = StageBars::new(args.quiet);
    let mut on_window = announce_windows(args.quiet);
    let report = generate_into(pipeline, request, total, args.overlap, continue_from, &mut sink, &mut on_window, &mut |p| bars.update(p))?;
    bars.finish();
    report_long(args, sink, report.windows, started, *fps)
}

/// Says "window i of n" as each window starts, unless `quiet`.
pub fn announce_windows(quiet: bool) -> impl FnMut(usize, usize) {
    move |i, n| {
        if !quiet {
            eprintln!("window {} of {n}", i + 1);
        }
    }
}

/// Finishes a video made in windows and says what was made.
pub fn report_long(args: &GenerateArgs, sink: VideoSink, windows: usize, started: Instant, fps: f64) -> anyhow::Result<()> {
    let (written, width, height) = (sink.written(), sink.width(), sink.height());
    sink.finish(args.thumbnail.as_deref())?;
    if !args.quiet {
        eprintln!(
            "{written} frames of {width}x{height} ({:.1} s at {fps} fps) in {windows} windows, {:.1} s",
            written as f64 / fps,
            started.elapsed().as_secs_f64()
        );
        if let Some(peak) = peak_memory_bytes() {
            eprintln!("peak memory {:.2} GiB", peak as f64 / (1u64 << 30) as f64);
        }
    }
    println!("{}", args.output.display());
    Ok(())
}

/// The sink for `args.output`.
pub fn video_sink(args: &GenerateArgs, width: usize, height: usize, fps: f64, expected: usize) -> anyhow::Result<VideoSink> {
    Ok(VideoSink::create(&args.output, width, height, fps, VideoOptions { mp4_quality: args.quality, ..VideoOptions::default() }, expected)?)
}

/// Refuses outputs that could not be written, before any model is loaded or frame made.
pub fn check_outputs(args: &GenerateArgs) -> anyhow::Result<()> {
    check_video_output(&args.output)?;
    if let Some(thumbnail) = &args.thumbnail {
        StillFormat::from_path(thumbnail)?;
        check_writable(thumbnail)?;
    }
    Ok(())
}

/// Checks the arguments and builds the pipeline and the request they describe.
pub fn prepare(args: &GenerateArgs) -> anyhow::Result<Prepared> {
    let model: String = match &args.model {
        Some(model) => model.clone(),
        None => reel_demo::bundled::checkpoint_dir()
            .context("no --model given and the bundled demo model is unavailable")?
            .to_string_lossy()
            .into_owned(),
    };
    let model_label = args.model.clone().unwrap_or_else(|| "reel demo (bundled)".into());
    let device = parse_device(&args.device)?;
    let dtype_choice = DtypeChoice::parse(&args.dtype)?;
    let mut settings = HubSettings::from_env();
    settings.progress = !args.quiet;
    let checkpoint = WanCheckpoint::resolve(&model, &settings)?;
    let dtype = checkpoint.resolve_dtype(dtype_choice, &device, args.transformer.is_some())?;
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
    Ok(Prepared { pipeline, request, fps, model_label })
}

/// One generation, written whole.
fn generate_one(args: &GenerateArgs, prepared: &Prepared) -> anyhow::Result<()> {
    let Prepared { pipeline, request, fps, model_label } = prepared;
    let fps = *fps;
    let started = Instant::now();
    let mut bars = StageBars::new(args.quiet);
    let generated = pipeline.generate(request, &mut |p| bars.update(p))?;
    bars.finish();
    if let Some(warning) = generated.dropped_tokens.warning(request.max_sequence_length) {
        eprintln!("warning: {warning}");
    }

    let video = VideoFrames::new(request.width as u32, request.height as u32, fps, generated.rgb8()?)?;
    let options = VideoOptions { mp4_quality: args.quality, ..VideoOptions::default() };
    write_video(&video, None, &args.output, options)?;
    if VideoFormat::from_path(&args.output)? == VideoFormat::PngFrames {
        write_manifest(&args.output, args, request, model_label, fps, pipeline.dtype())?;
    }
    if let Some(path) = &args.thumbnail {
        write_still(&thumbnail(&video, ThumbnailFrame::Middle), path)?;
    }

    if !args.quiet {
        let stages: Vec<String> = generated.stage_seconds.iter().map(|(stage, s)| format!("{stage} {s:.1} s")).collect();
        eprintln!(
            "{} frames of {}x{} in {:.1} s ({}; {})",
            video.len(),
            video.width,
            video.height,
            started.elapsed().as_secs_f64(),
            stages.join(", "),
            pipeline.dtype().as_str()
        );
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
fn write_manifest(dir: &Path, args: &GenerateArgs, request: &GenerationRequest, model: &str, fps: f64, dtype: DType) -> anyhow::Result<()> {
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
        "image": args.image,
        "image_fit": args.image.as_ref().map(|_| format!("{:?}", args.image_fit).to_lowercase()),
        "transformer": args.transformer,
        "quantize": args.quantize.map(|_| "q8"),
        "dtype": dtype.as_str(),
    });
    let path = dir.join("video.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?).with_context(|| format!("cannot write {}", path.display()))
}
