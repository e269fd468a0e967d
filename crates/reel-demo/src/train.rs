//! Training the demo model, in three resumable stages:
//!
//! 1. the VAE, on short clips of the world (reconstruction + a light KL term);
//! 2. a pool of training clips encoded once with the trained VAE, whose per-channel statistics
//!    become the VAE's `latents_mean` / `latents_std`;
//! 3. the transformer and the text encoder together, with Wan's flow-matching objective
//!    (predict `noise - latents` from `(1 - s) latents + s noise` at shifted noise levels `s`),
//!    10% caption dropout so that classifier-free guidance works, and first-frame conditioning as
//!    Wan 2.2 TI2V does it: in some clips the first one or two latent frames are given clean, at
//!    timestep 0, and left out of the loss, so the model learns to continue an image or the end of
//!    a previous clip.
//!
//! Training can start from an existing demo checkpoint (`from`): its VAE, normalisation and
//! tokenizer are kept and its transformer and text encoder trained further (fine-tuning).
//!
//! Every stage saves its state (weights, optimiser moments, step) in the work folder regularly and
//! continues from it when run again; the finished model is written as a checkpoint folder. Every
//! file is written whole or not at all, so a run killed mid-save resumes from its previous save.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use reel_models::umt5::{PromptTokenizer, Umt5Config, Umt5Encoder};
use reel_models::wan::{WanTransformer, WanTransformerConfig, WanVae, WanVaeConfig};
use reel_models::weights::ComponentFolder;

use crate::grow::{grow_blocks, UMT5_ENCODER, WAN_TRANSFORMER};

use crate::caption::{caption, vocabulary};
use crate::card::write_card;
use crate::eval::{evaluate, held_out_cases, model_generator};
use crate::model::{self, LATENT_CHANNELS, MAX_SEQUENCE_LENGTH};
use crate::params::{learning_rate, save_atomically, AdamW, Ema, Params};
use crate::rng::Rng;
use crate::shards::{default_shards, in_parallel, parallel_shards, sharded_backward};
use crate::tokenizer::write_tokenizer;
use crate::world::{ObjectCounts, Scene, Split, FRAMES, HEIGHT, WIDTH};

/// The VAE's training phases: (share of the steps done at its end, frames per clip, clips per step).
/// Short clips (the first frame alone, then one chunk of four) teach it most cheaply; longer ones
/// teach it to carry each chunk's frames into the next, up to the demo's whole 17 frames (five
/// chunks), where errors would otherwise build up from chunk to chunk.
const VAE_PHASES: [(f64, usize, usize); 3] = [(0.65, 5, 8), (0.83, 9, 8), (1.0, 17, 4)];
const VAE_STEPS: usize = 2300;

/// (phase start, phase end, frames, batch) of a step out of `total`.
fn vae_phase(step: usize, total: usize) -> (usize, usize, usize, usize) {
    let mut start = 0;
    for (share, frames, batch) in VAE_PHASES {
        let end = ((share * total as f64).round() as usize).max(start + 1);
        if step < end || share >= 1.0 {
            return (start, end.max(step + 1), frames, batch);
        }
        start = end;
    }
    unreachable!("the last phase ends at the last step")
}
/// The VAE is convolutional: it trains on crops, four times cheaper than whole frames.
const VAE_CROP: usize = 32;
/// Share of crops placed around an object rather than anywhere: objects cover a few percent of a
/// frame, so random crops would mostly teach backdrops.
const OBJECT_CROPS: f32 = 0.8;
const KL_WEIGHT: f64 = 1e-4;
/// Extra weight of the VAE's reconstruction loss on object pixels and the pixel around them: edges
/// and colours of small objects are what the evaluation reads, backdrops are most of the pixels.
pub const VAE_OBJECT_WEIGHT: f32 = 4.0;
const CAPTION_DROPOUT: f32 = 0.1;
/// Extra weight of the flow-matching loss on latent cells that show an object: objects cover a few
/// percent of a frame, so an unweighted loss is mostly about backdrops.
pub const OBJECT_LOSS_WEIGHT: f32 = 4.0;
/// Shares of training clips with 0, 1 (an image) and 2 (a clip's last five frames) given latent frames.
const GIVEN_FRAMES: [(usize, f32); 3] = [(0, 0.4), (1, 0.3), (2, 0.3)];
const SAVE_EVERY: usize = 100;
/// Held-out prompts scored for the model card.
const EVAL_CASES: usize = 50;

#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// Where the finished checkpoint goes.
    pub out: PathBuf,
    /// Where resumable state and the loss log live.
    pub work: PathBuf,
    pub seed: u64,
    pub vae_steps: usize,
    pub vae_lr: f64,
    /// A demo checkpoint whose VAE (of the same configuration) the VAE's training starts from.
    pub vae_from: Option<PathBuf>,
    /// Train only the decoder of `vae_from`'s VAE: its encoder, latents and normalisation stay as
    /// they were, so a transformer trained on them stays valid.
    pub vae_decoder_only: bool,
    /// With `vae_decoder_only`: a new decoder of this base width (`decoder_base_dim`), trained from
    /// scratch on the kept encoder's latents, in place of the old decoder.
    pub vae_decoder_width: Option<usize>,
    /// With `vae_decoder_only`: the most noise added to the latents the decoder learns from, in units
    /// of each channel's standard deviation (each clip draws its level uniformly up to this; 0: none),
    /// so the decoder learns to draw clean objects from the inexact latents a transformer makes.
    pub vae_latent_noise: f64,
    /// Weight of a loss on the error's spatial gradients (the difference between the reconstruction's
    /// and the clip's horizontal and vertical pixel steps), next to the pixel loss: blur that
    /// rounds a star's points or a square's corners costs little per pixel but changes every step
    /// along the edge (0: none).
    pub vae_edge_loss: f64,
    /// With `from`: train a new VAE from scratch (in place of the checkpoint's) and continue the
    /// transformer and text encoder on its latents.
    pub new_vae: bool,
    /// Training clips encoded for the transformer.
    pub pool: usize,
    /// How often the pool's clips have one, two or three objects.
    pub pool_objects: ObjectCounts,
    pub transformer_steps: usize,
    pub transformer_batch: usize,
    pub transformer_lr: f64,
    /// Decay of the moving average of the transformer's and text encoder's weights that the
    /// checkpoint holds (0: the last step's weights).
    pub transformer_ema: f64,
    /// Transformer blocks: of a new transformer, or of one grown from `from`'s shallower one (see
    /// [`crate::grow`]); `None` keeps `from`'s depth, or [`model::TRANSFORMER_LAYERS`] for a new one.
    pub transformer_layers: Option<usize>,
    /// Text encoder blocks: of a new text encoder, or of one grown from `from`'s shallower one the
    /// same way; `None` keeps `from`'s depth, or [`model::TEXT_ENCODER_LAYERS`] for a new one.
    pub text_encoder_layers: Option<usize>,
    /// A demo checkpoint to continue from: its transformer and text encoder are trained further, and
    /// its VAE kept unless `vae_from` is given too.
    pub from: Option<PathBuf>,
    /// Flow shift of the noise levels the transformer trains at, written into the checkpoint's
    /// scheduler so that it samples at the same; `None`: `from`'s, or [`model::FLOW_SHIFT`].
    pub flow_shift: Option<f64>,
}

impl TrainSettings {
    pub fn new(out: PathBuf, work: PathBuf) -> Self {
        Self {
            out,
            work,
            seed: 0,
            vae_steps: VAE_STEPS,
            vae_lr: 1e-3,
            vae_from: None,
            vae_decoder_only: false,
            vae_decoder_width: None,
            vae_latent_noise: 0.0,
            vae_edge_loss: 0.0,
            new_vae: false,
            pool: 2000,
            pool_objects: ObjectCounts::WORLD,
            transformer_steps: 2500,
            transformer_batch: 16,
            transformer_lr: 5e-4,
            transformer_ema: 0.999,
            transformer_layers: None,
            text_encoder_layers: None,
            from: None,
            flow_shift: None,
        }
    }

    /// The flow shift this run trains at and writes (see [`TrainSettings::flow_shift`]).
    pub fn resolved_flow_shift(&self) -> Result<f64> {
        match (self.flow_shift, &self.from) {
            (Some(shift), _) => Ok(shift),
            (None, Some(from)) => Ok(model::checkpoint_flow_shift(from)?),
            (None, None) => Ok(model::FLOW_SHIFT),
        }
    }
}

/// What training reports as it goes.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A stage starts, with its number of steps (0 when already done).
    Stage { name: &'static str, total: usize, done: usize },
    Step { stage: &'static str, step: usize, total: usize, loss: f64 },
}

pub type Result<T> = std::result::Result<T, crate::Error>;

/// Clips as a (batch, 3, frames, height, width) tensor in [-1, 1].
fn clips_tensor(scenes: &[Scene], frames: usize) -> Result<Tensor> {
    let mut data = Vec::with_capacity(scenes.len() * 3 * frames * HEIGHT * WIDTH);
    for scene in scenes {
        let rendered = scene.render();
        for c in 0..3 {
            for frame in rendered.iter().take(frames) {
                data.extend(frame.iter().skip(c).step_by(3).map(|v| *v as f32 / 127.5 - 1.0));
            }
        }
    }
    Ok(Tensor::from_vec(data, (scenes.len(), 3, frames, HEIGHT, WIDTH), &Device::Cpu)?)
}

/// The loss log, `loss.jsonl` in the work folder: one JSON line per training step.
struct Log {
    path: PathBuf,
    file: std::fs::File,
}

impl Log {
    fn open(work: &Path) -> Result<Self> {
        let path = work.join("loss.jsonl");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self { path, file })
    }

    /// Drops the lines of `stage` after step `resumed_at`: a run stopped between two saves redoes
    /// those steps when it resumes, and the log keeps one line per step.
    fn resume(&mut self, stage: &str, resumed_at: usize) -> Result<()> {
        let text = std::fs::read_to_string(&self.path)?;
        let redone = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|row| row["stage"] == stage && row["step"].as_u64().is_some_and(|step| step as usize > resumed_at))
        };
        let kept: Vec<&str> = text.lines().filter(|line| !redone(line)).collect();
        if kept.len() == text.lines().count() {
            return Ok(());
        }
        let partial = self.path.with_extension("jsonl.partial");
        std::fs::write(&partial, kept.iter().map(|line| format!("{line}\n")).collect::<String>())?;
        std::fs::rename(&partial, &self.path)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }

    fn write(&mut self, stage: &str, step: usize, loss: f64, extra: serde_json::Value) -> Result<()> {
        let line = serde_json::json!({"stage": stage, "step": step, "loss": loss, "extra": extra});
        writeln!(self.file, "{line}")?;
        Ok(())
    }
}

/// Runs (or resumes) the training stages and writes the checkpoint to `settings.out`; then
/// [`score_and_describe`] scores it and writes its model card.
pub fn train_stages(settings: &TrainSettings, on_event: &mut dyn FnMut(TrainEvent)) -> Result<()> {
    std::fs::create_dir_all(&settings.work)?;
    std::fs::create_dir_all(&settings.out)?;
    let mut log = Log::open(&settings.work)?;
    let vocab_size = write_tokenizer(&settings.out.join("tokenizer"), &vocabulary())?;
    if settings.vae_decoder_only && settings.vae_from.is_none() {
        return Err("training only the VAE's decoder needs the checkpoint whose VAE it starts from (--vae-from)".into());
    }
    if settings.vae_latent_noise != 0.0 && !settings.vae_decoder_only {
        return Err("noise on the latents is for a decoder trained alone on a kept encoder (--vae-decoder-only)".into());
    }
    if !(settings.vae_latent_noise >= 0.0 && settings.vae_latent_noise.is_finite()) {
        return Err(format!("the latent noise must be a number >= 0, found {}", settings.vae_latent_noise).into());
    }
    if !(settings.vae_edge_loss >= 0.0 && settings.vae_edge_loss.is_finite()) {
        return Err(format!("the edge loss weight must be a number >= 0, found {}", settings.vae_edge_loss).into());
    }
    if settings.vae_decoder_width.is_some() && !settings.vae_decoder_only {
        return Err("a new decoder width needs the decoder trained alone on a kept encoder (--vae-decoder-only)".into());
    }
    if settings.transformer_steps == 0 && settings.from.is_none() {
        return Err("no transformer steps leaves the transformer untrained; give more steps, or --from a checkpoint whose transformer to keep".into());
    }
    let flow_shift = settings.resolved_flow_shift()?;
    if !(flow_shift > 0.0 && flow_shift.is_finite()) {
        return Err(format!("the flow shift must be a number above 0, found {flow_shift}").into());
    }
    let (trained_layers, layers) = transformer_depth(settings)?;
    let (trained_text_layers, text_layers) = text_encoder_depth(settings)?;
    let models = Models {
        text: model::text_encoder_config(vocab_size, text_layers),
        trained_text_layers,
        transformer: model::transformer_config(layers),
        trained_layers,
    };
    let vae_kept = settings.from.is_some() && settings.vae_from.is_none() && !settings.new_vae;
    // A VAE whose decoder alone is trained keeps its encoder, so its latents and their normalisation.
    let latents_kept = vae_kept || settings.vae_decoder_only;
    match &settings.from {
        Some(from) if vae_kept => {
            let vae: WanVaeConfig = ComponentFolder::open(from.join("vae"))?.config()?;
            model::write_configs(&settings.out, &models.text, &models.transformer, &vae, flow_shift)?;
            copy_weights(from, &settings.out, "vae/diffusion_pytorch_model.safetensors")?;
        }
        _ => {
            let vae = match &settings.vae_from {
                Some(vae_from) if settings.vae_decoder_only => {
                    let mut kept: WanVaeConfig = ComponentFolder::open(vae_from.join("vae"))?.config()?;
                    kept.decoder_base_dim = settings.vae_decoder_width.or(kept.decoder_base_dim);
                    kept
                }
                _ => model::vae_config(vec![0.0; LATENT_CHANNELS], vec![1.0; LATENT_CHANNELS]),
            };
            model::write_configs(&settings.out, &models.text, &models.transformer, &vae, flow_shift)?;
            train_vae(settings, &vae, &mut log, on_event)?;
        }
    }
    if let (0, Some(from), true) = (settings.transformer_steps, &settings.from, latents_kept) {
        // The transformer and text encoder are kept as they are: no pool of latents is needed.
        copy_weights(from, &settings.out, "text_encoder/model.safetensors")?;
        return copy_weights(from, &settings.out, "transformer/diffusion_pytorch_model.safetensors");
    }
    let (pool, scenes) = encode_pool(settings, latents_kept, on_event)?;
    train_transformer(settings, &models, &pool, &scenes, &mut log, on_event)
}

/// Copies the file `relative` of checkpoint `from` into `out`, unless they are the same file.
fn copy_weights(from: &Path, out: &Path, relative: &str) -> Result<()> {
    if from.join(relative).canonicalize()? != out.join(relative).canonicalize().unwrap_or_default() {
        std::fs::copy(from.join(relative), out.join(relative))?;
    }
    Ok(())
}

/// Scores the trained checkpoint on held-out prompts and describes it in a model card.
pub fn score_and_describe(settings: &TrainSettings, on_event: &mut dyn FnMut(TrainEvent)) -> Result<()> {
    let cases = held_out_cases(EVAL_CASES, 0);
    on_event(TrainEvent::Stage { name: "evaluate", total: cases.len(), done: 0 });
    let mut generate = model_generator(&settings.out, Default::default())?;
    let report = evaluate(&cases, &mut generate, &mut |i, _| {
        on_event(TrainEvent::Step { stage: "evaluate", step: i + 1, total: cases.len(), loss: 0.0 })
    })?;
    std::fs::write(settings.work.join("eval.json"), serde_json::to_string_pretty(&report)?)?;
    write_card(settings, &report)?;
    Ok(())
}

/// The models the transformer stage trains, and the depths of `from`'s that they grow from (0 for
/// new ones).
struct Models {
    text: Umt5Config,
    trained_text_layers: usize,
    transformer: WanTransformerConfig,
    trained_layers: usize,
}

/// The depth of the transformer this run starts from (`from`'s; 0 for a new one) and of the one it
/// trains.
fn transformer_depth(settings: &TrainSettings) -> Result<(usize, usize)> {
    let trained = checkpoint_depth(settings, "transformer", |config: &WanTransformerConfig| config.num_layers)?;
    let asked = settings.transformer_layers;
    grown_depth(settings, "transformer", "--transformer-layers", trained, asked, model::TRANSFORMER_LAYERS)
}

/// The same for the text encoder.
fn text_encoder_depth(settings: &TrainSettings) -> Result<(usize, usize)> {
    let trained = checkpoint_depth(settings, "text_encoder", |config: &Umt5Config| config.num_layers)?;
    let asked = settings.text_encoder_layers;
    grown_depth(settings, "text encoder", "--text-encoder-layers", trained, asked, model::TEXT_ENCODER_LAYERS)
}

/// The depth of `from`'s `component` (`None` without `from`), as `layers` reads it from its config.
fn checkpoint_depth<C: serde::de::DeserializeOwned>(settings: &TrainSettings, component: &str, layers: fn(&C) -> usize) -> Result<Option<usize>> {
    let Some(from) = &settings.from else { return Ok(None) };
    Ok(Some(layers(&ComponentFolder::open(from.join(component))?.config::<C>()?)))
}

/// The depth a model (`what`, whose depth `flag` sets) starts from and trains at: `trained` is
/// `from`'s depth, `asked` the one given, `default` a new model's.
fn grown_depth(
    settings: &TrainSettings,
    what: &str,
    flag: &str,
    trained: Option<usize>,
    asked: Option<usize>,
    default: usize,
) -> Result<(usize, usize)> {
    let Some(trained) = trained else {
        let layers = asked.unwrap_or(default);
        if layers == 0 {
            return Err(format!("a {what} needs at least one layer ({flag})").into());
        }
        return Ok((0, layers));
    };
    let layers = asked.unwrap_or(trained);
    if layers < trained {
        let from = settings.from.as_deref().unwrap_or(Path::new("the checkpoint")).display();
        return Err(format!(
            "{flag} {layers} is fewer than the {trained} layers of {from}'s {what}; a trained {what} can grow deeper, not shallower"
        )
        .into());
    }
    if layers > trained && settings.transformer_steps == 0 {
        return Err(format!("a grown {what}'s new layers start as copies that do nothing; give --transformer-steps to train them").into());
    }
    Ok((trained, layers))
}

/// Trains a VAE of `config` (its latent normalisation is set afterwards, from the encoded pool).
fn train_vae(settings: &TrainSettings, config: &WanVaeConfig, log: &mut Log, on_event: &mut dyn FnMut(TrainEvent)) -> Result<()> {
    let state = settings.work.join("vae.state.safetensors");
    let weights = settings.out.join("vae/diffusion_pytorch_model.safetensors");
    let (params, vae) = vae_to_train(settings, config)?;
    let trained = trained_vae_params(&params, settings.vae_decoder_only);
    let trained_vars = trained.variables();
    let mut optimizer = AdamW::new(trained, 0.0);
    if state.exists() {
        optimizer.restore(&candle_core::safetensors::load(&state, &Device::Cpu)?)?;
    }
    log.resume("vae", optimizer.step)?;
    let total = settings.vae_steps;
    on_event(TrainEvent::Stage { name: "vae", total, done: optimizer.step.min(total) });
    let started = Instant::now();
    while optimizer.step < total {
        let step = optimizer.step;
        let mut rng = Rng::new(settings.seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
        let (phase_start, phase_end, frames, batch) = vae_phase(step, total);
        let scenes: Vec<Scene> = (0..batch).map(|_| Scene::random(&mut rng, Split::Train)).collect();
        let crops = scenes
            .iter()
            .map(|scene| {
                let clip = clips_tensor(std::slice::from_ref(scene), frames)?;
                let (y, x) = crop_origin(&clip, &mut rng)?;
                clip.narrow(3, y, VAE_CROP)?.narrow(4, x, VAE_CROP).map_err(Into::into)
            })
            .collect::<Result<Vec<_>>>()?;
        let video = Tensor::cat(&crops, 0)?;
        let clips = VaeBatch::new(video, config, settings.vae_latent_noise, &mut rng)?;
        let (value, grads) = sharded_backward(batch, default_shards(batch), &trained_vars, |shard| {
            clips.loss(&vae, shard, settings.vae_decoder_only, settings.vae_edge_loss)
        })?;
        // Each phase has its own warm-up and decay; the later ones start from a lower peak.
        let lr = if phase_start == 0 {
            learning_rate(settings.vae_lr, step, phase_end, 50)
        } else {
            learning_rate(settings.vae_lr * 0.5, step - phase_start, phase_end - phase_start, 20)
        };
        let grad_norm = optimizer.step(&grads, lr)?;
        log.write("vae", step + 1, value, serde_json::json!({"lr": lr, "grad_norm": grad_norm,
            "seconds": started.elapsed().as_secs_f64()}))?;
        on_event(TrainEvent::Step { stage: "vae", step: step + 1, total, loss: value });
        if (step + 1).is_multiple_of(SAVE_EVERY) || step + 1 == total {
            optimizer.save(&state, HashMap::new())?;
        }
    }
    std::fs::create_dir_all(weights.parent().expect("has a parent"))?;
    params.save(&weights)?;
    Ok(())
}

/// The VAE of `config` that training starts from: fresh, or `vae_from`'s weights (all of them, or
/// its encoder's alone when the decoder is new, of another width).
fn vae_to_train(settings: &TrainSettings, config: &WanVaeConfig) -> Result<(Arc<Params>, WanVae)> {
    let params = Params::new(settings.seed ^ 0x7ae);
    let vae = WanVae::new(config, params.var_builder())?;
    if let Some(from) = &settings.vae_from {
        let tensors = candle_core::safetensors::load(from.join("vae/diffusion_pytorch_model.safetensors"), &Device::Cpu)?;
        let new_decoder = settings.vae_decoder_width.is_some();
        params.restore_where(&tensors, |name| !(new_decoder && is_decoder_param(name)))?;
    }
    Ok((params, vae))
}

/// The VAE parameters the optimiser updates: all of them, or only the decoder's side (the decoder
/// and the convolution before it) when the encoder stays fixed.
fn trained_vae_params(params: &Arc<Params>, decoder_only: bool) -> Arc<Params> {
    if !decoder_only {
        return params.clone();
    }
    let decoder = Params::new(0);
    for (name, var) in params.vars() {
        if is_decoder_param(&name) {
            decoder.insert(name, var);
        }
    }
    decoder
}

/// Whether a VAE parameter belongs to the decoder's side (the decoder and the convolution before it).
fn is_decoder_param(name: &str) -> bool {
    name.starts_with("decoder.") || name.starts_with("post_quant_conv.")
}

/// A VAE training batch: clips in [-1, 1], their pixels' loss weights, the noise that draws each
/// clip's latent from its posterior and the noise added to that latent (see
/// [`TrainSettings::vae_latent_noise`]); drawn for the whole batch, so that a step's draws do not
/// depend on how it is split into shards.
struct VaeBatch {
    video: Tensor,
    weights: Tensor,
    total_weight: f64,
    noise: Tensor,
    latent_noise: Option<Tensor>,
}

impl VaeBatch {
    fn new(video: Tensor, config: &WanVaeConfig, latent_noise: f64, rng: &mut Rng) -> Result<Self> {
        let (clips, _, frames, height, width) = video.dims5()?;
        let (temporal, spatial) = (config.scale_factor_temporal, config.scale_factor_spatial);
        let latent_shape = (clips, config.z_dim, (frames - 1) / temporal + 1, height / spatial, width / spatial);
        let normal = |rng: &mut Rng, count: usize| -> Vec<f32> { (0..count).map(|_| rng.normal()).collect() };
        let noise = Tensor::from_vec(normal(rng, latent_shape.0 * latent_shape.1 * latent_shape.2 * latent_shape.3 * latent_shape.4), latent_shape, &Device::Cpu)?;
        let latent_noise = if latent_noise > 0.0 {
            // Each clip's level, times each channel's spread: noise of the same size in every
            // channel of the normalised latents a transformer works on.
            let levels: Vec<f32> = (0..clips).map(|_| rng.f32() * latent_noise as f32).collect();
            let levels = Tensor::from_vec(levels, (clips, 1, 1, 1, 1), &Device::Cpu)?;
            let spread: Vec<f32> = config.latents_std.iter().map(|v| *v as f32).collect();
            let spread = Tensor::from_vec(spread, (1, config.z_dim, 1, 1, 1), &Device::Cpu)?;
            let draws = Tensor::from_vec(normal(rng, noise.elem_count()), latent_shape, &Device::Cpu)?;
            Some(draws.broadcast_mul(&levels)?.broadcast_mul(&spread)?)
        } else {
            None
        };
        let weights = object_pixel_weights(&video)?;
        let total_weight = weights.sum_all()?.to_scalar::<f32>()? as f64;
        Ok(Self { noise, video, weights, total_weight, latent_noise })
    }

    /// The share of `clips` in the batch's loss: reconstruction (L1 + L2, object pixels weighted
    /// up, plus `edge_weight` times the L1 of the error's spatial gradients) of a latent drawn from
    /// the posterior, plus a light KL term; all normalised by the whole batch. With `decoder_only`
    /// the posterior is a constant, so no gradient reaches the encoder.
    fn loss(&self, vae: &WanVae, clips: Range<usize>, decoder_only: bool, edge_weight: f64) -> Result<Tensor> {
        let shard = |t: &Tensor| t.narrow(0, clips.start, clips.len());
        let video = shard(&self.video)?;
        let posterior = vae.encode(&video, None)?;
        let (mean, logvar) = if decoder_only { (posterior.mean.detach(), posterior.logvar.detach()) } else { (posterior.mean, posterior.logvar) };
        let mut z = (&mean + ((&logvar * 0.5)?.exp()? * shard(&self.noise)?)?)?;
        if let Some(latent_noise) = &self.latent_noise {
            z = (z + shard(latent_noise)?)?;
        }
        let recon = vae.decode_unclamped(&z, None, &mut |_, _| {})?;
        let diff = (recon - video)?;
        let per_pixel = (diff.abs()? + diff.sqr()?)?.mean_keepdim(1)?;
        let weights = shard(&self.weights)?;
        let mut reconstruction = ((per_pixel * &weights)?.sum_all()? / self.total_weight)?;
        if edge_weight > 0.0 {
            reconstruction = (reconstruction + (edge_error(&diff, &weights)? * (edge_weight / self.total_weight))?)?;
        }
        let variance_terms = ((mean.sqr()? + logvar.exp()?)? - 1.0)?;
        let kl = ((variance_terms - &logvar)?.sum_all()? * (0.5 / self.noise.elem_count() as f64))?;
        Ok((reconstruction + (kl * KL_WEIGHT)?)?)
    }
}

/// The weighted L1 of the horizontal and vertical steps of `diff` (reconstruction - clip, of shape
/// (clips, 3, frames, height, width)): how far the reconstruction's edges are from the clip's, each
/// step weighted by the `weights` (clips, 1, frames, height, width) of the pixel it starts from.
fn edge_error(diff: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let mut total = Tensor::zeros((), diff.dtype(), diff.device())?;
    for axis in [3, 4] {
        let steps = diff.dim(axis)? - 1;
        let step = (diff.narrow(axis, 1, steps)? - diff.narrow(axis, 0, steps)?)?.abs()?.mean_keepdim(1)?;
        total = (total + (step * weights.narrow(axis, 0, steps)?)?.sum_all()?)?;
    }
    Ok(total)
}

/// Per pixel of (clips, 3, frames, height, width) clips in [-1, 1]: 1 + [`VAE_OBJECT_WEIGHT`] on
/// object pixels and their eight neighbours (the edges blur first), 1 elsewhere; (clips, 1, frames,
/// height, width).
fn object_pixel_weights(video: &Tensor) -> Result<Tensor> {
    let (clips, _, frames, height, width) = video.dims5()?;
    let level = crate::analysis::FOREGROUND_LEVEL as f64 / 127.5 - 1.0;
    let object = video.max_keepdim(1)?.ge(level)?.to_dtype(DType::F32)?;
    let per_frame = object.permute((0, 2, 1, 3, 4))?.reshape((clips * frames, 1, height, width))?;
    let grown = per_frame.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 1)?;
    let grown = grown.reshape((clips, frames, 1, height, width))?.permute((0, 2, 1, 3, 4))?;
    Ok(((grown * VAE_OBJECT_WEIGHT as f64)? + 1.0)?)
}

/// The VAE's training in words, for the model card.
pub fn vae_recipe(settings: &TrainSettings) -> String {
    if settings.from.is_some() && settings.vae_from.is_none() && !settings.new_vae {
        return "kept from the earlier checkpoint (see the runs below)".to_string();
    }
    let total = settings.vae_steps;
    let mut phases = Vec::new();
    let mut step = 0;
    while step < total {
        let (start, end, frames, batch) = vae_phase(step, total);
        phases.push(format!("{} steps of {batch} {frames}-frame clips", end - start));
        step = end;
    }
    let start = match &settings.vae_from {
        Some(from) if settings.vae_decoder_only => match settings.vae_decoder_width {
            Some(width) => format!("training a new decoder (base width {width}) from scratch on the encoder of the VAE of {} (its encoder and latent normalisation kept), ", from.display()),
            None => format!("training only the decoder of the VAE of {} (its encoder and latent normalisation kept), ", from.display()),
        },
        Some(from) => format!("starting from the VAE of {}, ", from.display()),
        None => String::new(),
    };
    let edges = if settings.vae_edge_loss > 0.0 {
        format!(" + {} x L1 of the error's horizontal and vertical pixel steps (weighted as the pixels)", settings.vae_edge_loss)
    } else {
        String::new()
    };
    let latent_noise = if settings.vae_latent_noise > 0.0 {
        format!(", the decoder given latents with noise added (each clip's level drawn up to {} of each channel's spread)", settings.vae_latent_noise)
    } else {
        String::new()
    };
    format!(
        "{total} steps on {VAE_CROP}x{VAE_CROP} crops of clips ({:.0}% of them around an object), {start}{}, \
         each phase with its own warm-up and cosine decay, peak learning rate {} (half that after the first phase), \
         loss L1 + L2 (object pixels and their neighbours weigh {}x){edges} + {KL_WEIGHT} KL{latent_noise}",
        100.0 * OBJECT_CROPS,
        phases.join(", "),
        settings.vae_lr,
        1.0 + VAE_OBJECT_WEIGHT,
    )
}

/// Top-left corner of a VAE training crop of a (1, 3, frames, height, width) clip: in
/// [`OBJECT_CROPS`] of the draws around a random object pixel of the first frame, otherwise anywhere.
fn crop_origin(clip: &Tensor, rng: &mut Rng) -> Result<(usize, usize)> {
    let anywhere = (rng.below(HEIGHT - VAE_CROP + 1), rng.below(WIDTH - VAE_CROP + 1));
    if rng.f32() >= OBJECT_CROPS {
        return Ok(anywhere);
    }
    // Backdrops are dark in every channel; objects are bright in at least one.
    let first = clip.get(0)?.narrow(1, 0, 1)?.squeeze(1)?.max(0)?.flatten_all()?.to_vec1::<f32>()?;
    let object_pixels: Vec<usize> = (0..first.len()).filter(|&i| (first[i] + 1.0) * 127.5 >= crate::analysis::FOREGROUND_LEVEL as f32).collect();
    if object_pixels.is_empty() {
        return Ok(anywhere);
    }
    let pixel = object_pixels[rng.below(object_pixels.len())];
    let mut centre = |at: usize, size: usize| (at + rng.below(VAE_CROP / 2)).saturating_sub(VAE_CROP * 3 / 4).min(size - VAE_CROP);
    let y = centre(pixel / WIDTH, HEIGHT);
    let x = centre(pixel % WIDTH, WIDTH);
    Ok((y, x))
}

/// Encodes the training clips once; returns their normalised latents and scenes. A VAE trained in
/// this run gets its normalisation from these latents; one whose latents were kept (`latents_kept`:
/// the VAE itself or its encoder) keeps its own.
fn encode_pool(settings: &TrainSettings, latents_kept: bool, on_event: &mut dyn FnMut(TrainEvent)) -> Result<(Tensor, Vec<Scene>)> {
    let cache = settings.work.join(format!("pool-{}.safetensors", settings.pool));
    let mut rng = Rng::new(settings.seed ^ 0x9001);
    let scenes: Vec<Scene> = (0..settings.pool).map(|_| Scene::random_with(&mut rng, Split::Train, settings.pool_objects)).collect();
    let vae_dir = settings.out.join("vae");
    let fingerprint = pool_fingerprint(&scenes, &vae_dir.join("diffusion_pytorch_model.safetensors"))?;
    let raw = if let Some(latents) = cached_latents(&cache, fingerprint)? {
        on_event(TrainEvent::Stage { name: "encode", total: settings.pool, done: settings.pool });
        latents
    } else {
        on_event(TrainEvent::Stage { name: "encode", total: settings.pool, done: 0 });
        let vae = WanVae::load(&ComponentFolder::open(&vae_dir)?, DType::F32, &Device::Cpu)?;
        // Eight clips per shard, the shards encoded at once.
        let shards = parallel_shards();
        let mut chunks = Vec::new();
        let mut done = 0;
        for batch in scenes.chunks(8 * shards) {
            let encode = |clips: Range<usize>| -> Result<Tensor> { Ok(vae.encode(&clips_tensor(&batch[clips], FRAMES)?, None)?.mean) };
            chunks.extend(in_parallel(batch.len(), batch.len().div_ceil(8), encode)?);
            done += batch.len();
            on_event(TrainEvent::Step { stage: "encode", step: done, total: settings.pool, loss: 0.0 });
        }
        let raw = Tensor::cat(&chunks, 0)?;
        save_pool(&cache, &raw, fingerprint)?;
        raw
    };
    let vae = WanVae::load(&ComponentFolder::open(&vae_dir)?, DType::F32, &Device::Cpu)?;
    if latents_kept {
        // The transformer being continued was trained on latents normalised by these statistics.
        return Ok((vae.normalize(&raw)?, scenes));
    }
    // Per-channel statistics become the VAE's normalisation, as Wan's VAE configs carry theirs.
    let channels_last = raw.transpose(0, 1)?.flatten_from(1)?;
    let mean = channels_last.mean_keepdim(1)?;
    let std = channels_last.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?.sqrt()?;
    let mean_v: Vec<f64> = mean.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|v| v as f64).collect();
    let std_v: Vec<f64> = std.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|v| v as f64).collect();
    model::write_vae_config(&settings.out, &model::vae_config(mean_v, std_v))?;
    let vae = WanVae::load(&ComponentFolder::open(&vae_dir)?, DType::F32, &Device::Cpu)?;
    Ok((vae.normalize(&raw)?, scenes))
}

/// The pool cache's record of what it encoded (see [`pool_fingerprint`]).
const POOL_FINGERPRINT: &str = "fingerprint";

/// A hash (64-bit FNV-1a) of the pool's scenes and of the VAE weights that encode them: a cache
/// made from other clips (an earlier version of the world, another seed's) or by another VAE no
/// longer matches and is encoded again rather than trained on against the wrong scenes.
fn pool_fingerprint(scenes: &[Scene], vae_weights: &Path) -> Result<u64> {
    let weights = std::fs::read(vae_weights).map_err(|e| format!("cannot read the VAE weights {}: {e}", vae_weights.display()))?;
    let described = scenes.iter().map(|scene| format!("{scene:?}")).collect::<String>();
    Ok(described.bytes().chain(weights).fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3)))
}

fn save_pool(cache: &Path, latents: &Tensor, fingerprint: u64) -> Result<()> {
    let fingerprint = Tensor::new(&[fingerprint as i64], &Device::Cpu)?;
    Ok(save_atomically(&[("latents".to_string(), latents.clone()), (POOL_FINGERPRINT.to_string(), fingerprint)].into_iter().collect(), cache)?)
}

/// The latents `cache` holds if it was made with `fingerprint`; `None` where it is absent or stale.
fn cached_latents(cache: &Path, fingerprint: u64) -> Result<Option<Tensor>> {
    if !cache.exists() {
        return Ok(None);
    }
    let mut saved = candle_core::safetensors::load(cache, &Device::Cpu)?;
    let made_with = match saved.remove(POOL_FINGERPRINT) {
        Some(made_with) => made_with.to_vec1::<i64>()?,
        None => return Ok(None),
    };
    if made_with != [fingerprint as i64] {
        return Ok(None);
    }
    Ok(Some(saved.remove("latents").ok_or("latent cache without latents")?))
}

/// Per clip, 1 where a latent cell shows an object and 0 elsewhere: (clips, 1, latent frames,
/// latent height, latent width). A cell covers a block of pixels over its latent frame's video
/// frames (the first frame alone, then chunks of four, as the VAE encodes them).
fn object_masks(scenes: &[Scene], latent_frames: usize, latent_height: usize, latent_width: usize) -> Result<Tensor> {
    let (block_h, block_w) = (HEIGHT / latent_height, WIDTH / latent_width);
    let temporal = (FRAMES - 1) / (latent_frames - 1).max(1);
    let mut values = Vec::with_capacity(scenes.len() * latent_frames * latent_height * latent_width);
    for scene in scenes {
        let mut mask = vec![0f32; latent_frames * latent_height * latent_width];
        for (f, frame) in scene.render().iter().enumerate() {
            let latent_frame = f.div_ceil(temporal);
            for (i, rgb) in frame.chunks(3).enumerate() {
                if crate::analysis::is_object_pixel(rgb) {
                    let (y, x) = (i / WIDTH / block_h, i % WIDTH / block_w);
                    mask[(latent_frame * latent_height + y) * latent_width + x] = 1.0;
                }
            }
        }
        values.extend(mask);
    }
    Ok(Tensor::from_vec(values, (scenes.len(), 1, latent_frames, latent_height, latent_width), &Device::Cpu)?)
}

/// The share of training clips whose first `given` latent frames are given.
pub fn given_frames_share(given: usize) -> f32 {
    GIVEN_FRAMES.iter().find(|(frames, _)| *frames == given).map_or(0.0, |(_, share)| *share)
}

/// A noise level drawn uniformly, then shifted as the sampler's schedule is: a shift above 1 draws
/// more high levels (where layout, colour and motion are decided), below 1 more low ones (details).
fn draw_noise_level(rng: &mut Rng, flow_shift: f64) -> f32 {
    let (u, shift) = (rng.f32(), flow_shift as f32);
    shift * u / (1.0 + (shift - 1.0) * u)
}

/// How many of a clip's first latent frames are given, drawn by [`GIVEN_FRAMES`].
fn draw_given_frames(rng: &mut Rng) -> usize {
    let mut u = rng.f32();
    for (given, share) in GIVEN_FRAMES {
        if u < share {
            return given;
        }
        u -= share;
    }
    0
}

/// Trains the transformer and the text encoder of `models`; ones continued from `settings.from`
/// are grown to `models`' depths first.
fn train_transformer(
    settings: &TrainSettings,
    models: &Models,
    pool: &Tensor,
    scenes: &[Scene],
    log: &mut Log,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<()> {
    let state = settings.work.join("transformer.state.safetensors");
    // The shift train_stages resolved and wrote into the new checkpoint's scheduler.
    let flow_shift = model::checkpoint_flow_shift(&settings.out)?;
    let text_params = Params::new(settings.seed ^ 0x7e47);
    let dit_params = Params::new(settings.seed ^ 0xd17);
    let encoder = Umt5Encoder::new(&models.text, text_params.var_builder())?;
    let transformer = WanTransformer::new(&models.transformer, dit_params.var_builder())?;
    // One optimiser over both models: their names do not collide (`encoder.*`/`shared.*` vs the
    // transformer's), so they share one parameter set for saving and stepping.
    let joint = Params::new(0);
    for (name, var) in text_params.vars() {
        joint.insert(format!("text.{name}"), var);
    }
    for (name, var) in dit_params.vars() {
        joint.insert(format!("dit.{name}"), var);
    }
    let joint_vars = joint.variables();
    let mut optimizer = AdamW::new(joint.clone(), 0.01);
    let mut ema = Ema::new(settings.transformer_ema);
    if state.exists() {
        let saved = candle_core::safetensors::load(&state, &Device::Cpu)?;
        let saved_blocks = |probe: &dyn Fn(usize) -> String| (0..).take_while(|block| saved.contains_key(&probe(*block))).count();
        let saved_layers = saved_blocks(&|block| format!("dit.blocks.{block}.scale_shift_table"));
        let saved_text_layers = saved_blocks(&|block| format!("text.encoder.block.{block}.layer.0.layer_norm.weight"));
        if (saved_layers, saved_text_layers) != (models.transformer.num_layers, models.text.num_layers) {
            return Err(format!(
                "{} holds a transformer of {saved_layers} layers and a text encoder of {saved_text_layers}, not {} and {}: resume with the --transformer-layers and --text-encoder-layers the run started with, or use a new --work folder",
                state.display(),
                models.transformer.num_layers,
                models.text.num_layers
            )
            .into());
        }
        optimizer.restore(&saved)?;
        ema.restore(&saved);
    } else if let Some(from) = &settings.from {
        let load = |path: PathBuf| candle_core::safetensors::load(&path, &Device::Cpu);
        let text = load(from.join("text_encoder/model.safetensors"))?;
        text_params.restore(&grow_blocks(&text, &UMT5_ENCODER, models.trained_text_layers, models.text.num_layers)?)?;
        let trained = load(from.join("transformer/diffusion_pytorch_model.safetensors"))?;
        dit_params.restore(&grow_blocks(&trained, &WAN_TRANSFORMER, models.trained_layers, models.transformer.num_layers)?)?;
    }
    let mut tokenizer = PromptTokenizer::load(&settings.out.join("tokenizer"))?;
    let (_, _, latent_frames, latent_height, latent_width) = pool.dims5()?;
    let loss_weights = ((object_masks(scenes, latent_frames, latent_height, latent_width)? * OBJECT_LOSS_WEIGHT as f64)? + 1.0)?;
    log.resume("transformer", optimizer.step)?;
    let total = settings.transformer_steps;
    on_event(TrainEvent::Stage { name: "transformer", total, done: optimizer.step.min(total) });
    let started = Instant::now();
    while optimizer.step < total {
        let step = optimizer.step;
        let mut rng = Rng::new(settings.seed.wrapping_mul(7_000_003).wrapping_add(step as u64));
        let batch = settings.transformer_batch;
        let indices: Vec<u32> = (0..batch).map(|_| rng.below(scenes.len()) as u32).collect();
        let picked = Tensor::new(indices.as_slice(), &Device::Cpu)?;
        let x0 = pool.index_select(&picked, 0)?;
        let sigmas: Vec<f32> = (0..batch).map(|_| draw_noise_level(&mut rng, flow_shift)).collect();
        let sigma = Tensor::new(sigmas.as_slice(), &Device::Cpu)?.reshape((batch, 1, 1, 1, 1))?;
        let noise_values: Vec<f32> = (0..x0.elem_count()).map(|_| rng.normal()).collect();
        let noise = Tensor::from_vec(noise_values, x0.shape(), &Device::Cpu)?;
        let noisy = (x0.broadcast_mul(&(1.0 - &sigma)?)? + noise.broadcast_mul(&sigma)?)?;
        let target = (&noise - &x0)?;
        // 1 where a latent frame is denoised, 0 where it is given (clean, at timestep 0).
        let (_, _, latent_frames, latent_height, latent_width) = x0.dims5()?;
        let denoised: Vec<f32> = (0..batch)
            .flat_map(|_| {
                let given = draw_given_frames(&mut rng);
                (0..latent_frames).map(move |f| if f < given { 0.0 } else { 1.0 })
            })
            .collect();
        let denoised = Tensor::from_vec(denoised, (batch, 1, latent_frames, 1, 1), &Device::Cpu)?;
        let noisy = (noisy.broadcast_mul(&denoised)? + x0.broadcast_mul(&(1.0 - &denoised)?)?)?;
        let tokens_per_frame = (latent_height / 2) * (latent_width / 2);
        let timesteps = (denoised.broadcast_mul(&(&sigma * 1000.0)?)?.reshape((batch, latent_frames, 1))?)
            .broadcast_as((batch, latent_frames, tokens_per_frame))?
            .reshape((batch, latent_frames * tokens_per_frame))?;

        let mut ids = Vec::with_capacity(batch * MAX_SEQUENCE_LENGTH);
        let mut mask = Vec::with_capacity(batch * MAX_SEQUENCE_LENGTH);
        for &i in &indices {
            let text = if rng.f32() < CAPTION_DROPOUT { String::new() } else { caption(&scenes[i as usize], &mut rng) };
            let tokens = tokenizer.encode(&text, MAX_SEQUENCE_LENGTH)?;
            ids.extend(tokens.ids);
            mask.extend(tokens.mask);
        }
        let ids = Tensor::from_vec(ids, (batch, MAX_SEQUENCE_LENGTH), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (batch, MAX_SEQUENCE_LENGTH), &Device::Cpu)?;
        // Squared error per latent cell, weighted towards objects, over the denoised frames.
        let weights = loss_weights.index_select(&picked, 0)?.broadcast_mul(&denoised)?;
        let total_weight = weights.sum_all()?.to_scalar::<f32>()? as f64;
        let shard_loss = |clips: Range<usize>| -> Result<Tensor> {
            let shard = |t: &Tensor| t.narrow(0, clips.start, clips.len());
            let mask = shard(&mask)?;
            // As the pipeline: the encoder's output for the prompt's tokens, zeros after them.
            let hidden = encoder.forward(&shard(&ids)?, &mask)?;
            let context = hidden.broadcast_mul(&mask.to_dtype(DType::F32)?.unsqueeze(2)?)?;
            let prediction = transformer.forward(&shard(&noisy)?, &shard(&timesteps)?, &context)?;
            let per_cell = (prediction - shard(&target)?)?.sqr()?.mean_keepdim(1)?;
            Ok(((per_cell * shard(&weights)?)?.sum_all()? / total_weight)?)
        };
        let (value, grads) = sharded_backward(batch, default_shards(batch), &joint_vars, shard_loss)?;
        let lr = learning_rate(settings.transformer_lr, step, total, 100);
        let grad_norm = optimizer.step(&grads, lr)?;
        ema.update(&joint, step)?;
        log.write("transformer", step + 1, value, serde_json::json!({"lr": lr, "grad_norm": grad_norm,
            "seconds": started.elapsed().as_secs_f64()}))?;
        on_event(TrainEvent::Step { stage: "transformer", step: step + 1, total, loss: value });
        if (step + 1).is_multiple_of(SAVE_EVERY) || step + 1 == total {
            let mut averages = HashMap::new();
            ema.store(&mut averages);
            optimizer.save(&state, averages)?;
            save_averaged(&ema, &joint, &settings.out)?;
        }
    }
    save_averaged(&ema, &joint, &settings.out)?;
    Ok(())
}

/// Writes the checkpoint's text encoder and transformer with the averaged weights.
fn save_averaged(ema: &Ema, joint: &Params, out: &Path) -> Result<()> {
    save_atomically(&ema.tensors(joint, "text."), &out.join("text_encoder/model.safetensors"))?;
    save_atomically(&ema.tensors(joint, "dit."), &out.join("transformer/diffusion_pytorch_model.safetensors"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Noise on the decoder's latents is absent at level 0; otherwise each clip's noise stays within
    /// its level times each channel's spread, and the channels' spreads follow the normalisation's.
    #[test]
    fn latent_noise_follows_each_channels_spread() -> Result<()> {
        let spread = [0.5, 2.0, 1.0, 0.25, 1.5, 0.75, 3.0, 1.25];
        let config = model::vae_config(vec![0.0; LATENT_CHANNELS], spread.to_vec());
        let mut rng = Rng::new(17);
        let video = Tensor::from_vec((0..6 * 3 * 5 * 32 * 32).map(|_| rng.f32() * 2.0 - 1.0).collect::<Vec<f32>>(), (6, 3, 5, 32, 32), &Device::Cpu)?;
        assert!(VaeBatch::new(video.clone(), &config, 0.0, &mut rng)?.latent_noise.is_none());
        let noise = VaeBatch::new(video, &config, 0.5, &mut rng)?.latent_noise.expect("noise at level 0.5");
        assert_eq!(noise.dims(), &[6, LATENT_CHANNELS, 2, 8, 8]);
        // Per clip and channel, the noise's spread over the latent cells, in units of the channel's.
        let per_cell = noise.flatten_from(2)?;
        let relative = per_cell.sqr()?.mean(2)?.sqrt()?.broadcast_div(&Tensor::new(&spread.map(|v| v as f32), &Device::Cpu)?)?.to_vec2::<f32>()?;
        for clip in &relative {
            let level = clip.iter().sum::<f32>() / clip.len() as f32;
            assert!(level < 0.5 * 1.2, "clip level {level} above the maximum 0.5");
            for channel in clip {
                assert!((channel - level).abs() <= 0.25 * level + 1e-3, "channel spreads {clip:?} do not follow the normalisation's");
            }
        }
        let levels: Vec<f32> = relative.iter().map(|c| c.iter().sum::<f32>() / c.len() as f32).collect();
        assert!(levels.iter().cloned().fold(f32::MAX, f32::min) < levels.iter().cloned().fold(0.0, f32::max) * 0.8, "clips share one level: {levels:?}");
        Ok(())
    }

    /// A run that trains the bundled VAE's decoder alone, with no transformer steps, keeps the
    /// transformer, the text encoder and the VAE's encoder as they were, and encodes no pool.
    #[test]
    fn a_decoder_only_run_keeps_the_rest_and_encodes_no_pool() -> Result<()> {
        let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
        let dir = tempfile::tempdir()?;
        let mut settings = TrainSettings::new(dir.path().join("out"), dir.path().join("work"));
        (settings.from, settings.vae_from) = (Some(bundled.clone()), Some(bundled.clone()));
        (settings.vae_decoder_only, settings.vae_steps, settings.transformer_steps) = (true, 1, 0);
        train_stages(&settings, &mut |_| {})?;
        for file in ["transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"] {
            assert!(std::fs::read(bundled.join(file))? == std::fs::read(settings.out.join(file))?, "{file} changed");
        }
        let vae = "vae/diffusion_pytorch_model.safetensors";
        let (before, after) = (candle_core::safetensors::load(bundled.join(vae), &Device::Cpu)?, candle_core::safetensors::load(settings.out.join(vae), &Device::Cpu)?);
        let same = |name: &String| -> Result<bool> { Ok((&before[name] - &after[name])?.abs()?.max_all()?.to_scalar::<f32>()? == 0.0) };
        let (mut encoder_kept, mut decoder_changed) = (true, false);
        for name in before.keys() {
            if name.starts_with("encoder.") || name.starts_with("quant_conv.") {
                encoder_kept &= same(name)?;
            } else if name.starts_with("decoder.") {
                decoder_changed |= !same(name)?;
            }
        }
        assert!(encoder_kept && decoder_changed, "encoder kept: {encoder_kept}, decoder changed: {decoder_changed}");
        let pools = std::fs::read_dir(&settings.work)?.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("pool-"))).count();
        assert_eq!(pools, 0, "a pool was encoded");
        Ok(())
    }

    /// A resumed stage's log loses the lines of the steps it redoes, and no other stage's lines.
    #[test]
    fn a_resumed_stage_logs_each_step_once() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path())?;
        for step in 1..=3 {
            log.write("vae", step, 0.5, serde_json::json!({}))?;
        }
        for step in 1..=5 {
            log.write("transformer", step, 0.25, serde_json::json!({}))?;
        }
        let steps = || -> Result<Vec<(String, u64)>> {
            let text = std::fs::read_to_string(dir.path().join("loss.jsonl"))?;
            text.lines()
                .map(|line| {
                    let row: serde_json::Value = serde_json::from_str(line)?;
                    Ok((row["stage"].as_str().unwrap_or_default().to_string(), row["step"].as_u64().unwrap_or(0)))
                })
                .collect()
        };
        let before = steps()?;
        log.resume("transformer", 5)?;
        assert_eq!(steps()?, before, "a stage resumed at its last logged step lost lines");
        log.resume("transformer", 3)?;
        log.write("transformer", 4, 0.25, serde_json::json!({}))?;
        let expected: Vec<(String, u64)> =
            [("vae", 1), ("vae", 2), ("vae", 3), ("transformer", 1), ("transformer", 2), ("transformer", 3), ("transformer", 4)]
                .iter()
                .map(|(stage, step)| (stage.to_string(), *step))
                .collect();
        assert_eq!(steps()?, expected);
        Ok(())
    }

    /// The shifted noise levels have the mean of `shift u / (1 + (shift - 1) u)` over uniform `u`:
    /// 1/2 unshifted, `s (1 - ln(s) / (s - 1)) / (s - 1)` for a shift `s`.
    #[test]
    fn noise_levels_follow_the_flow_shift() {
        let mut rng = Rng::new(11);
        for shift in [1.0f64, 1.5, 3.0] {
            let expected = if shift == 1.0 { 0.5 } else { shift * (1.0 - shift.ln() / (shift - 1.0)) / (shift - 1.0) };
            let levels: Vec<f32> = (0..40_000).map(|_| draw_noise_level(&mut rng, shift)).collect();
            assert!(levels.iter().all(|s| (0.0..=1.0).contains(s)), "a level outside [0, 1] at shift {shift}");
            let mean = levels.iter().map(|s| *s as f64).sum::<f64>() / levels.len() as f64;
            assert!((mean - expected).abs() < 0.005, "shift {shift}: mean level {mean:.4}, expected {expected:.4}");
        }
    }

    /// A continued run samples at its checkpoint's flow shift unless given another, and writes the
    /// shift it trained at into the new checkpoint's scheduler.
    #[test]
    fn a_continued_run_keeps_or_sets_the_flow_shift() -> Result<()> {
        let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
        let bundled_shift = model::checkpoint_flow_shift(&bundled)?;
        for asked in [None, Some(bundled_shift + 0.5)] {
            let dir = tempfile::tempdir()?;
            let mut settings = TrainSettings::new(dir.path().join("out"), dir.path().join("work"));
            (settings.from, settings.transformer_steps, settings.flow_shift) = (Some(bundled.clone()), 0, asked);
            train_stages(&settings, &mut |_| {})?;
            assert_eq!(model::checkpoint_flow_shift(&settings.out)?, asked.unwrap_or(bundled_shift), "asked {asked:?}");
        }
        let dir = tempfile::tempdir()?;
        let mut settings = TrainSettings::new(dir.path().join("out"), dir.path().join("work"));
        (settings.from, settings.transformer_steps, settings.flow_shift) = (Some(bundled), 0, Some(0.0));
        let err = train_stages(&settings, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("flow shift"), "{err}");
        Ok(())
    }

    /// Object pixels and their eight neighbours weigh 1 + VAE_OBJECT_WEIGHT, every other pixel 1.
    #[test]
    fn vae_loss_weights_cover_objects_and_their_edges() -> Result<()> {
        let scene = Scene::random(&mut Rng::new(5), Split::Train);
        let weights = object_pixel_weights(&clips_tensor(std::slice::from_ref(&scene), 5)?)?.flatten_all()?.to_vec1::<f32>()?;
        let rendered = scene.render();
        let mut heavy = 0;
        for (f, frame) in rendered.iter().take(5).enumerate() {
            let object = |x: i64, y: i64| {
                (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) && {
                    let i = 3 * (y as usize * WIDTH + x as usize);
                    crate::analysis::is_object_pixel(&frame[i..i + 3])
                }
            };
            for y in 0..HEIGHT as i64 {
                for x in 0..WIDTH as i64 {
                    let near = (-1..=1).any(|dy| (-1..=1).any(|dx| object(x + dx, y + dy)));
                    let expected = if near { 1.0 + VAE_OBJECT_WEIGHT } else { 1.0 };
                    assert_eq!(weights[(f * HEIGHT + y as usize) * WIDTH + x as usize], expected, "frame {f} pixel ({x}, {y})");
                    heavy += near as usize;
                }
            }
        }
        assert!(heavy > 0 && heavy < weights.len() / 2, "{heavy} of {} pixels weighted up", weights.len());
        Ok(())
    }

    /// Training only the decoder: no gradient reaches the encoder, whose weights (so the latents)
    /// stay as they were, while the decoder's change.
    #[test]
    fn decoder_only_vae_training_leaves_the_encoder_alone() -> Result<()> {
        let params = Params::new(3);
        let config = model::vae_config(vec![0.0; LATENT_CHANNELS], vec![1.0; LATENT_CHANNELS]);
        let vae = WanVae::new(&config, params.var_builder())?;
        let trained = trained_vae_params(&params, true);
        let names: Vec<String> = trained.vars().into_iter().map(|(name, _)| name).collect();
        assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("decoder.") || n.starts_with("post_quant_conv.")), "{names:?}");
        assert!(names.len() < params.count(), "the encoder's parameters are trained too");
        // Copies: the parameters' tensors share their storage with the variables the step updates.
        let before: HashMap<String, Tensor> = params.tensors().into_iter().map(|(name, t)| Ok((name, t.copy()?))).collect::<Result<_>>()?;
        let video = clips_tensor(&[Scene::random(&mut Rng::new(8), Split::Train)], 5)?.narrow(3, 16, 16)?.narrow(4, 16, 16)?;
        let grads = VaeBatch::new(video, &config, 0.0, &mut Rng::new(9))?.loss(&vae, 0..1, true, 1.0)?.backward()?;
        for (name, var) in params.vars() {
            if !names.contains(&name) {
                assert!(grads.get(var.as_tensor()).is_none(), "{name} has a gradient");
            }
        }
        AdamW::new(trained, 0.0).step(&grads, 1e-2)?;
        let after = params.tensors();
        for (name, value) in &before {
            let change = (&after[name] - value)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(change > 0.0, names.contains(name), "{name} changed by {change}");
        }
        Ok(())
    }

    /// A decoder of a new width starts from scratch at that width, behind the kept encoder: the
    /// encoder's weights are the checkpoint's, the decoder's are not.
    #[test]
    fn a_wider_decoder_keeps_the_checkpoints_encoder() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = model::vae_config(vec![0.0; LATENT_CHANNELS], vec![1.0; LATENT_CHANNELS]);
        let saved = Params::new(21);
        WanVae::new(&config, saved.var_builder())?;
        std::fs::create_dir_all(dir.path().join("vae"))?;
        saved.save(&dir.path().join("vae/diffusion_pytorch_model.safetensors"))?;
        let saved = saved.tensors();

        let mut settings = TrainSettings::new(dir.path().join("out"), dir.path().join("work"));
        (settings.vae_from, settings.vae_decoder_only, settings.vae_decoder_width) = (Some(dir.path().to_path_buf()), true, Some(16));
        let wider = WanVaeConfig { decoder_base_dim: Some(16), ..config.clone() };
        let (params, vae) = vae_to_train(&settings, &wider)?;
        let mut decoder_params = 0;
        for (name, value) in params.tensors() {
            // Biases and norm scales start at constants; the kernels tell a fresh decoder apart.
            if is_decoder_param(&name) && value.rank() > 1 {
                decoder_params += 1;
                let old = &saved[&name];
                let same = old.dims() == value.dims() && (old - &value)?.abs()?.max_all()?.to_scalar::<f32>()? == 0.0;
                assert!(!same, "{name} kept the checkpoint's weights");
            } else if !is_decoder_param(&name) {
                assert_eq!((&saved[&name] - &value)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0, "{name} is not the checkpoint's");
            }
        }
        assert!(decoder_params > 0);
        // The decoder's last convolution reads 16 channels: the new width.
        assert_eq!(params.tensors()["decoder.conv_out.weight"].dim(1)?, 16);
        let video = clips_tensor(&[Scene::random(&mut Rng::new(5), Split::Train)], 5)?.narrow(3, 16, 16)?.narrow(4, 16, 16)?;
        let decoded = vae.decode_unclamped(&vae.encode(&video, None)?.mean, None, &mut |_, _| {})?;
        assert_eq!(decoded.dims(), video.dims());
        Ok(())
    }

    /// A continued transformer or text encoder keeps its depth or grows deeper (with steps to train
    /// the new layers), never shallower; a new one gets the asked depth, at least one layer.
    #[test]
    fn model_depths_follow_the_checkpoint_and_the_asked_layers() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let vae = model::vae_config(vec![0.0; LATENT_CHANNELS], vec![1.0; LATENT_CHANNELS]);
        model::write_configs(dir.path(), &model::text_encoder_config(40, 2), &model::transformer_config(4), &vae, model::FLOW_SHIFT)?;
        // The folder is read as a checkpoint component, which holds weights.
        let weights = HashMap::from([("proj_out.bias".to_string(), Tensor::ones(8, DType::F32, &Device::Cpu)?)]);
        candle_core::safetensors::save(&weights, dir.path().join("transformer/diffusion_pytorch_model.safetensors"))?;
        let mut settings = TrainSettings::new(dir.path().join("out"), dir.path().join("work"));
        assert_eq!(transformer_depth(&settings)?, (0, model::TRANSFORMER_LAYERS));
        settings.transformer_layers = Some(0);
        assert!(transformer_depth(&settings).unwrap_err().to_string().contains("at least one layer"));

        settings.from = Some(dir.path().to_path_buf());
        settings.transformer_layers = None;
        assert_eq!(transformer_depth(&settings)?, (4, 4));
        settings.transformer_layers = Some(6);
        assert_eq!(transformer_depth(&settings)?, (4, 6));
        settings.transformer_layers = Some(3);
        assert!(transformer_depth(&settings).unwrap_err().to_string().contains("fewer than the 4 layers"));
        settings.transformer_layers = Some(6);
        settings.transformer_steps = 0;
        assert!(transformer_depth(&settings).unwrap_err().to_string().contains("--transformer-steps"));

        // The text encoder's depth follows the same rules, from its own config and flag.
        let text_weights = HashMap::from([("shared.weight".to_string(), Tensor::ones((40, 64), DType::F32, &Device::Cpu)?)]);
        candle_core::safetensors::save(&text_weights, dir.path().join("text_encoder/model.safetensors"))?;
        settings.transformer_steps = 100;
        assert_eq!(text_encoder_depth(&settings)?, (2, 2));
        settings.text_encoder_layers = Some(4);
        assert_eq!(text_encoder_depth(&settings)?, (2, 4));
        settings.text_encoder_layers = Some(1);
        let shallower = text_encoder_depth(&settings).unwrap_err().to_string();
        assert!(shallower.contains("--text-encoder-layers 1 is fewer than the 2 layers") && shallower.contains("text encoder"), "{shallower}");
        settings.from = None;
        assert_eq!(text_encoder_depth(&settings)?, (0, 1));
        settings.text_encoder_layers = None;
        assert_eq!(text_encoder_depth(&settings)?, (0, model::TEXT_ENCODER_LAYERS));
        Ok(())
    }

    /// Most crops hold the clip's object (its pixel away from the crop's edge); every crop lies
    /// inside the frame.
    #[test]
    fn vae_crops_find_the_object() -> Result<()> {
        let (y, x) = (50, 9);
        let mut values = vec![-1f32; 3 * 5 * HEIGHT * WIDTH];
        values[y * WIDTH + x] = 1.0; // red channel of the first frame
        let clip = Tensor::from_vec(values, (1, 3, 5, HEIGHT, WIDTH), &Device::Cpu)?;
        let mut rng = Rng::new(4);
        let mut held = 0;
        for _ in 0..400 {
            let (top, left) = crop_origin(&clip, &mut rng)?;
            assert!(top + VAE_CROP <= HEIGHT && left + VAE_CROP <= WIDTH, "crop at ({top}, {left}) leaves the frame");
            if (top + 2..top + VAE_CROP - 2).contains(&y) && (left + 2..left + VAE_CROP - 2).contains(&x) {
                held += 1;
            }
        }
        assert!(held as f32 >= 0.9 * OBJECT_CROPS * 400.0, "{held} of 400 crops hold the object");
        Ok(())
    }

    /// The loss weights' mask marks the cells an object's pixels fall in, frame by frame through
    /// the VAE's chunks, and nothing on the backdrop.
    #[test]
    fn object_masks_cover_the_objects_latent_cells() -> Result<()> {
        let scene = Scene::random(&mut Rng::new(11), Split::Train);
        let frames = scene.render();
        let mask = object_masks(std::slice::from_ref(&scene), 5, HEIGHT / 4, WIDTH / 4)?.flatten_all()?.to_vec1::<f32>()?;
        let cell = |f: usize, i: usize| mask[(f.div_ceil(4) * (HEIGHT / 4) + i / WIDTH / 4) * (WIDTH / 4) + i % WIDTH / 4];
        let mut object_pixels = 0;
        for (f, frame) in frames.iter().enumerate() {
            for (i, rgb) in frame.chunks(3).enumerate() {
                if crate::analysis::is_object_pixel(rgb) {
                    object_pixels += 1;
                    assert_eq!(cell(f, i), 1.0, "frame {f} pixel {i} shows an object outside the mask");
                }
            }
        }
        let marked = mask.iter().filter(|v| **v == 1.0).count();
        assert!(object_pixels > 0 && marked > 0, "the scene shows no object");
        // Cells are marked only where object pixels fall (no more cells than such pixels, and
        // objects are small).
        assert!(marked <= object_pixels && marked < mask.len() / 2, "{marked} of {} cells marked", mask.len());
        Ok(())
    }

    /// Phases keep their shares of the step count, follow each other without gaps, and the last
    /// one runs to the end.
    #[test]
    fn vae_phases_scale_with_the_step_count() {
        assert_eq!(vae_phase(0, 1), (0, 1, 5, 8));
        for total in [7, 100, VAE_STEPS] {
            let phases: Vec<_> = (0..total).map(|step| vae_phase(step, total)).collect();
            assert_eq!(phases[0].0, 0);
            assert_eq!(phases[total - 1].1, total, "{total} steps");
            assert_eq!((phases[total - 1].2, phases[total - 1].3), (17, 4), "the last step sees whole clips");
            for (step, (start, end, _, _)) in phases.iter().enumerate() {
                assert!(*start <= step && step < *end, "step {step} of {total} outside its phase {start}..{end}");
            }
        }
        assert_eq!(vae_phase(0, VAE_STEPS), (0, 1495, 5, 8));
        assert_eq!(vae_phase(1495, VAE_STEPS), (1495, 1909, 9, 8));
        assert_eq!(vae_phase(2299, VAE_STEPS), (1909, 2300, 17, 4));
    }

    /// A run that keeps its checkpoint's VAE trained none, and its card says so rather than
    /// describing a VAE recipe that never ran.
    #[test]
    fn the_vae_recipe_names_what_this_run_did() {
        let mut settings = TrainSettings::new("out".into(), "work".into());
        assert!(vae_recipe(&settings).starts_with(&format!("{VAE_STEPS} steps on")), "{}", vae_recipe(&settings));
        settings.from = Some("earlier".into());
        assert!(vae_recipe(&settings).starts_with("kept from the earlier checkpoint"), "{}", vae_recipe(&settings));
        settings.vae_from = Some("earlier".into());
        assert!(vae_recipe(&settings).contains("starting from the VAE of earlier"), "{}", vae_recipe(&settings));
        settings.vae_decoder_only = true;
        assert!(vae_recipe(&settings).contains("only the decoder of the VAE of earlier"), "{}", vae_recipe(&settings));
        settings.vae_decoder_width = Some(16);
        assert!(vae_recipe(&settings).contains("a new decoder (base width 16) from scratch on the encoder of the VAE of earlier"), "{}", vae_recipe(&settings));
        settings.vae_from = None;
        settings.vae_decoder_only = false;
        settings.vae_decoder_width = None;
        settings.new_vae = true;
        assert!(vae_recipe(&settings).starts_with(&format!("{VAE_STEPS} steps on")), "{}", vae_recipe(&settings));
        assert!(!vae_recipe(&settings).contains("pixel steps"), "{}", vae_recipe(&settings));
        settings.vae_edge_loss = 0.5;
        assert!(vae_recipe(&settings).contains("+ 0.5 x L1 of the error's horizontal and vertical pixel steps"), "{}", vae_recipe(&settings));
    }

    /// The edge loss is blind to an error that is the same at every pixel (a shifted brightness)
    /// and counts a blurred edge, horizontal or vertical, by its pixels' weights.
    #[test]
    fn the_edge_loss_counts_blurred_edges_not_uniform_errors() -> Result<()> {
        let mut rng = Rng::new(23);
        let (clips, frames, size) = (2, 5, 16);
        let drawn: Vec<f32> = (0..clips * frames * size * size).map(|_| 1.0 + 4.0 * rng.f32()).collect();
        let weights = Tensor::from_vec(drawn.clone(), (clips, 1, frames, size, size), &Device::Cpu)?;
        let ones = Tensor::ones((clips, 1, frames, size, size), DType::F32, &Device::Cpu)?;
        let uniform = (Tensor::ones((clips, 3, frames, size, size), DType::F32, &Device::Cpu)? * (rng.f32() as f64 + 0.1))?;
        assert!(edge_error(&uniform, &weights)?.to_scalar::<f32>()?.abs() < 1e-4);
        // A bright left half (1, then -1 from column 8) reconstructed as 1, ..., 0.5, -0.5, -1, ...:
        // the error is -0.5 in column 7 and +0.5 in column 8, so each row steps by 0.5 from column 6
        // to 7, 1 from 7 to 8 and 0.5 from 8 to 9; rows do not change from one to the next.
        let row: Vec<f32> = (0..size).map(|x| match x { 7 => -0.5, 8 => 0.5, _ => 0.0 }).collect();
        let vertical_edge = Tensor::from_vec(row.repeat(clips * 3 * frames * size), (clips, 3, frames, size, size), &Device::Cpu)?;
        let rows = clips * frames * size;
        let expected: f32 = (0..rows).map(|r| 0.5 * drawn[r * size + 6] + drawn[r * size + 7] + 0.5 * drawn[r * size + 8]).sum();
        let error = edge_error(&vertical_edge, &weights)?.to_scalar::<f32>()?;
        assert!((error - expected).abs() <= 1e-4 * expected, "edge error {error}, expected {expected}");
        assert!((edge_error(&vertical_edge, &ones)?.to_scalar::<f32>()? - 2.0 * rows as f32).abs() < 1e-3);
        // The same edge turned a quarter (rows instead of columns) costs the same.
        let horizontal_edge = vertical_edge.transpose(3, 4)?.contiguous()?;
        assert!((edge_error(&horizontal_edge, &ones)?.to_scalar::<f32>()? - 2.0 * rows as f32).abs() < 1e-3);
        Ok(())
    }

    /// A pool cache is used only with the scenes and VAE it was encoded from: another scene, another
    /// VAE or a cache without a fingerprint (written before they were recorded) is encoded again.
    #[test]
    fn pool_cache_is_used_only_for_its_own_scenes_and_vae() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (vae, other_vae) = (dir.path().join("vae.safetensors"), dir.path().join("other.safetensors"));
        std::fs::write(&vae, [1u8, 2, 3])?;
        std::fs::write(&other_vae, [1u8, 2, 4])?;
        let mut rng = Rng::new(21);
        let scenes: Vec<Scene> = (0..3).map(|_| Scene::random(&mut rng, Split::Train)).collect();
        let fingerprint = pool_fingerprint(&scenes, &vae)?;
        let mut moved = scenes.clone();
        moved[2].objects[0].start.0 += 1.0;
        assert_ne!(pool_fingerprint(&moved, &vae)?, fingerprint);
        assert_ne!(pool_fingerprint(&scenes, &other_vae)?, fingerprint);

        let latents = Tensor::randn(0f32, 1.0, (3, 8, 2, 4, 4), &Device::Cpu)?;
        let cache = dir.path().join("pool.safetensors");
        assert!(cached_latents(&cache, fingerprint)?.is_none(), "no cache yet");
        save_atomically(&[("latents".to_string(), latents.clone())].into_iter().collect(), &cache)?;
        assert!(cached_latents(&cache, fingerprint)?.is_none(), "a cache without a fingerprint is stale");
        save_pool(&cache, &latents, fingerprint)?;
        let loaded = cached_latents(&cache, fingerprint)?.expect("the matching cache is used");
        assert_eq!(loaded.flatten_all()?.to_vec1::<f32>()?, latents.flatten_all()?.to_vec1::<f32>()?);
        assert!(cached_latents(&cache, pool_fingerprint(&moved, &vae)?)?.is_none());
        Ok(())
    }
}
