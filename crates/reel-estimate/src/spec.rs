//! What the estimator needs to know about a model: its components' configurations and its
//! default settings, from a published configuration or a checkpoint folder.

use std::path::Path;

use reel_models::umt5::Umt5Config;
use reel_models::wan::{published_model, published_models, LatentGeometry, WanTransformerConfig, WanVaeConfig};
use reel_sampling::checkpoint::{GenerationDefaults, ResolvedDefaults, WanCheckpoint};

use crate::{EstimateError, Result};

#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The name it was asked by.
    pub name: String,
    pub transformer: WanTransformerConfig,
    /// Two for Wan2.2-T2V-A14B: experts of the same size that take turns (one in memory at a time).
    pub experts: usize,
    pub latents: LatentGeometry,
    pub text_encoder: Umt5Config,
    pub vae: WanVaeConfig,
    /// Prompt tokens the text encoder runs on (Wan pads every prompt to 512).
    pub text_tokens: usize,
    /// Settings an estimate takes when the user gives none: the model's own (reel.json), else
    /// WanPipeline's.
    pub defaults: ResolvedDefaults,
}

impl ModelSpec {
    /// A published configuration by the name `reel models` lists.
    pub fn published(name: &str) -> Result<Self> {
        let model = published_model(name).ok_or_else(|| {
            let names: Vec<&str> = published_models().iter().map(|m| m.name).collect();
            EstimateError::Input(format!("unknown model '{name}': give a checkpoint folder, a hub id `reel models` lists, or one of demo, {}", names.join(", ")))
        })?;
        Ok(Self {
            name: name.to_string(),
            transformer: model.transformer,
            experts: model.experts,
            latents: model.latents,
            text_encoder: model.text_encoder,
            vae: model.vae,
            text_tokens: reel_sampling::prompt::DEFAULT_MAX_SEQUENCE_LENGTH,
            defaults: GenerationDefaults::default().resolved(),
        })
    }

    /// Weights of the larger of the text encoder and one transformer, the components whose weights
    /// take the compute dtype: what `--dtype auto` weighs against memory.
    pub fn largest_component_parameters(&self) -> u64 {
        let encoder = crate::cost::text_encoder(&self.text_encoder, 1).parameters;
        let transformer = crate::cost::transformer_forward(&self.transformer, 1, 1).parameters;
        encoder.max(transformer) as u64
    }

    /// A checkpoint folder in the diffusers layout (only its configuration files are read).
    pub fn checkpoint(name: &str, dir: &Path) -> Result<Self> {
        let checkpoint = WanCheckpoint::open(dir)?;
        let config_path = dir.join("text_encoder/config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| EstimateError::Input(format!("cannot read {}: {e}", config_path.display())))?;
        let text_encoder: Umt5Config = serde_json::from_str(&text)
            .map_err(|e| EstimateError::Input(format!("{} is not a UMT5 configuration: {e}", config_path.display())))?;
        let defaults = checkpoint.generation_defaults()?.resolved();
        Ok(Self {
            name: name.to_string(),
            transformer: checkpoint.transformer_config()?,
            experts: if checkpoint.has_two_experts() { 2 } else { 1 },
            latents: checkpoint.geometry()?,
            text_encoder,
            vae: checkpoint.vae_config()?,
            text_tokens: defaults.max_sequence_length,
            defaults,
        })
    }
}
