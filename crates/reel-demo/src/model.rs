//! The demo model's configurations and its checkpoint layout: the same files, in the same
//! diffusers layout, as a published Wan checkpoint, plus `reel.json` with generation defaults.

use std::path::Path;

use reel_models::umt5::Umt5Config;
use reel_models::wan::{WanTransformerConfig, WanVaeConfig};
use reel_sampling::scheduler::SchedulerConfig;
use serde_json::json;

use crate::world::{FPS, FRAMES, HEIGHT, WIDTH};

/// Latent channels of the demo VAE.
pub const LATENT_CHANNELS: usize = 8;
/// Prompt tokens the demo model reads (its captions are 10 to 30 words).
pub const MAX_SEQUENCE_LENGTH: usize = 32;
/// Flow shift of the sampler and of the noise levels trained, as for Wan's small models, unless a
/// run picks another (`reel train --flow-shift`).
pub const FLOW_SHIFT: f64 = 3.0;
pub const DEFAULT_STEPS: usize = 20;
pub const DEFAULT_GUIDANCE: f64 = 4.0;

/// Text encoder blocks of a demo model trained from scratch (`reel train --text-encoder-layers`
/// changes it).
pub const TEXT_ENCODER_LAYERS: usize = 2;

pub fn text_encoder_config(vocab_size: usize, layers: usize) -> Umt5Config {
    serde_json::from_value(json!({
        "vocab_size": vocab_size, "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": layers,
        "num_heads": 4, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 64,
        "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6
    }))
    .expect("valid UMT5 config")
}

/// Transformer blocks of a demo model trained from scratch (`reel train --transformer-layers` changes it).
pub const TRANSFORMER_LAYERS: usize = 4;

pub fn transformer_config(layers: usize) -> WanTransformerConfig {
    serde_json::from_value(json!({
        "patch_size": [1, 2, 2], "num_attention_heads": 4, "attention_head_dim": 32,
        "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS, "text_dim": 64, "freq_dim": 64,
        "ffn_dim": 512, "num_layers": layers, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6, "rope_max_seq_len": 1024
    }))
    .expect("valid transformer config")
}

/// A Wan 2.1-style VAE with two downsampling levels: 4x in space and in time.
pub fn vae_config(latents_mean: Vec<f64>, latents_std: Vec<f64>) -> WanVaeConfig {
    serde_json::from_value(json!({
        "base_dim": 8, "z_dim": LATENT_CHANNELS, "dim_mult": [1, 2, 4], "num_res_blocks": 1,
        "attn_scales": [], "temperal_downsample": [true, true], "latents_mean": latents_mean,
        "latents_std": latents_std, "scale_factor_temporal": 4, "scale_factor_spatial": 4
    }))
    .expect("valid VAE config")
}

fn scheduler_config(flow_shift: f64) -> serde_json::Value {
    json!({
        "_class_name": "UniPCMultistepScheduler", "_diffusers_version": "0.42.1",
        "num_train_timesteps": 1000, "solver_order": 2, "prediction_type": "flow_prediction",
        "predict_x0": true, "solver_type": "bh2", "lower_order_final": true, "disable_corrector": [],
        "use_flow_sigmas": true, "flow_shift": flow_shift, "timestep_spacing": "linspace",
        "final_sigmas_type": "zero"
    })
}

/// `reel.json`: what `reel generate` uses for this checkpoint when the user gives no value.
pub fn generation_defaults() -> serde_json::Value {
    json!({
        "frames": FRAMES, "height": HEIGHT, "width": WIDTH, "fps": FPS, "steps": DEFAULT_STEPS,
        "guidance": DEFAULT_GUIDANCE, "max_sequence_length": MAX_SEQUENCE_LENGTH
    })
}

/// Writes the VAE's config alone (its latent normalisation is known only once the pool is encoded).
pub fn write_vae_config(dir: &Path, vae: &WanVaeConfig) -> std::io::Result<()> {
    let mut value = serde_json::to_value(vae)?;
    value["_class_name"] = json!("AutoencoderKLWan");
    write_json(&dir.join("vae/config.json"), &value)
}

fn write_json(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?)
}

/// Writes everything but the weights and the tokenizer: model index, component configs,
/// scheduler (sampling at `flow_shift`) and generation defaults.
pub fn write_configs(
    dir: &Path,
    text_encoder: &Umt5Config,
    transformer: &WanTransformerConfig,
    vae: &WanVaeConfig,
    flow_shift: f64,
) -> std::io::Result<()> {
    write_json(
        &dir.join("model_index.json"),
        &json!({
            "_class_name": "WanPipeline", "_diffusers_version": "0.42.1",
            // Per-token timesteps, as Wan 2.2 TI2V: given first frames (an image, the end of a
            // previous window) stay clean at timestep 0 while the rest is denoised.
            "expand_timesteps": true,
            "scheduler": ["diffusers", "UniPCMultistepScheduler"],
            "text_encoder": ["transformers", "UMT5EncoderModel"],
            "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
            "transformer": ["diffusers", "WanTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"]
        }),
    )?;
    let mut transformer = serde_json::to_value(transformer)?;
    transformer["_class_name"] = json!("WanTransformer3DModel");
    write_json(&dir.join("transformer/config.json"), &transformer)?;
    write_vae_config(dir, vae)?;
    let mut text = json!({
        "architectures": ["UMT5EncoderModel"], "model_type": "umt5",
        "vocab_size": text_encoder.vocab_size, "d_model": text_encoder.d_model, "d_kv": text_encoder.d_kv,
        "d_ff": text_encoder.d_ff, "num_layers": text_encoder.num_layers, "num_heads": text_encoder.num_heads,
        "relative_attention_num_buckets": text_encoder.relative_attention_num_buckets,
        "relative_attention_max_distance": text_encoder.relative_attention_max_distance,
        "feed_forward_proj": text_encoder.feed_forward_proj, "layer_norm_epsilon": text_encoder.layer_norm_epsilon,
        "is_encoder_decoder": true, "pad_token_id": 0, "eos_token_id": 1, "dropout_rate": 0.0
    });
    text["tie_word_embeddings"] = json!(false);
    write_json(&dir.join("text_encoder/config.json"), &text)?;
    write_json(&dir.join("scheduler/scheduler_config.json"), &scheduler_config(flow_shift))?;
    write_json(&dir.join("reel.json"), &generation_defaults())
}

/// The flow shift demo checkpoint `dir` samples at (its scheduler's), which is also the one its
/// transformer was trained at.
pub fn checkpoint_flow_shift(dir: &Path) -> reel_sampling::Result<f64> {
    Ok(SchedulerConfig::from_file(&dir.join("scheduler/scheduler_config.json"))?.shift())
}
