//! `config.json` of transformers' `UMT5EncoderModel`, with the reference's field names and defaults.

use serde::Deserialize;

use crate::{ModelError, Result};

fn default_vocab() -> usize {
    250112
}
fn default_d_model() -> usize {
    512
}
fn default_d_kv() -> usize {
    64
}
fn default_d_ff() -> usize {
    1024
}
fn default_layers() -> usize {
    8
}
fn default_heads() -> usize {
    6
}
fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff_proj() -> String {
    "gated-gelu".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Umt5Config {
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    #[serde(default = "default_d_kv")]
    pub d_kv: usize,
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    #[serde(default = "default_layers")]
    pub num_layers: usize,
    #[serde(default = "default_heads")]
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
}

/// The feed-forward activation named by `feed_forward_proj` ("gated-gelu" means tanh-approximated
/// GELU, as transformers maps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    GeluTanh,
    GeluErf,
    Relu,
    Silu,
}

impl Umt5Config {
    /// (activation, gated) from `feed_forward_proj`, as transformers' UMT5Config derives them.
    pub fn feed_forward(&self) -> Result<(Activation, bool)> {
        let gated = self.feed_forward_proj.starts_with("gated-");
        let name = self.feed_forward_proj.rsplit('-').next().unwrap_or_default();
        let activation = match (self.feed_forward_proj.as_str(), name) {
            ("gated-gelu", _) | (_, "gelu_new") => Activation::GeluTanh,
            (_, "gelu") => Activation::GeluErf,
            (_, "relu") => Activation::Relu,
            (_, "silu") => Activation::Silu,
            _ => {
                return Err(ModelError::Unsupported(format!(
                    "UMT5 feed_forward_proj {:?} is not supported: expected gated-gelu, gelu, relu or silu \
                     (optionally gated-)",
                    self.feed_forward_proj
                )))
            }
        };
        Ok((activation, gated))
    }
}
