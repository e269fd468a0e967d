//! The denoising loop of diffusers' `WanPipeline.__call__` (pipelines/wan/pipeline_wan.py): for each
//! timestep, pick the expert, evaluate the transformer with and without the prompt, combine them
//! with classifier-free guidance, and step the scheduler.

use candle_core::{DType, Device, Tensor};
use reel_models::wan::{PreparedPrompt, WanTransformer};
use reel_models::nn::linear::{with_quantization, Quantization};
use reel_models::weights::ComponentFolder;

use crate::progress::{OnProgress, Progress, Stage};
use crate::scheduler::Scheduler;
use crate::step_cache::{DenoiseStats, StepCache, StepCacheSettings};
use crate::{Result, SamplingError};

/// Builds a transformer when the denoiser first needs it.
pub type TransformerLoader = Box<dyn Fn() -> reel_models::Result<WanTransformer> + Send>;

/// One transformer of the denoiser, either in memory or built when first needed (and dropped again
/// when the sampler moves on to the next expert, so two experts never occupy memory together).
pub struct Expert {
    model: Option<WanTransformer>,
    loader: Option<TransformerLoader>,
    name: &'static str,
}

impl Expert {
    pub fn loaded(model: WanTransformer) -> Self {
        Self { model: Some(model), loader: None, name: "transformer" }
    }

    /// Built by `loader` (named `name` in progress reports) at its first step.
    pub fn deferred(name: &'static str, loader: TransformerLoader) -> Self {
        Self { model: None, loader: Some(loader), name }
    }

    /// Loaded from a checkpoint folder at its first step.
    pub fn on_disk(folder: ComponentFolder, dtype: DType, device: &Device, name: &'static str) -> Self {
        Self::on_disk_quantized(folder, dtype, device, name, None)
    }

    /// Loaded from a checkpoint folder at its first step, its linear layers quantized as asked.
    pub fn on_disk_quantized(folder: ComponentFolder, dtype: DType, device: &Device, name: &'static str, quantization: Option<Quantization>) -> Self {
        let device = device.clone();
        Self::deferred(name, Box::new(move || with_quantization(quantization, || WanTransformer::load(&folder, dtype, &device))))
    }

    fn get(&mut self, on_progress: &mut dyn FnMut(Progress)) -> Result<&WanTransformer> {
        if self.model.is_none() {
            let loader = self.loader.as_ref().expect("an expert has a model or a loader");
            on_progress(Progress { stage: Stage::Load(self.name), done: 0, total: 1 });
            self.model = Some(loader()?);
            on_progress(Progress { stage: Stage::Load(self.name), done: 1, total: 1 });
        }
        Ok(self.model.as_ref().expect("just loaded"))
    }

    /// Frees the model's memory when it can be built again.
    fn release(&mut self) {
        if self.loader.is_some() {
            self.model = None;
        }
    }
}

/// Guidance scales: `scale` for the (high-noise) transformer, `scale_2` for the low-noise expert
/// (defaults to `scale`). Guidance is applied when `scale > 1`, as in the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guidance {
    pub scale: f64,
    pub scale_2: Option<f64>,
}

impl Guidance {
    pub fn enabled(&self) -> bool {
        self.scale > 1.0
    }
}

/// The transformer(s) that denoise: one, or Wan 2.2 A14B's two experts, the first for timesteps at
/// or above `boundary_ratio * num_train_timesteps` and the second below.
pub struct Denoiser {
    experts: Vec<Expert>,
    boundary_ratio: Option<f64>,
    /// Wan 2.2 TI2V gives the transformer one timestep per latent token.
    expand_timesteps: bool,
    step_cache: Option<StepCacheSettings>,
    /// Normalised latents of the first latent frames, given rather than denoised (see [`Self::with_given_frames`]).
    given: Option<Tensor>,
    /// Channels joined to the latents at every evaluation (see [`Self::with_frame_channels`]).
    frame_channels: Option<Tensor>,
    /// CLIP tokens of the image the video starts from (see [`Self::with_image_tokens`]).
    image_tokens: Option<Tensor>,
    /// Evaluations of the last [`Self::denoise`].
    stats: DenoiseStats,
}

impl Denoiser {
    pub fn single(expert: Expert) -> Self {
        Self {
            experts: vec![expert],
            boundary_ratio: None,
            expand_timesteps: false,
            step_cache: None,
            given: None,
            frame_channels: None,
            image_tokens: None,
            stats: DenoiseStats::default(),
        }
    }

    pub fn two_experts(high_noise: Expert, low_noise: Expert, boundary_ratio: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&boundary_ratio) {
            return Err(SamplingError::Config(format!(
                "boundary_ratio must lie in [0, 1], found {boundary_ratio}"
            )));
        }
        let mut denoiser = Self::single(high_noise);
        denoiser.experts.push(low_noise);
        denoiser.boundary_ratio = Some(boundary_ratio);
        Ok(denoiser)
    }

    pub fn with_expand_timesteps(mut self, expand: bool) -> Self {
        self.expand_timesteps = expand;
        self
    }

    /// Starts the video from given latent frames (batch, channels, k, height, width), normalised, as
    /// diffusers' `WanImageToVideoPipeline` does for Wan 2.2 TI2V (`expand_timesteps`): before every
    /// evaluation the first k latent frames are replaced by them and their tokens get timestep 0, and
    /// the result keeps them. One frame is an image; more continue a clip.
    pub fn with_given_frames(mut self, given: Option<Tensor>) -> Self {
        self.given = given;
        self
    }

    /// Joins `channels` (batch, mask + latent channels, frames, height, width) to the latents before
    /// every evaluation, as diffusers' `WanImageToVideoPipeline` does for Wan 2.1 I2V and Wan 2.2
    /// I2V-A14B: a mask of the given frames and the VAE's encoding of them followed by empty frames.
    pub fn with_frame_channels(mut self, channels: Option<Tensor>) -> Self {
        self.frame_channels = channels;
        self
    }

    /// CLIP tokens (batch, tokens, width) of the image the video starts from, for transformers with
    /// an image branch (Wan 2.1 I2V); both the prompt's and the negative prompt's evaluations see them.
    pub fn with_image_tokens(mut self, tokens: Option<Tensor>) -> Self {
        self.image_tokens = tokens;
        self
    }

    /// Reuses predictions between steps (see [`crate::step_cache`]); off when `None`.
    pub fn with_step_cache(mut self, settings: Option<StepCacheSettings>) -> Self {
        self.step_cache = settings;
        self
    }

    /// Computed and reused steps of the last [`Self::denoise`].
    pub fn stats(&self) -> DenoiseStats {
        self.stats
    }

    fn expert_index(&self, timestep: f32, num_train_timesteps: usize) -> usize {
        match self.boundary_ratio {
            Some(ratio) if (timestep as f64) < ratio * num_train_timesteps as f64 => 1,
            _ => 0,
        }
    }


    /// Runs every step of `scheduler` from `latents` (f32, batch x channels x frames x height x
    /// width); `uncond` is required when guidance is enabled. Returns the denoised latents.
    pub fn denoise(
        &mut self,
        scheduler: &mut dyn Scheduler,
        latents: Tensor,
        cond: &Tensor,
        uncond: Option<&Tensor>,
        guidance: Guidance,
        on_progress: OnProgress,
    ) -> Result<Tensor> {
        if guidance.scale_2.is_some() && self.boundary_ratio.is_none() {
            return Err(SamplingError::InvalidInput(
                "a second guidance scale applies only to two-expert models (Wan2.2 A14B)".into(),
            ));
        }
        let uncond = match (guidance.enabled(), uncond) {
            (true, None) => {
                return Err(SamplingError::InvalidInput(
                    "guidance scale > 1 needs negative prompt embeddings".into(),
                ))
            }
            (true, Some(u)) => Some(u),
            (false, _) => None,
        };
        if let Some(given) = &self.given {
            if !self.expand_timesteps {
                return Err(SamplingError::InvalidInput(
                    "this model cannot start from given frames: that needs per-token timesteps (expand_timesteps, as \
                     Wan2.2-TI2V-5B and reel's demo model have)"
                        .into(),
                ));
            }
            let (b, c, f, h, w) = latents.dims5()?;
            let (gb, gc, gf, gh, gw) = given.dims5()?;
            if (gb, gc, gh, gw) != (b, c, h, w) || gf >= f {
                return Err(SamplingError::InvalidInput(format!(
                    "given latent frames {:?} do not fit latents {:?}: same batch, channels and size, fewer frames",
                    given.dims(),
                    latents.dims()
                )));
            }
        }
        if let Some(channels) = &self.frame_channels {
            let (b, _, f, h, w) = latents.dims5()?;
            let (cb, _, cf, ch, cw) = channels.dims5()?;
            if (cb, cf, ch, cw) != (b, f, h, w) {
                return Err(SamplingError::InvalidInput(format!(
                    "frame channels {:?} do not fit latents {:?}: same batch, frames and size",
                    channels.dims(),
                    latents.dims()
                )));
            }
        }
        let timesteps = scheduler.timesteps().to_vec();
        let train = scheduler.num_train_timesteps();
        let mut latents = latents;
        let mut current: Option<usize> = None;
        // The current expert's cross-attention keys and values for the prompt and the negative
        // prompt: computed once per expert, not at every step.
        let mut prompts: Option<(PreparedPrompt, Option<PreparedPrompt>)> = None;
        let mut cache = self.step_cache.map(StepCache::new);
        let mut computed_steps = 0;
        for (i, &t) in timesteps.iter().enumerate() {
            let index = self.expert_index(t, train);
            if let Some(previous) = current.filter(|p| *p != index) {
                self.experts[previous].release();
                prompts = None;
                // The other expert's transformation is not this one's.
                cache = self.step_cache.map(StepCache::new);
            }
            if let Some(reused) = cache.as_mut().map(|c| c.reuse(&latents, i, timesteps.len())).transpose()?.flatten() {
                latents = scheduler.step(&reused, &latents)?;
                on_progress(Progress { stage: Stage::Denoise, done: i + 1, total: timesteps.len() });
                continue;
            }
            computed_steps += 1;
            current = Some(index);
            let scale = if index == 0 { guidance.scale } else { guidance.scale_2.unwrap_or(guidance.scale) };

            let expand = self.expand_timesteps;
            let given = self.given.as_ref();
            let model = self.experts[index].get(on_progress)?;
            let mut input = with_given_frames(&latents, given)?;
            if let Some(channels) = &self.frame_channels {
                input = Tensor::cat(&[&input, &channels.to_dtype(input.dtype())?], 1)?;
            }
            let input = input.to_dtype(model.dtype())?;
            let timestep = timestep_tensor(t, &input, model, expand, given.map_or(0, |g| g.dim(2).unwrap_or(0)))?;
            if prompts.is_none() {
                let image = self.image_tokens.as_ref();
                prompts = Some((model.prepare_prompt(cond, image)?, uncond.map(|u| model.prepare_prompt(u, image)).transpose()?));
            }
            let (cond_prompt, uncond_prompt) = prompts.as_ref().expect("prepared above");
            let mut prediction = model.forward_prepared(&input, &timestep, cond_prompt)?;
            if let Some(uncond_prompt) = uncond_prompt {
                let unconditional = model.forward_prepared(&input, &timestep, uncond_prompt)?;
                prediction = (&unconditional + ((prediction - &unconditional)? * scale)?)?;
            }
            if let Some(cache) = cache.as_mut() {
                cache.record(&latents, &prediction.to_dtype(latents.dtype())?)?;
            }
            latents = scheduler.step(&prediction, &latents)?;
            on_progress(Progress { stage: Stage::Denoise, done: i + 1, total: timesteps.len() });
        }
        let latents = with_given_frames(&latents, self.given.as_ref())?;
        self.stats = DenoiseStats { computed_steps, reused_steps: timesteps.len() - computed_steps };
        // The decoder comes next: free the transformer's memory for it.
        for expert in &mut self.experts {
            expert.release();
        }
        Ok(latents)
    }
}

/// `latents` with their first frames replaced by `given` (when there are any).
fn with_given_frames(latents: &Tensor, given: Option<&Tensor>) -> Result<Tensor> {
    let Some(given) = given else { return Ok(latents.clone()) };
    let k = given.dim(2)?;
    let rest = latents.narrow(2, k, latents.dim(2)? - k)?;
    Ok(Tensor::cat(&[&given.to_dtype(latents.dtype())?, &rest], 2)?)
}

/// The timestep tensor for one evaluation: (batch) or, with `expand`, (batch, tokens), where the
/// tokens of the first `given` latent frames are at timestep 0 (they are clean).
fn timestep_tensor(t: f32, latents: &Tensor, model: &WanTransformer, expand: bool, given: usize) -> Result<Tensor> {
    let (batch, _, frames, height, width) = latents.dims5()?;
    let (pt, ph, pw) = model.config().patch();
    if !expand {
        return Ok(Tensor::full(t, batch, latents.device())?);
    }
    let per_frame = (height / ph) * (width / pw);
    let values: Vec<f32> = (0..frames / pt).flat_map(|f| std::iter::repeat_n(if f * pt < given { 0.0 } else { t }, per_frame)).collect();
    let tokens = values.len();
    Ok(Tensor::from_vec(values, (1, tokens), latents.device())?.repeat((batch, 1))?)
}
