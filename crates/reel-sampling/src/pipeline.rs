//! Text to video, as diffusers' `WanPipeline.__call__` (pipelines/wan/pipeline_wan.py) does it:
//! encode the prompts, prepare the latents, denoise, decode.
//!
//! Components are loaded when their stage starts and dropped when it ends (the text encoder,
//! UMT5-XXL, is the largest), so peak memory is that of one stage, not of the whole model. The text
//! encoder and transformer compute in the pipeline's dtype; the VAE always decodes in f32.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use reel_models::nn::linear::{with_quantization, Quantization};
use reel_models::clip::{ClipImageProcessor, ClipVisionEncoder};
use reel_models::umt5::{PromptTokenizer, Umt5Encoder};
use reel_models::wan::{LatentGeometry, PublishedModel, Tiling, WanTransformer, WanVae};
use reel_models::weights::random_var_builder;

use crate::checkpoint::{FrameConditioning, WanCheckpoint};
use crate::noise::seeded_noise;
use crate::progress::{OnProgress, Progress, Stage};
use crate::prompt::{clean_prompt, EncodedPrompt, PromptEncoder, DEFAULT_MAX_SEQUENCE_LENGTH};
use crate::sampler::{Denoiser, Expert, Guidance};
use crate::scheduler::{SchedulerChoice, SchedulerConfig};
use crate::step_cache::{DenoiseStats, StepCacheSettings};
use crate::{Result, SamplingError};

/// When the VAE decodes in overlapping tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaeTiling {
    /// Tiles for frames larger than 832x480, where untiled decoding needs several GiB.
    Auto,
    /// Always tile (256-pixel tiles every 192 pixels, as diffusers' `enable_tiling`).
    On,
    /// Never tile: exactly diffusers' default output, at the memory cost of whole frames.
    Off,
}

/// Frames above this many pixels are decoded in tiles under [`VaeTiling::Auto`].
const AUTO_TILING_PIXELS: usize = 832 * 480;

/// Playback rate of videos whose model names none: Wan's 16 frames per second.
pub const DEFAULT_FPS: f64 = 16.0;

/// One video to make.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt: String,
    /// Empty means none (the reference's default).
    pub negative_prompt: String,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub steps: usize,
    pub guidance: f64,
    /// Guidance of the low-noise expert (two-expert models only; defaults to `guidance`).
    pub guidance_2: Option<f64>,
    pub seed: u64,
    pub scheduler: Option<SchedulerChoice>,
    pub shift: Option<f64>,
    pub max_sequence_length: usize,
    /// Replaces the seeded noise: a tensor in the latent shape of the request.
    pub init_latents: Option<Tensor>,
    pub vae_tiling: VaeTiling,
    /// Step-cache threshold (see [`crate::step_cache`]); `None` computes every step.
    pub step_cache: Option<f64>,
    /// Frames the video starts with, (frames, height, width, 3) f32 in [0, 1] at the request's size:
    /// one frame is an image (image-to-video), 1 + 4k frames (the VAE's temporal factor) the end of
    /// a clip to continue. Needs a model that starts from frames (see [`FrameConditioning`]: Wan 2.2
    /// TI2V, Wan 2.1 I2V, Wan 2.2 I2V-A14B, the demo model); image-to-video models require them.
    pub first_frames: Option<Tensor>,
}

impl GenerationRequest {
    /// WanPipeline's defaults: 81 frames of 832x480, 50 steps, guidance 5.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            frames: 81,
            height: 480,
            width: 832,
            steps: 50,
            guidance: 5.0,
            guidance_2: None,
            seed: 0,
            scheduler: None,
            shift: None,
            max_sequence_length: DEFAULT_MAX_SEQUENCE_LENGTH,
            init_latents: None,
            vae_tiling: VaeTiling::Auto,
            step_cache: None,
            first_frames: None,
        }
    }

    fn guidance(&self) -> Guidance {
        Guidance { scale: self.guidance, scale_2: self.guidance_2 }
    }
}

/// A finished generation.
pub struct Generated {
    /// (frames, height, width, 3) f32 in [0, 1], on the CPU.
    pub frames: Tensor,
    /// The denoised latents (before the VAE's normalisation is undone).
    pub latents: Tensor,
    /// Wall time of each stage, in order.
    pub stage_seconds: Vec<(Stage, f64)>,
    /// Steps computed by the transformer and steps taken from the step cache.
    pub denoise_stats: DenoiseStats,
    /// What of the prompts the text encoder did not read.
    pub dropped_tokens: DroppedTokens,
}

/// Tokens cut from the end of the prompt and of the negative prompt to fit the request's
/// `max_sequence_length`: the model never saw them. 0 when a prompt fits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedTokens {
    pub prompt: usize,
    pub negative_prompt: usize,
}

impl DroppedTokens {
    /// What to tell the user when a prompt did not fit in `max_length` tokens, else None.
    pub fn warning(&self, max_length: usize) -> Option<String> {
        let cut = |what: &str, dropped: usize| {
            (dropped > 0).then(|| format!("the last {dropped} tokens of the {what} were ignored: the text encoder reads {max_length} tokens (raise --max-sequence-length, or shorten the {what})"))
        };
        let parts: Vec<String> = [cut("prompt", self.prompt), cut("negative prompt", self.negative_prompt)].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Generated {
    /// Frames as 8-bit RGB, rounded as diffusers' `numpy_to_pil` rounds them.
    pub fn rgb8(&self) -> Result<Vec<Vec<u8>>> {
        rgb8_frames(&self.frames)
    }
}

/// Frames (frames, height, width, 3) in [0, 1] as 8-bit RGB, rounded as diffusers' `numpy_to_pil` rounds them.
pub fn rgb8_frames(frames: &Tensor) -> Result<Vec<Vec<u8>>> {
    let bytes = (frames.clone() * 255.0)?.round()?.clamp(0f32, 255f32)?.to_dtype(DType::U8)?;
    (0..bytes.dim(0)?).map(|i| Ok(bytes.get(i)?.flatten_all()?.to_vec1::<u8>()?)).collect()
}

/// 8-bit RGB frames of `height` x `width` as (frames, height, width, 3) f32 in [0, 1].
pub fn frames_from_rgb8(frames: &[Vec<u8>], height: usize, width: usize) -> Result<Tensor> {
    let mut data = Vec::with_capacity(frames.len() * height * width * 3);
    for (i, frame) in frames.iter().enumerate() {
        if frame.len() != height * width * 3 {
            return Err(SamplingError::InvalidInput(format!("frame {i} holds {} bytes, not {width}x{height} RGB", frame.len())));
        }
        data.extend(frame.iter().map(|&v| v as f32 / 255.0));
    }
    Ok(Tensor::from_vec(data, (frames.len(), height, width, 3), &Device::Cpu)?)
}

/// What given first frames become for the denoiser (see [`FrameConditioning`]).
#[derive(Default)]
struct FramesEncoded {
    /// Latents that replace the first latent frames (per-token timesteps).
    given_latents: Option<Tensor>,
    /// Mask and encoded frames joined to the latents' channels.
    channels: Option<Tensor>,
    /// CLIP tokens of the first frame.
    image_tokens: Option<Tensor>,
}

/// The mask `WanImageToVideoPipeline.prepare_latents` joins to the latents, (1, temporal, latent
/// frames, height, width) like `latents`: one channel per frame a latent frame stands for, 1 where
/// that frame is given. The first latent frame stands for the first frame alone, in all its channels.
fn given_frames_mask(given: usize, latents: &Tensor, temporal: usize) -> Result<Tensor> {
    let (_, _, latent_frames, height, width) = latents.dims5()?;
    let mut mask = Vec::with_capacity(temporal * latent_frames);
    for slot in 0..temporal {
        for latent_frame in 0..latent_frames {
            let frame = if latent_frame == 0 { 0 } else { 1 + (latent_frame - 1) * temporal + slot };
            mask.push(if frame < given { 1f32 } else { 0f32 });
        }
    }
    let mask = Tensor::from_vec(mask, (1, temporal, latent_frames, 1, 1), latents.device())?;
    Ok(mask.broadcast_as((1, temporal, latent_frames, height, width))?.contiguous()?)
}

/// Where the components come from.
enum Source {
    Checkpoint(WanCheckpoint),
    /// A published configuration with random weights: for benchmarks and memory measurements.
    Random(Box<PublishedModel>),
}

/// The Wan text-to-video pipeline.
pub struct WanPipeline {
    source: Source,
    dtype: DType,
    device: Device,
    /// Quantization of the text encoder's and transformers' linear layers (the VAE is convolutional).
    quantization: Option<Quantization>,
    /// A GGUF transformer used in place of the checkpoint's `transformer` folder.
    transformer_gguf: Option<PathBuf>,
}

impl WanPipeline {
    pub fn new(checkpoint: WanCheckpoint, dtype: DType, device: &Device) -> Self {
        Self { source: Source::Checkpoint(checkpoint), dtype, device: device.clone(), quantization: None, transformer_gguf: None }
    }

    /// The dtype the text encoder and transformer compute in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Loads the transformer from a GGUF file (community quantizations) instead of the
    /// checkpoint's `transformer` folder; the other components still come from the checkpoint.
    pub fn with_transformer_gguf(mut self, path: Option<PathBuf>) -> Self {
        self.transformer_gguf = path;
        self
    }

    /// Quantizes the text encoder's and the transformers' linear layers at load time.
    pub fn with_quantization(mut self, quantization: Option<Quantization>) -> Self {
        self.quantization = quantization;
        self
    }

    /// A published configuration with random weights (no download): the real compute and memory
    /// profile, meaningless frames. Prompts are replaced by fixed token ids.
    pub fn random(model: PublishedModel, dtype: DType, device: &Device) -> Self {
        Self { source: Source::Random(Box::new(model)), dtype, device: device.clone(), quantization: None, transformer_gguf: None }
    }

    pub fn geometry(&self) -> Result<LatentGeometry> {
        match &self.source {
            Source::Checkpoint(c) => c.geometry(),
            Source::Random(m) => Ok(m.latents),
        }
    }

    fn two_experts(&self) -> bool {
        match &self.source {
            Source::Checkpoint(c) => c.has_two_experts(),
            Source::Random(m) => m.experts == 2,
        }
    }

    /// The scheduler the request asks for (the checkpoint's own by default).
    pub fn scheduler_config(&self, request: &GenerationRequest) -> Result<SchedulerConfig> {
        let mut config = match &self.source {
            Source::Checkpoint(c) => c.scheduler_config()?,
            Source::Random(_) => SchedulerConfig::UniPc(crate::scheduler::UniPcConfig::wan(3.0)),
        };
        if let Some(choice) = request.scheduler {
            config = config.with_choice(choice);
        }
        if let Some(shift) = request.shift {
            config = config.with_shift(shift)?;
        }
        Ok(config)
    }

    /// Checks a request against the model, returning the latent shape it needs.
    pub fn latent_shape(&self, request: &GenerationRequest) -> Result<[usize; 5]> {
        let geometry = self.geometry()?;
        let (f, h, w) = geometry.latent_dims(request.frames, request.height, request.width)?;
        let invalid = |msg: String| Err(SamplingError::InvalidInput(msg));
        if request.steps == 0 {
            return invalid("steps must be at least 1".into());
        }
        if !request.guidance.is_finite() || request.guidance < 0.0 {
            return invalid(format!("guidance must be a number >= 0, found {}", request.guidance));
        }
        if request.guidance_2.is_some() && !self.two_experts() {
            return invalid("--guidance-2 applies to two-expert models (Wan2.2 A14B) only".into());
        }
        if request.max_sequence_length == 0 {
            return invalid("max sequence length must be at least 1".into());
        }
        let shape = [1, geometry.channels, f, h, w];
        if let Some(latents) = &request.init_latents {
            if latents.dims() != shape {
                return invalid(format!(
                    "the initial latents have shape {:?}, but {} frames of {}x{} need {shape:?}",
                    latents.dims(),
                    request.frames,
                    request.width,
                    request.height
                ));
            }
        }
        if let Some(frames) = &request.first_frames {
            self.given_latent_frames(frames, request, f)?;
        }
        Ok(shape)
    }

    /// Latent frames that `frames` (given first frames) fix, after checking them against the request.
    fn given_latent_frames(&self, frames: &Tensor, request: &GenerationRequest, latent_frames: usize) -> Result<usize> {
        let geometry = self.geometry()?;
        let temporal = geometry.temporal;
        let dims = frames.dims();
        let [count, height, width, 3] = *dims else {
            return Err(SamplingError::InvalidInput(format!("given first frames must be (frames, height, width, 3), found {dims:?}")));
        };
        if (height, width) != (request.height, request.width) {
            return Err(SamplingError::InvalidInput(format!(
                "the given first frames are {width}x{height} but the video is {}x{}: resize or crop them to the video's size",
                request.width, request.height
            )));
        }
        if count == 0 || (count - 1) % temporal != 0 {
            return Err(SamplingError::InvalidInput(format!(
                "{count} given first frames: give 1 (an image) or 1 + {temporal}k frames (whole latent frames of this model)"
            )));
        }
        let given = (count - 1) / temporal + 1;
        if given >= latent_frames {
            return Err(SamplingError::InvalidInput(format!(
                "{count} given first frames leave nothing to generate in {} frames: make the video longer or give fewer frames",
                request.frames
            )));
        }
        if !self.can_start_from_frames() {
            return Err(SamplingError::InvalidInput(
                "this text-to-video model cannot start from a given image or frames: use an image-to-video model \
                 (Wan2.1-I2V, Wan2.2-I2V-A14B), Wan2.2-TI2V-5B or reel's demo model"
                    .into(),
            ));
        }
        Ok(given)
    }

    /// How the model starts from given frames.
    pub fn frame_conditioning(&self) -> Result<FrameConditioning> {
        match &self.source {
            Source::Checkpoint(c) => c.frame_conditioning(),
            Source::Random(m) => Ok(FrameConditioning::of(m.latents.channels == 48, &m.transformer, m.latents.channels, m.latents.temporal)),
        }
    }

    /// Whether the model can start from given frames (an image, the end of a clip).
    pub fn can_start_from_frames(&self) -> bool {
        self.frame_conditioning().is_ok_and(|c| c != FrameConditioning::None)
    }

    /// The tokens of the request's prompt and (with guidance) negative prompt that the text
    /// encoder would not read, found by tokenizing alone: a caller can warn before a long render.
    pub fn dropped_tokens(&self, request: &GenerationRequest) -> Result<DroppedTokens> {
        let Source::Checkpoint(checkpoint) = &self.source else {
            // Random weights read fixed token ids, not the prompt.
            return Ok(DroppedTokens::default());
        };
        let mut tokenizer = PromptTokenizer::load(&checkpoint.tokenizer_dir())?;
        let mut dropped = |text: &str| -> Result<usize> { Ok(tokenizer.encode(&clean_prompt(text), request.max_sequence_length)?.dropped) };
        Ok(DroppedTokens {
            prompt: dropped(&request.prompt)?,
            negative_prompt: if request.guidance().enabled() { dropped(&request.negative_prompt)? } else { 0 },
        })
    }

    /// Makes one video.
    pub fn generate(&self, request: &GenerationRequest, on_progress: OnProgress) -> Result<Generated> {
        let shape = self.latent_shape(request)?;
        // Read from the configs once: the encoding of given frames and the denoiser both follow it.
        let frame_conditioning = self.frame_conditioning()?;
        if request.first_frames.is_none() && matches!(frame_conditioning, FrameConditioning::Channels { .. }) {
            return Err(SamplingError::InvalidInput(
                "this image-to-video model starts from an image: give one (reel generate --image FILE)".into(),
            ));
        }
        if let Some(path) = &self.transformer_gguf {
            // Fail before the text encoder runs, not at the first step.
            std::fs::File::open(path).map_err(|e| SamplingError::InvalidInput(format!("cannot read the GGUF transformer {}: {e}", path.display())))?;
        }
        if let Some(threshold) = request.step_cache.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(SamplingError::InvalidInput(format!(
                "step-cache threshold {threshold} is not a positive number (0.05 to 0.2 are typical; leave it out to compute every step)"
            )));
        }
        let scheduler_config = self.scheduler_config(request)?;
        let mut stage_seconds = Vec::new();
        let guidance = request.guidance();

        let started = Instant::now();
        let (cond, uncond, dropped_tokens) = self.encode_prompts(request, guidance.enabled(), on_progress)?;
        stage_seconds.push((Stage::EncodePrompt, started.elapsed().as_secs_f64()));

        let conditioning = match &request.first_frames {
            Some(frames) => {
                let started = Instant::now();
                let conditioning = self.encode_first_frames(frames, request, frame_conditioning, on_progress)?;
                stage_seconds.push((Stage::EncodeFrames, started.elapsed().as_secs_f64()));
                conditioning
            }
            None => FramesEncoded::default(),
        };

        let started = Instant::now();
        let latents = match &request.init_latents {
            Some(latents) => latents.to_device(&self.device)?.to_dtype(DType::F32)?,
            None => seeded_noise(request.seed, shape.as_slice(), &self.device)?,
        };
        let mut scheduler = scheduler_config.build(request.steps)?;
        let step_cache = request.step_cache.map(|threshold| StepCacheSettings::new(threshold, request.steps));
        let mut denoiser = self
            .denoiser(frame_conditioning)?
            .with_step_cache(step_cache)
            .with_given_frames(conditioning.given_latents)
            .with_frame_channels(conditioning.channels)
            .with_image_tokens(conditioning.image_tokens);
        let latents = denoiser.denoise(scheduler.as_mut(), latents, &cond, uncond.as_ref(), guidance, on_progress)?;
        let denoise_stats = denoiser.stats();
        drop(denoiser);
        stage_seconds.push((Stage::Denoise, started.elapsed().as_secs_f64()));

        let started = Instant::now();
        let frames = self.decode(&latents, request, on_progress)?;
        stage_seconds.push((Stage::Decode, started.elapsed().as_secs_f64()));
        Ok(Generated { frames, latents, stage_seconds, denoise_stats, dropped_tokens })
    }

    /// Prompt and (with guidance) negative-prompt embeddings, in the transformer's dtype, and the
    /// tokens truncation dropped from each.
    fn encode_prompts(
        &self,
        request: &GenerationRequest,
        with_negative: bool,
        on_progress: OnProgress,
    ) -> Result<(Tensor, Option<Tensor>, DroppedTokens)> {
        on_progress(Progress { stage: Stage::Load("text_encoder"), done: 0, total: 1 });
        let max_length = request.max_sequence_length;
        let total = if with_negative { 2 } else { 1 };
        let mut encode_all = |encode: &mut dyn FnMut(&str) -> Result<EncodedPrompt>| -> Result<(Tensor, Option<Tensor>, DroppedTokens)> {
            on_progress(Progress { stage: Stage::Load("text_encoder"), done: 1, total: 1 });
            let mut dropped = DroppedTokens::default();
            let cond = encode(&request.prompt)?;
            dropped.prompt = cond.dropped_tokens;
            on_progress(Progress { stage: Stage::EncodePrompt, done: 1, total });
            let uncond = if with_negative {
                let uncond = encode(&request.negative_prompt)?;
                dropped.negative_prompt = uncond.dropped_tokens;
                on_progress(Progress { stage: Stage::EncodePrompt, done: 2, total });
                Some(uncond.embeddings.to_dtype(self.dtype)?)
            } else {
                None
            };
            Ok((cond.embeddings.to_dtype(self.dtype)?, uncond, dropped))
        };
        match &self.source {
            Source::Checkpoint(checkpoint) => {
                let mut encoder = PromptEncoder {
                    tokenizer: PromptTokenizer::load(&checkpoint.tokenizer_dir())?,
                    encoder: {
                        let folder = checkpoint.component("text_encoder")?;
                        with_quantization(self.quantization, || Umt5Encoder::load(&folder, self.dtype, &self.device))?
                    },
                };
                encode_all(&mut |text| encoder.encode(text, max_length))
            }
            Source::Random(model) => {
                let encoder = with_quantization(self.quantization, || Umt5Encoder::new(&model.text_encoder, random_var_builder(self.dtype, &self.device)))?;
                encode_all(&mut |_| {
                    let ids: Vec<u32> = (0..max_length as u32).collect();
                    let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                    let mask = ids.ones_like()?;
                    Ok(EncodedPrompt { embeddings: encoder.forward(&ids, &mask)?, dropped_tokens: 0 })
                })
            }
        }
    }

    fn denoiser(&self, conditioning: FrameConditioning) -> Result<Denoiser> {
        let (dtype, device, quantization) = (self.dtype, self.device.clone(), self.quantization);
        let expert = |name: &'static str| -> Result<Expert> {
            Ok(match &self.source {
                Source::Checkpoint(checkpoint) => Expert::on_disk_quantized(checkpoint.component(name)?, dtype, &device, name, quantization),
                Source::Random(model) => {
                    let config = model.transformer.clone();
                    let device = device.clone();
                    Expert::deferred(
                        name,
                        Box::new(move || with_quantization(quantization, || WanTransformer::new(&config, random_var_builder(dtype, &device)))),
                    )
                }
            })
        };
        let boundary = match &self.source {
            Source::Checkpoint(c) => c.boundary_ratio(),
            Source::Random(m) => (m.experts == 2).then_some(0.875),
        };
        let expand = conditioning == FrameConditioning::PerTokenTimesteps;
        let denoiser = match (boundary, &self.transformer_gguf) {
            (Some(_), Some(path)) => {
                return Err(SamplingError::InvalidInput(format!(
                    "{}: a GGUF transformer replaces a single transformer, and this model has two experts (transformer, transformer_2)",
                    path.display()
                )))
            }
            (None, Some(path)) => {
                let path = path.clone();
                Denoiser::single(Expert::deferred("transformer", Box::new(move || WanTransformer::load_gguf(&path, dtype, &device))))
            }
            (Some(ratio), None) => Denoiser::two_experts(expert("transformer")?, expert("transformer_2")?, ratio)?,
            (None, None) => Denoiser::single(expert("transformer")?),
        };
        Ok(denoiser.with_expand_timesteps(expand))
    }

    fn load_vae(&self) -> Result<WanVae> {
        Ok(match &self.source {
            Source::Checkpoint(c) => WanVae::load(&c.component("vae")?, DType::F32, &self.device)?,
            Source::Random(m) => WanVae::new(&m.vae, random_var_builder(DType::F32, &self.device))?,
        })
    }

    /// What the denoiser gets from given first frames (frames, height, width, 3) in [0, 1], as
    /// diffusers' `WanImageToVideoPipeline.prepare_latents` and `encode_image` make it.
    fn encode_first_frames(&self, frames: &Tensor, request: &GenerationRequest, conditioning: FrameConditioning, on_progress: OnProgress) -> Result<FramesEncoded> {
        on_progress(Progress { stage: Stage::Load("vae"), done: 0, total: 1 });
        let vae = self.load_vae()?;
        on_progress(Progress { stage: Stage::EncodeFrames, done: 0, total: 1 });
        let given = ((frames.to_device(&self.device)?.to_dtype(DType::F32)? * 2.0)? - 1.0)?.permute((3, 0, 1, 2))?.unsqueeze(0)?;
        let encoded = match conditioning {
            // The frames' latents (the posterior's mean, normalised) stand in for the first latent frames.
            FrameConditioning::PerTokenTimesteps => {
                let latents = vae.normalize(&vae.encode(&given.contiguous()?, None)?.mean)?;
                FramesEncoded { given_latents: Some(latents), ..Default::default() }
            }
            FrameConditioning::Channels { clip } => {
                // The whole video's length is encoded: the given frames, then zeros (grey).
                let (_, _, count, height, width) = given.dims5()?;
                let empty = Tensor::zeros((1, 3, request.frames - count, height, width), DType::F32, &self.device)?;
                let video = Tensor::cat(&[&given, &empty], 2)?.contiguous()?;
                let latents = vae.normalize(&vae.encode(&video, None)?.mean)?;
                drop(vae);
                let mask = given_frames_mask(count, &latents, self.geometry()?.temporal)?;
                let image_tokens = if clip { Some(self.clip_tokens(frames, on_progress)?) } else { None };
                FramesEncoded { channels: Some(Tensor::cat(&[&mask, &latents], 1)?), image_tokens, ..Default::default() }
            }
            FrameConditioning::None => {
                return Err(SamplingError::InvalidInput("this text-to-video model cannot start from given frames".into()))
            }
        };
        on_progress(Progress { stage: Stage::EncodeFrames, done: 1, total: 1 });
        Ok(encoded)
    }

    /// The CLIP vision encoder's tokens of the first given frame (its penultimate layer's output, as
    /// `WanImageToVideoPipeline.encode_image` takes them), computed in f32 as Wan's examples load it.
    fn clip_tokens(&self, frames: &Tensor, on_progress: OnProgress) -> Result<Tensor> {
        let Source::Checkpoint(checkpoint) = &self.source else {
            return Err(SamplingError::InvalidInput("published configurations carry no CLIP image encoder: use a checkpoint".into()));
        };
        on_progress(Progress { stage: Stage::Load("image_encoder"), done: 0, total: 1 });
        let processor = ClipImageProcessor::load(checkpoint.root().join("image_processor"))?;
        let encoder = ClipVisionEncoder::load(&checkpoint.component("image_encoder")?, DType::F32, &self.device)?;
        on_progress(Progress { stage: Stage::Load("image_encoder"), done: 1, total: 1 });
        let (_, height, width, _) = frames.dims4()?;
        let first = rgb8_frames(&frames.narrow(0, 0, 1)?)?.remove(0);
        let pixels = processor.pixel_values(&first, width, height, &self.device)?;
        Ok(encoder.penultimate_hidden_states(&pixels)?)
    }

    /// Latents -> frames (frames, height, width, 3) in [0, 1] on the CPU.
    fn decode(&self, latents: &Tensor, request: &GenerationRequest, on_progress: OnProgress) -> Result<Tensor> {
        on_progress(Progress { stage: Stage::Load("vae"), done: 0, total: 1 });
        // The VAE decodes in f32 whatever the pipeline's dtype, as Wan's own examples load it.
        let vae = self.load_vae()?;
        on_progress(Progress { stage: Stage::Load("vae"), done: 1, total: 1 });
        let tiling = match request.vae_tiling {
            VaeTiling::On => Some(Tiling::default()),
            VaeTiling::Off => None,
            VaeTiling::Auto => (request.height * request.width > AUTO_TILING_PIXELS).then(Tiling::default),
        };
        let latents = vae.denormalize(&latents.to_dtype(DType::F32)?)?;
        let video = vae.decode_with_progress(&latents, tiling, &mut |done, total| {
            on_progress(Progress { stage: Stage::Decode, done, total })
        })?;
        // (1, 3, frames, height, width) in [-1, 1] -> (frames, height, width, 3) in [0, 1].
        let video = ((video.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
        Ok(video.squeeze(0)?.permute((1, 2, 3, 0))?.contiguous()?.to_device(&Device::Cpu)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask's channels of each latent frame, as (latent frame, channel) rows.
    fn mask_rows(given: usize, latent_frames: usize) -> Vec<Vec<f32>> {
        let latents = Tensor::zeros((1, 4, latent_frames, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let mask = given_frames_mask(given, &latents, 4).unwrap();
        assert_eq!(mask.dims(), &[1, 4, latent_frames, 2, 3]);
        let mask = mask.get(0).unwrap().narrow(2, 1, 1).unwrap().narrow(3, 2, 1).unwrap().squeeze(3).unwrap().squeeze(2).unwrap();
        mask.t().unwrap().to_vec2::<f32>().unwrap()
    }

    #[test]
    fn the_given_frames_mask_marks_the_frames_each_latent_frame_stands_for() {
        // An image: the first latent frame, all four channels (the first frame stands for all of them).
        assert_eq!(mask_rows(1, 3), vec![vec![1.0; 4], vec![0.0; 4], vec![0.0; 4]]);
        // The end of a clip, 1 + 4 frames: the first two latent frames.
        assert_eq!(mask_rows(5, 3), vec![vec![1.0; 4], vec![1.0; 4], vec![0.0; 4]]);
        // 1 + 8 frames of 4 latent frames.
        assert_eq!(mask_rows(9, 4), vec![vec![1.0; 4], vec![1.0; 4], vec![1.0; 4], vec![0.0; 4]]);
    }
}
