//! `config.json` of transformers' `CLIPVisionModel` (also written by `CLIPVisionModelWithProjection`, whose
//! extra `projection_dim` is not needed here), with the reference's field names and defaults.

use serde::Deserialize;

use crate::weights::ComponentFolder;
use crate::{ModelError, Result};

fn default_hidden() -> usize {
    768
}
fn default_intermediate() -> usize {
    3072
}
fn default_layers() -> usize {
    12
}
fn default_heads() -> usize {
    12
}
fn default_channels() -> usize {
    3
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    32
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default = "default_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

/// The MLP activations CLIP checkpoints use: OpenAI's CLIPs were trained with QuickGELU, open-clip's
/// (Wan's ViT-H/14 among them) with the exact GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: x·Φ(x) with the error function.
    GeluErf,
    /// `quick_gelu`: x·sigmoid(1.702·x).
    QuickGelu,
}

impl ClipVisionConfig {
    /// Reads `config.json` of `folder` and checks what the encoder relies on, naming the file in errors.
    pub fn read(folder: &ComponentFolder) -> Result<Self> {
        let config: Self = folder.config()?;
        let path = folder.dir().join("config.json");
        config.activation().map_err(|e| ModelError::Unsupported(format!("{}: {e}", path.display())))?;
        let whole = |n: usize, d: usize| d > 0 && n.is_multiple_of(d);
        if !whole(config.hidden_size, config.num_attention_heads) || !whole(config.image_size, config.patch_size)
            || config.num_hidden_layers == 0
        {
            return Err(ModelError::Checkpoint(format!(
                "{}: hidden_size {} must be a multiple of num_attention_heads {}, image_size {} of patch_size {}, and \
                 num_hidden_layers ({}) at least 1 for a penultimate hidden state to exist",
                path.display(),
                config.hidden_size,
                config.num_attention_heads,
                config.image_size,
                config.patch_size,
                config.num_hidden_layers
            )));
        }
        Ok(config)
    }

    /// The activation named by `hidden_act`.
    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::GeluErf),
            "quick_gelu" => Ok(Activation::QuickGelu),
            other => Err(ModelError::Unsupported(format!(
                "CLIP vision hidden_act {other:?} is not supported: reel implements \"gelu\" (exact) and \"quick_gelu\", \
                 the activations CLIP checkpoints use"
            ))),
        }
    }

    /// Patches per image side; the encoder's sequence is their square plus the class token.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}
