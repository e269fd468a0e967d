//! The published Wan text-to-video checkpoints, known by name without their weights: for
//! benchmarks, estimates and `reel models`.

use super::config::{WanTransformerConfig, WanVaeConfig};
use super::geometry::LatentGeometry;
use crate::umt5::Umt5Config;

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
    /// UMT5-XXL, the text encoder of every Wan checkpoint.
    pub text_encoder: Umt5Config,
    pub vae: WanVaeConfig,
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

/// UMT5-XXL as Wan's `text_encoder/config.json` describes it.
fn umt5_xxl() -> Umt5Config {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24,
        "num_heads": 64, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu"
    }))
    .expect("a valid UMT5 config")
}

/// Wan 2.1's VAE (the reference's defaults).
fn vae_21() -> WanVaeConfig {
    serde_json::from_str("{}").expect("defaults deserialize")
}

/// Wan 2.2's VAE layout. Its 48 normalisation statistics are not needed without weights and are
/// set to 0 and 1 here: a checkpoint's own config.json always provides them.
fn vae_22() -> WanVaeConfig {
    serde_json::from_value(serde_json::json!({
        "base_dim": 160, "decoder_base_dim": 256, "z_dim": 48, "is_residual": true,
        "in_channels": 12, "out_channels": 12, "patch_size": 2, "scale_factor_spatial": 16,
        "latents_mean": vec![0.0; 48], "latents_std": vec![1.0; 48]
    }))
    .expect("a valid VAE config")
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
            text_encoder: umt5_xxl(),
            vae: vae_21(),
        },
        PublishedModel {
            name: "wan2.1-t2v-14b",
            repo_id: "Wan-AI/Wan2.1-T2V-14B-Diffusers",
            transformer: transformer(40, 13824, 40, 16),
            experts: 1,
            latents: WAN21_LATENTS,
            text_encoder: umt5_xxl(),
            vae: vae_21(),
        },
        PublishedModel {
            name: "wan2.2-ti2v-5b",
            repo_id: "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            transformer: transformer(24, 14336, 30, 48),
            experts: 1,
            latents: WAN22_LATENTS,
            text_encoder: umt5_xxl(),
            vae: vae_22(),
        },
        PublishedModel {
            name: "wan2.2-t2v-a14b",
            repo_id: "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            transformer: transformer(40, 13824, 40, 16),
            experts: 2,
            latents: WAN21_LATENTS,
            text_encoder: umt5_xxl(),
            vae: vae_21(),
        },
    ]
}

/// A published model by the name `reel models` lists or by its hub repository id, in any case and
/// with or without `-Diffusers` (the original-layout repository holds the same model).
pub fn published_model(name: &str) -> Option<PublishedModel> {
    let key = |name: &str| {
        let lower = name.to_ascii_lowercase();
        lower.strip_suffix("-diffusers").map(str::to_string).unwrap_or(lower)
    };
    let wanted = key(name);
    published_models().into_iter().find(|m| m.name == wanted || key(m.repo_id) == wanted)
}

#[cfg(test)]
mod tests {
    use super::published_model;

    #[test]
    fn a_published_model_is_found_by_its_name_or_its_hub_repository_id() {
        for name in ["wan2.1-t2v-14b", "Wan-AI/Wan2.1-T2V-14B-Diffusers", "Wan-AI/Wan2.1-T2V-14B", "WAN2.1-T2V-14B"] {
            assert_eq!(published_model(name).map(|m| m.name), Some("wan2.1-t2v-14b"), "{name}");
        }
        assert_eq!(published_model("Wan-AI/Wan2.2-TI2V-5B").map(|m| m.name), Some("wan2.2-ti2v-5b"));
        for unknown in ["Wan-AI/Wan2.1-T2V", "wan2.1-t2v-14b-extra", ""] {
            assert!(published_model(unknown).is_none(), "{unknown}");
        }
    }
}
