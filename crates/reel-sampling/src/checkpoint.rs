//! A whole Wan checkpoint in the diffusers layout: `model_index.json` and one folder per component
//! (`transformer/`, optional `transformer_2/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`;
//! image-to-video checkpoints whose transformer takes CLIP tokens add `image_encoder/` and
//! `image_processor/`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use reel_models::device::DtypeChoice;
use reel_models::hub::{self, HubSettings};
use reel_models::wan::{LatentGeometry, WanTransformerConfig, WanVaeConfig};
use reel_models::weights::{read_json, ComponentFolder};
use serde::Deserialize;

use crate::pipeline::{GenerationRequest, DEFAULT_FPS};
use crate::scheduler::SchedulerConfig;
use crate::{Result, SamplingError};

/// The `model_index.json` fields the pipeline uses.
#[derive(Debug, Clone, Deserialize)]
struct ModelIndex {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
    #[serde(default)]
    boundary_ratio: Option<f64>,
    #[serde(default)]
    expand_timesteps: bool,
    #[serde(default)]
    transformer_2: Option<serde_json::Value>,
    #[serde(default)]
    image_encoder: Option<serde_json::Value>,
}

const REQUIRED: [&str; 5] = ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"];
/// The CLIP vision encoder and its image processor of Wan 2.1 image-to-video checkpoints.
const CLIP_COMPONENTS: [&str; 2] = ["image_encoder", "image_processor"];
/// The pipelines whose checkpoints reel runs.
const PIPELINE_CLASSES: [&str; 2] = ["WanPipeline", "WanImageToVideoPipeline"];

/// How a model starts a video from given frames (an image, or the end of a clip to continue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameConditioning {
    /// It cannot: a text-to-video model.
    None,
    /// The frames' latents replace the first latent frames, whose tokens get timestep 0 (Wan 2.2
    /// TI2V, reel's demo model: `expand_timesteps`).
    PerTokenTimesteps,
    /// A mask of the given frames and the VAE's encoding of them (followed by empty frames) are
    /// joined to the latents as extra input channels (Wan 2.1 I2V, Wan 2.2 I2V-A14B); `clip`: the
    /// transformer also attends to CLIP tokens of the first given frame (Wan 2.1 I2V).
    Channels { clip: bool },
}

impl FrameConditioning {
    /// From the configs: a transformer input wider than the latents by a mask (one channel per frame
    /// of a latent frame) and the encoded frames means conditioning by channels.
    pub fn of(expand_timesteps: bool, transformer: &WanTransformerConfig, latent_channels: usize, temporal: usize) -> Self {
        if expand_timesteps {
            Self::PerTokenTimesteps
        } else if transformer.in_channels == 2 * latent_channels + temporal {
            Self::Channels { clip: transformer.image_dim.is_some() }
        } else {
            Self::None
        }
    }
}

/// Whether a file of a hub repository belongs to what the pipeline reads: the model index, and
/// the configs, safetensors weights and tokenizer files of its components (not `.bin` or `.pth`
/// duplicates, examples or images).
pub fn is_checkpoint_file(path: &str) -> bool {
    if path == "model_index.json" {
        return true;
    }
    let Some((component, file)) = path.split_once('/') else { return false };
    let known = REQUIRED.contains(&component) || CLIP_COMPONENTS.contains(&component) || component == "transformer_2";
    let useful = file.ends_with(".json") || file.ends_with(".safetensors") || file.ends_with(".model");
    known && !file.contains('/') && useful
}

/// `reel.json` at a checkpoint's root: the settings `reel generate` uses when the user gives none
/// (reel's own models carry one; published Wan checkpoints do not, and get WanPipeline's defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GenerationDefaults {
    pub frames: Option<usize>,
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub fps: Option<f64>,
    pub steps: Option<usize>,
    pub guidance: Option<f64>,
    pub max_sequence_length: Option<usize>,
}

/// A model's settings with every gap filled by WanPipeline's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedDefaults {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub fps: f64,
    pub steps: usize,
    pub guidance: f64,
    pub max_sequence_length: usize,
}

impl GenerationDefaults {
    pub fn resolved(&self) -> ResolvedDefaults {
        let wan = GenerationRequest::new("");
        ResolvedDefaults {
            frames: self.frames.unwrap_or(wan.frames),
            height: self.height.unwrap_or(wan.height),
            width: self.width.unwrap_or(wan.width),
            fps: self.fps.unwrap_or(DEFAULT_FPS),
            steps: self.steps.unwrap_or(wan.steps),
            guidance: self.guidance.unwrap_or(wan.guidance),
            max_sequence_length: self.max_sequence_length.unwrap_or(wan.max_sequence_length),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WanCheckpoint {
    root: PathBuf,
    index: ModelIndex,
}

impl WanCheckpoint {
    /// A checkpoint given as a local folder or a hub repository id (found in or downloaded to the
    /// Hugging Face cache; see [`reel_models::hub`]).
    pub fn resolve(reference: &str, settings: &HubSettings) -> Result<Self> {
        let root = hub::resolve(reference, settings, is_checkpoint_file, |dir| Self::open(dir).is_ok())?;
        Self::open(root)
    }

    /// Opens a checkpoint folder, checking that every component the pipeline needs is there.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let index_path = root.join("model_index.json");
        if !index_path.is_file() {
            return Err(SamplingError::Config(format!(
                "{} has no model_index.json: --model needs a whole checkpoint in the diffusers \
                 layout (such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers), not a single component folder",
                root.display()
            )));
        }
        let index: ModelIndex = read_json(&index_path, "model index")?;
        if let Some(class) = index.class_name.as_deref().filter(|c| !PIPELINE_CLASSES.contains(c)) {
            return Err(SamplingError::Config(format!(
                "{} describes a {class}; reel runs the checkpoints of {}",
                index_path.display(),
                PIPELINE_CLASSES.join(" and ")
            )));
        }
        let two_experts = index.transformer_2.as_ref().is_some_and(|v| !v.is_null() && v[0].is_string());
        let mut needed: Vec<&str> = REQUIRED.to_vec();
        if two_experts {
            needed.push("transformer_2");
        }
        if index.image_encoder.as_ref().is_some_and(|v| v[0].is_string()) {
            needed.extend(CLIP_COMPONENTS);
        }
        let missing: Vec<&str> = needed.into_iter().filter(|c| !root.join(c).is_dir()).collect();
        if !missing.is_empty() {
            return Err(SamplingError::Config(format!(
                "the checkpoint {} lacks the folder(s) {}: the download is incomplete, fetch it again",
                root.display(),
                missing.join(", ")
            )));
        }
        if two_experts && index.boundary_ratio.is_none() {
            return Err(SamplingError::Config(format!(
                "{} has two transformers but no boundary_ratio to switch between them",
                index_path.display()
            )));
        }
        Ok(Self { root, index })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn component(&self, name: &str) -> Result<ComponentFolder> {
        Ok(ComponentFolder::open(self.root.join(name))?)
    }

    /// `--dtype` for this checkpoint on `device`: `auto` ([`DtypeChoice::resolve`]) weighs the
    /// largest component whose weights take that dtype (the text encoder or a transformer; one is in
    /// memory at a time), counted from the files' headers. A transformer given as a GGUF file keeps
    /// its weights quantized, so with `transformer_from_gguf` only the text encoder counts.
    pub fn resolve_dtype(&self, choice: DtypeChoice, device: &Device, transformer_from_gguf: bool) -> Result<DType> {
        let DtypeChoice::Auto = choice else { return Ok(choice.resolve(device, 0)) };
        let mut names = vec!["text_encoder"];
        if !transformer_from_gguf {
            names.push("transformer");
            if self.has_two_experts() {
                names.push("transformer_2");
            }
        }
        let mut largest = 0;
        for name in names {
            largest = largest.max(self.component(name)?.parameter_count()?);
        }
        Ok(choice.resolve(device, largest))
    }

    pub fn has_two_experts(&self) -> bool {
        self.root.join("transformer_2").is_dir() && self.index.boundary_ratio.is_some()
    }

    pub fn boundary_ratio(&self) -> Option<f64> {
        self.index.boundary_ratio.filter(|_| self.has_two_experts())
    }

    /// Wan 2.2 TI2V gives the transformer one timestep per token.
    pub fn expand_timesteps(&self) -> bool {
        self.index.expand_timesteps
    }

    pub fn transformer_config(&self) -> Result<WanTransformerConfig> {
        Ok(self.component("transformer")?.config()?)
    }

    pub fn vae_config(&self) -> Result<WanVaeConfig> {
        Ok(self.component("vae")?.config()?)
    }

    pub fn scheduler_config(&self) -> Result<SchedulerConfig> {
        SchedulerConfig::from_file(&self.root.join("scheduler/scheduler_config.json"))
    }

    /// The checkpoint's `reel.json`, or no defaults when it has none.
    pub fn generation_defaults(&self) -> Result<GenerationDefaults> {
        let path = self.root.join("reel.json");
        if !path.is_file() {
            return Ok(GenerationDefaults::default());
        }
        Ok(read_json(&path, "reel generation defaults")?)
    }

    pub fn tokenizer_dir(&self) -> PathBuf {
        self.root.join("tokenizer")
    }

    /// How this model starts from given frames.
    pub fn frame_conditioning(&self) -> Result<FrameConditioning> {
        let geometry = self.geometry()?;
        Ok(FrameConditioning::of(self.expand_timesteps(), &self.transformer_config()?, geometry.channels, geometry.temporal))
    }

    /// How video sizes map to latent sizes for this checkpoint.
    pub fn geometry(&self) -> Result<LatentGeometry> {
        let transformer = self.transformer_config()?;
        let vae = self.vae_config()?;
        // Image-to-video transformers also take a mask and the encoded frames as input channels.
        let conditioned = 2 * vae.z_dim + vae.scale_factor_temporal;
        if transformer.in_channels != vae.z_dim && transformer.in_channels != conditioned {
            return Err(SamplingError::Config(format!(
                "{}: the VAE has {} latent channels but the transformer expects {} (the latents', or {conditioned} \
                 for an image-to-video model)",
                self.root.display(),
                vae.z_dim,
                transformer.in_channels
            )));
        }
        if transformer.out_channels() != vae.z_dim {
            return Err(SamplingError::Config(format!(
                "{}: the transformer predicts {} channels but the VAE's latents have {}",
                self.root.display(),
                transformer.out_channels(),
                vae.z_dim
            )));
        }
        Ok(LatentGeometry {
            channels: vae.z_dim,
            temporal: vae.scale_factor_temporal,
            spatial: vae.scale_factor_spatial,
            patch: transformer.patch(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_checkpoint_file;

    #[test]
    fn only_the_files_the_pipeline_reads_are_downloaded() {
        for wanted in ["model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json", "tokenizer/tokenizer.json", "tokenizer/spiece.model",
            "scheduler/scheduler_config.json", "transformer_2/config.json", "vae/diffusion_pytorch_model.safetensors",
            "image_encoder/model.safetensors", "image_processor/preprocessor_config.json"] {
            assert!(is_checkpoint_file(wanted), "{wanted}");
        }
        for unwanted in ["README.md", "assets/teaser.png", "text_encoder/pytorch_model.bin", ".gitattributes",
            "vae/sub/extra.json", "examples/config.json"] {
            assert!(!is_checkpoint_file(unwanted), "{unwanted}");
        }
    }
}
