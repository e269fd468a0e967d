//! The published Wan text-to-video checkpoints, known by name without their weights: for
//! benchmarks, estimates and `reel models`.

use super::config::WanTransformerConfig;
use super::geometry::LatentGeometry;

#[derive(Debug, Clone)]
pub struct PublishedModel {
    /// The name `reel models` lists.
    pub name: &'static str,
    /// The diffusers-layout repository on the Hugging Face hub.
    pub repo_id: &'static str,
    pub transformer: WanTransformerConfig,
    /// Two for Wan2.2-T2V-A14B (a high-noise and a low-noise expert of the same configuration).
    pub experts: usize,
    pub latents: LatentGeometry,
}

fn transformer(heads: usize, ffn_dim: usize, layers: usize, channels: usize) -> WanTransformerConfig {
    let mut config: WanTransformerConfig = serde_json::from_str("{}").expect("defaults deserialize");
    config.num_attention_heads = heads;
    config.ffn_dim = ffn_dim;
    config.num_layers = layers;
    config.in_channels = channels;
    config.out_channels = Some(channels);
    config
}

const WAN21_LATENTS: LatentGeometry = LatentGeometry { channels: 16, temporal: 4, spatial: 8, patch: (1, 2, 2) };
const WAN22_LATENTS: LatentGeometry = LatentGeometry { channels: 48, temporal: 4, spatial: 16, patch: (1, 2, 2) };

pub fn published_models() -> Vec<PublishedModel> {
    vec![
        PublishedModel {
            name: "wan2.1-t2v-1.3b",
            repo_id: "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            transformer: transformer(12, 8960, 30, 16),
            experts: 1,
            latents: WAN21_LATENTS,
        },
        PublishedModel {
            name: "wan2.1-t2v-14b",
            repo_id: "Wan-AI/Wan2.1-T2V-14B-Diffusers",
            transformer: transformer(40, 13824, 40, 16),
            experts: 1,
            latents: WAN21_LATENTS,
        },
        PublishedModel {
            name: "wan2.2-ti2v-5b",
            repo_id: "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            transformer: transformer(24, 14336, 30, 48),
            experts: 1,
            latents: WAN22_LATENTS,
        },
        PublishedModel {
            name: "wan2.2-t2v-a14b",
            repo_id: "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            transformer: transformer(40, 13824, 40, 16),
            experts: 2,
            latents: WAN21_LATENTS,
        },
    ]
}

pub fn published_model(name: &str) -> Option<PublishedModel> {
    published_models().into_iter().find(|m| m.name == name)
}
