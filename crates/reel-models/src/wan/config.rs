//! Configuration of the Wan transformer: the `config.json` diffusers writes for
//! `WanTransformer3DModel`, with the reference's field names and defaults, plus the published
//! checkpoints' configurations for benchmarks and estimates without a download.

use serde::{Deserialize, Serialize};

use crate::nn::rope::rope_split;
use crate::{ModelError, Result};

fn default_patch_size() -> Vec<usize> {
    vec![1, 2, 2]
}
fn default_heads() -> usize {
    40
}
fn default_head_dim() -> usize {
    128
}
fn default_channels() -> usize {
    16
}
fn default_out_channels() -> Option<usize> {
    Some(16)
}
fn default_text_dim() -> usize {
    4096
}
fn default_freq_dim() -> usize {
    256
}
fn default_ffn_dim() -> usize {
    13824
}
fn default_layers() -> usize {
    40
}
fn default_true() -> bool {
    true
}
fn default_qk_norm() -> Option<String> {
    Some(RMS_NORM_ACROSS_HEADS.to_string())
}
fn default_eps() -> f64 {
    1e-6
}
fn default_rope_max_seq_len() -> usize {
    1024
}

const RMS_NORM_ACROSS_HEADS: &str = "rms_norm_across_heads";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanTransformerConfig {
    #[serde(default = "default_patch_size")]
    pub patch_size: Vec<usize>,
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    /// `null` means the same as `in_channels`, as in the reference.
    #[serde(default = "default_out_channels")]
    pub out_channels: Option<usize>,
    #[serde(default = "default_text_dim")]
    pub text_dim: usize,
    #[serde(default = "default_freq_dim")]
    pub freq_dim: usize,
    #[serde(default = "default_ffn_dim")]
    pub ffn_dim: usize,
    #[serde(default = "default_layers")]
    pub num_layers: usize,
    #[serde(default = "default_true")]
    pub cross_attn_norm: bool,
    #[serde(default = "default_qk_norm")]
    pub qk_norm: Option<String>,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub image_dim: Option<usize>,
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    #[serde(default = "default_rope_max_seq_len")]
    pub rope_max_seq_len: usize,
    #[serde(default)]
    pub pos_embed_seq_len: Option<usize>,
}

impl WanTransformerConfig {
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    pub fn patch(&self) -> (usize, usize, usize) {
        (self.patch_size[0], self.patch_size[1], self.patch_size[2])
    }

    /// Rejects what this port does not implement, rather than computing something else.
    pub fn validate(&self) -> Result<()> {
        // Wan 2.1 image-to-video: CLIP tokens (image_dim wide) are embedded to the model's width and
        // attended to through the added keys and values, which therefore take that width.
        match (self.image_dim, self.added_kv_proj_dim) {
            (None, None) if self.pos_embed_seq_len.is_some() => {
                return Err(ModelError::Unsupported("pos_embed_seq_len is set but image_dim is not: positions of image tokens need an image branch".into()))
            }
            (None, None) => {}
            (Some(_), Some(added)) if added == self.inner_dim() => {}
            (image, added) => {
                return Err(ModelError::Unsupported(format!(
                    "image_dim {image:?} with added_kv_proj_dim {added:?}: an image branch needs both, and added_kv_proj_dim \
                     equal to the model's width {} (heads x head dim), as Wan2.1-I2V has",
                    self.inner_dim()
                )))
            }
        }
        if self.qk_norm.as_deref() != Some(RMS_NORM_ACROSS_HEADS) {
            return Err(ModelError::Unsupported(format!(
                "qk_norm {:?} is not supported: Wan checkpoints use \"{RMS_NORM_ACROSS_HEADS}\"",
                self.qk_norm
            )));
        }
        if self.patch_size.len() != 3 || self.patch_size.contains(&0) {
            return Err(ModelError::Unsupported(format!(
                "patch_size must hold three positive sizes (frames, height, width), found {:?}",
                self.patch_size
            )));
        }
        let (t, h, _) = rope_split(self.attention_head_dim);
        if !self.attention_head_dim.is_multiple_of(2) || !t.is_multiple_of(2) || t == 0 || h == 0 {
            return Err(ModelError::Unsupported(format!(
                "attention_head_dim {} cannot be split into the even temporal and spatial rotary \
                 parts Wan uses",
                self.attention_head_dim
            )));
        }
        if self.num_attention_heads == 0 || self.num_layers == 0 || self.freq_dim == 0 {
            return Err(ModelError::Unsupported(
                "num_attention_heads, num_layers and freq_dim must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Parameters of the transformer (for estimates and reports).
    pub fn parameter_count(&self) -> usize {
        let d = self.inner_dim();
        let (pt, ph, pw) = self.patch();
        let patch = self.in_channels * pt * ph * pw * d + d;
        let time = self.freq_dim * d + d + d * d + d + d * 6 * d + 6 * d;
        let text = self.text_dim * d + d + d * d + d;
        let attention = 4 * (d * d + d) + 2 * d;
        let block = 2 * attention
            + if self.cross_attn_norm { 2 * d } else { 0 }
            + d * self.ffn_dim + self.ffn_dim + self.ffn_dim * d + d
            + 6 * d;
        let out = d * self.out_channels() * pt * ph * pw + self.out_channels() * pt * ph * pw + 2 * d;
        // Image-to-video: the image embedder, and each block's image keys, values and key norm.
        let image = self.image_dim.map_or(0, |i| {
            2 * i + i * i + i + i * d + d + 2 * d + self.pos_embed_seq_len.unwrap_or(0) * i + self.num_layers * (2 * (d * d + d) + d)
        });
        patch + time + text + self.num_layers * block + out + image
    }
}

/// Floating-point operations of one transformer forward for one video (a multiply-add counts two).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardFlops {
    /// Linear layers: projections, feed-forward, embeddings.
    pub linear: f64,
    /// Self-attention scores and weighted sums, growing with the square of the token count.
    pub self_attention: f64,
    /// Cross-attention scores and weighted sums against the text tokens.
    pub cross_attention: f64,
}

impl ForwardFlops {
    pub fn total(&self) -> f64 {
        self.linear + self.self_attention + self.cross_attention
    }
}

impl WanTransformerConfig {
    /// FLOPs of one forward over `tokens` video tokens and `text_tokens` prompt tokens.
    pub fn forward_flops(&self, tokens: usize, text_tokens: usize) -> ForwardFlops {
        let (n, t) = (tokens as f64, text_tokens as f64);
        let d = self.inner_dim() as f64;
        let (pt, ph, pw) = self.patch();
        let patch = (pt * ph * pw) as f64;
        let layers = self.num_layers as f64;
        let per_block_linear = n * (4.0 * d * d + 2.0 * d * d + 2.0 * d * self.ffn_dim as f64) + t * 2.0 * d * d;
        let embeddings = n * self.in_channels as f64 * patch * d
            + t * (self.text_dim as f64 * d + d * d)
            + self.freq_dim as f64 * d + 7.0 * d * d
            + n * d * self.out_channels() as f64 * patch;
        ForwardFlops {
            linear: 2.0 * (layers * per_block_linear + embeddings),
            self_attention: layers * 4.0 * n * n * d,
            cross_attention: layers * 4.0 * n * t * d,
        }
    }
}

/// Configuration of the Wan VAE: the `config.json` diffusers writes for `AutoencoderKLWan`, with the
/// reference's field names and defaults (those of Wan 2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanVaeConfig {
    #[serde(default = "default_vae_base_dim")]
    pub base_dim: usize,
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    #[serde(default = "default_channels")]
    pub z_dim: usize,
    #[serde(default = "default_dim_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "default_res_blocks")]
    pub num_res_blocks: usize,
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    #[serde(default = "default_temporal_downsample")]
    pub temperal_downsample: Vec<bool>,
    #[serde(default = "default_latents_mean")]
    pub latents_mean: Vec<f64>,
    #[serde(default = "default_latents_std")]
    pub latents_std: Vec<f64>,
    #[serde(default)]
    pub is_residual: bool,
    #[serde(default = "default_rgb")]
    pub in_channels: usize,
    #[serde(default = "default_rgb")]
    pub out_channels: usize,
    #[serde(default)]
    pub patch_size: Option<usize>,
    #[serde(default = "default_scale_temporal")]
    pub scale_factor_temporal: usize,
    #[serde(default = "default_scale_spatial")]
    pub scale_factor_spatial: usize,
}

fn default_vae_base_dim() -> usize {
    96
}
fn default_dim_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_res_blocks() -> usize {
    2
}
fn default_temporal_downsample() -> Vec<bool> {
    vec![false, true, true]
}
fn default_rgb() -> usize {
    3
}
fn default_scale_temporal() -> usize {
    4
}
fn default_scale_spatial() -> usize {
    8
}
fn default_latents_mean() -> Vec<f64> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632,
        -0.1922, -0.9497, 0.2503, -0.2921,
    ]
}
fn default_latents_std() -> Vec<f64> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382,
        1.1253, 2.8251, 1.9160,
    ]
}

impl WanVaeConfig {
    pub fn decoder_base_dim(&self) -> usize {
        self.decoder_base_dim.unwrap_or(self.base_dim)
    }

    pub fn patch(&self) -> usize {
        self.patch_size.unwrap_or(1)
    }

    pub fn validate(&self) -> Result<()> {
        let levels = self.dim_mult.len();
        let problem = if levels == 0 {
            Some("dim_mult is empty".to_string())
        } else if self.temperal_downsample.len() + 1 < levels {
            Some(format!("temperal_downsample needs {} entries, found {}", levels - 1, self.temperal_downsample.len()))
        } else if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            Some(format!(
                "latents_mean and latents_std need z_dim = {} entries, found {} and {}",
                self.z_dim,
                self.latents_mean.len(),
                self.latents_std.len()
            ))
        } else if self.latents_std.contains(&0.0) {
            Some("latents_std must not contain zero".into())
        } else if self.in_channels != 3 * self.patch() * self.patch() || self.out_channels != self.in_channels {
            Some(format!(
                "in_channels {} / out_channels {} do not match RGB video with patch_size {}",
                self.in_channels,
                self.out_channels,
                self.patch()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ModelError::Unsupported(format!("AutoencoderKLWan config: {problem}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_parameter_counts_equal_the_reference() {
        // Counted by diffusers 0.42.1 on the meta device for the same configurations.
        let count = |name| super::super::published_model(name).unwrap().transformer.parameter_count();
        assert_eq!(count("wan2.1-t2v-1.3b"), 1_418_996_800);
        assert_eq!(count("wan2.1-t2v-14b"), 14_288_491_584);
        assert_eq!(count("wan2.2-ti2v-5b"), 4_999_787_712);
    }

    #[test]
    fn empty_config_takes_the_reference_defaults() {
        let config: WanTransformerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, super::super::published_model("wan2.1-t2v-14b").unwrap().transformer);
        let config: WanTransformerConfig = serde_json::from_str(r#"{"in_channels": 48, "out_channels": null}"#).unwrap();
        assert_eq!(config.out_channels(), 48);
    }
}
