//! `reel bench estimate`: how close `reel estimate` comes to reel's own measured runs on this CPU.

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use reel_estimate::{estimate, Estimate, Hardware, ModelSpec, VideoSpec};
use reel_models::device::parse_dtype;
use reel_models::wan::{published_model, WanTransformer, WanVae};
use reel_models::weights::random_var_builder;
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{GenerationRequest, WanPipeline};

/// One predicted and measured time.
struct Row {
    what: String,
    predicted: f64,
    measured: f64,
}

pub fn run(model: &str, frames: usize, height: usize, width: usize, dtype: &str) -> anyhow::Result<()> {
    let dtype = parse_dtype(dtype)?;
    let hardware = Hardware::named("cpu", dtype, 1, None, 1.0)?;
    println!("on {}", hardware.name);
    let mut rows = demo_rows(&hardware, dtype)?;
    rows.extend(published_rows(model, frames, height, width, &hardware, dtype)?);
    println!("{:<44} {:>11} {:>11} {:>8}", "RUN", "PREDICTED", "MEASURED", "RATIO");
    for row in &rows {
        println!("{:<44} {:>9.3} s {:>9.3} s {:>8.2}", row.what, row.predicted, row.measured, row.predicted / row.measured);
    }
    Ok(())
}

fn video(defaults: (usize, usize, usize, f64), steps: usize, guidance: f64, dtype: DType) -> VideoSpec {
    let (width, height, frames, fps) = defaults;
    VideoSpec { width, height, frames, fps, steps, guidance, step_cache: 0.0, dtype_bytes: dtype.size_in_bytes() }
}

fn stage_seconds(estimate: &Estimate, stage: &str) -> f64 {
    estimate.stages.iter().find(|s| s.stage == stage).map_or(0.0, |s| s.seconds)
}

/// The bundled demo model's whole generation at its own settings, stage by stage.
fn demo_rows(hardware: &Hardware, dtype: DType) -> anyhow::Result<Vec<Row>> {
    let dir = reel_demo::bundled::checkpoint_dir().context("the bundled demo model is unavailable")?;
    let spec = ModelSpec::checkpoint("demo", &dir)?;
    let d = spec.defaults;
    let predicted = estimate(&spec, &video((d.width, d.height, d.frames, d.fps), d.steps, d.guidance, dtype), hardware, None)?;
    let pipeline = WanPipeline::new(WanCheckpoint::open(&dir)?, dtype, &Device::Cpu);
    let mut request = GenerationRequest::new("a small red circle drifts to the left over a dark blue background");
    (request.width, request.height, request.frames, request.steps, request.guidance) = (d.width, d.height, d.frames, d.steps, d.guidance);
    request.max_sequence_length = spec.text_tokens;
    pipeline.generate(&request, &mut |_| {})?; // warm-up: page cache, allocator
    let generated = pipeline.generate(&request, &mut |_| {})?;
    let measured: Vec<f64> = generated.stage_seconds.iter().map(|(_, s)| *s).collect();
    let names = ["text encoder", "transformer", "vae decode"];
    let mut rows: Vec<Row> = names
        .iter()
        .zip(&measured)
        .map(|(stage, seconds)| Row { what: format!("demo {stage}"), predicted: stage_seconds(&predicted, stage), measured: *seconds })
        .collect();
    rows.push(Row { what: "demo, whole generation".into(), predicted: predicted.seconds, measured: measured.iter().sum() });
    Ok(rows)
}

/// A published configuration's transformer forward and VAE decode, with random weights.
fn published_rows(name: &str, frames: usize, height: usize, width: usize, hardware: &Hardware, dtype: DType) -> anyhow::Result<Vec<Row>> {
    let model = published_model(name).with_context(|| format!("unknown model '{name}'"))?;
    let spec = ModelSpec::published(name)?;
    let predicted = estimate(&spec, &video((width, height, frames, reel_sampling::pipeline::DEFAULT_FPS), 1, 1.0, dtype), hardware, None)?;
    let (t, h, w) = model.latents.latent_dims(frames, height, width)?;
    let device = Device::Cpu;

    let transformer = WanTransformer::new(&model.transformer, random_var_builder(dtype, &device))?;
    let latents = Tensor::randn(0f32, 1.0, (1, model.transformer.in_channels, t, h, w), &device)?;
    let context = Tensor::randn(0f32, 1.0, (1, spec.text_tokens, model.transformer.text_dim), &device)?.to_dtype(dtype)?;
    let timestep = Tensor::new(&[500f32], &device)?;
    transformer.forward(&latents, &timestep, &context)?; // warm-up
    let started = Instant::now();
    transformer.forward(&latents, &timestep, &context)?;
    let forward_seconds = started.elapsed().as_secs_f64();
    drop(transformer);

    let vae = WanVae::new(&model.vae, random_var_builder(DType::F32, &device))?;
    let latents = Tensor::randn(0f32, 1.0, (1, model.latents.channels, t, h, w), &device)?;
    let started = Instant::now();
    vae.decode(&latents, None)?;
    let decode_seconds = started.elapsed().as_secs_f64();

    let label = format!("{name} {frames}x{width}x{height}");
    Ok(vec![
        Row { what: format!("{label} transformer forward"), predicted: stage_seconds(&predicted, "transformer"), measured: forward_seconds },
        Row { what: format!("{label} vae decode"), predicted: stage_seconds(&predicted, "vae decode"), measured: decode_seconds },
    ])
}
