//! Rendering one shot: the [`ShotRenderer`] seam (the Wan pipeline in production, a counting fake
//! in tests) and what a shot asks of it.

use std::path::Path;

use candle_core::Device;
use reel_models::device::DtypeChoice;
use reel_models::hub::HubSettings;
use reel_sampling::checkpoint::{GenerationDefaults, WanCheckpoint};
use candle_core::Tensor;
use reel_sampling::pipeline::{rgb8_frames, GenerationRequest, WanPipeline};
use reel_sampling::windows::{generate_windows, WindowPlan};
use reel_sampling::progress::OnProgress;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::continuation::DEFAULT_OVERLAP;
use crate::{FilmError, Result};

/// The storyboard's name for the bundled demo model.
pub const BUNDLED_MODEL: &str = "demo";

/// Everything that decides a shot's pixels. Its hash, with the model's, keys the shot cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotRequest {
    /// The prompt with the camera phrase appended.
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    /// Frames to generate: at least the shot's, in a count the model can make.
    pub frames: usize,
    pub steps: usize,
    pub guidance: f64,
    pub seed: u64,
}

impl ShotRequest {
    /// The pipeline's request for these frames; the prompt is cut at `max_sequence_length` tokens
    /// when the model sets it (the pipeline's default otherwise).
    pub fn generation_request(&self, max_sequence_length: Option<usize>) -> GenerationRequest {
        let mut generation = GenerationRequest::new(self.prompt.clone());
        generation.negative_prompt = self.negative_prompt.clone();
        generation.width = self.width;
        generation.height = self.height;
        generation.frames = self.frames;
        generation.steps = self.steps;
        generation.guidance = self.guidance;
        generation.seed = self.seed;
        if let Some(length) = max_sequence_length {
            generation.max_sequence_length = length;
        }
        generation
    }
}

/// Makes a shot's frames.
pub trait ShotRenderer {
    /// Identifies the model's weights and settings: a different model, a different cache entry.
    fn fingerprint(&self) -> &str;
    /// The model's own settings (size, frame rate, steps, guidance).
    fn defaults(&self) -> &GenerationDefaults;
    /// The smallest frame count the model can generate that is at least `frames`.
    fn frames_at_least(&self, frames: usize) -> usize;
    /// Checks a request without rendering it: an error for what the model cannot make (sizes),
    /// a warning for what it would make other than asked (a prompt cut to fit the text encoder).
    fn check(&self, request: &ShotRequest) -> Result<Option<String>>;
    /// `request.frames` RGB frames of `width * height * 3` bytes.
    fn render(&mut self, request: &ShotRequest, on_progress: OnProgress) -> Result<Vec<Vec<u8>>>;
}

/// Renders with the Wan pipeline.
pub struct PipelineRenderer {
    pipeline: WanPipeline,
    defaults: GenerationDefaults,
    fingerprint: String,
    temporal_compression: usize,
}

impl PipelineRenderer {
    /// Opens `model`: `demo`, a checkpoint folder or a hub id.
    /// `dtype` `auto` is resolved for it ([`WanCheckpoint::resolve_dtype`]).
    pub fn open(model: &str, dtype: DtypeChoice, device: &Device, settings: &HubSettings) -> Result<Self> {
        let checkpoint = if model == BUNDLED_MODEL {
            let dir = reel_demo::bundled::checkpoint_dir()
                .map_err(|e| FilmError::Model(format!("model: the bundled demo model is unavailable: {e}")))?;
            WanCheckpoint::open(dir)?
        } else {
            WanCheckpoint::resolve(model, settings)?
        };
        let dtype = checkpoint.resolve_dtype(dtype, device, false)?;
        let defaults = checkpoint.generation_defaults()?;
        // The compute dtype changes the pixels, so it is part of the model's identity.
        let fingerprint = format!("{}-{dtype:?}", folder_fingerprint(checkpoint.root())?);
        let temporal_compression = checkpoint.geometry()?.temporal;
        Ok(Self { pipeline: WanPipeline::new(checkpoint, dtype, device), defaults, fingerprint, temporal_compression })
    }

    fn generation_request(&self, request: &ShotRequest) -> GenerationRequest {
        request.generation_request(self.defaults.max_sequence_length)
    }
}

impl ShotRenderer for PipelineRenderer {
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn defaults(&self) -> &GenerationDefaults {
        &self.defaults
    }

    fn frames_at_least(&self, frames: usize) -> usize {
        // Causal video VAEs decode 1 + k * compression frames.
        let t = self.temporal_compression;
        1 + frames.saturating_sub(1).div_ceil(t) * t
    }

    fn check(&self, request: &ShotRequest) -> Result<Option<String>> {
        let generation = self.generation_request(request);
        self.pipeline.latent_shape(&generation)?;
        Ok(self.pipeline.dropped_tokens(&generation)?.warning(generation.max_sequence_length))
    }

    fn render(&mut self, request: &ShotRequest, on_progress: OnProgress) -> Result<Vec<Vec<u8>>> {
        let mut generation = self.generation_request(request);
        // A shot longer than one of the model's generations is made window after window (memory
        // stays that of one window) when the model can continue given frames.
        let window = self.defaults.frames.unwrap_or(request.frames);
        if request.frames > window && self.pipeline.can_start_from_frames() {
            generation.frames = window;
            let plan = WindowPlan { window, overlap: DEFAULT_OVERLAP, total: request.frames };
            let mut frames = Vec::with_capacity(request.frames);
            let mut collect = |chunk: &Tensor| -> reel_sampling::Result<()> {
                frames.extend(rgb8_frames(chunk)?);
                Ok(())
            };
            generate_windows(&self.pipeline, &generation, plan, None, &mut collect, &mut |_, _| {}, on_progress)?;
            return Ok(frames);
        }
        Ok(self.pipeline.generate(&generation, on_progress)?.rgb8()?)
    }
}

/// A hash of a checkpoint folder's file names, sizes and modification times: cheap on
/// multi-gigabyte checkpoints, and changed by any re-download or retraining.
fn folder_fingerprint(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for line in files {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    Ok(format!("{:x}", hash.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let unreadable = |e: std::io::Error| FilmError::Model(format!("cannot read the model folder {}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if meta.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            let name = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            out.push(format!("{name}\t{}\t{modified}", meta.len()));
        }
    }
    Ok(())
}
