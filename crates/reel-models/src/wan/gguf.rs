//! Wan transformers in GGUF, as the community publishes them (city96's ComfyUI-GGUF conversions
//! of Wan-AI's original checkpoints, Q8_0 to Q4_K and below): Wan's original tensor names, the
//! linear layers' weights quantized, small tensors in F32 or F16, tensors of more than four
//! dimensions flattened with their shape in `comfy.gguf.orig_shape.<name>`. There is no config in
//! the file: it is read off the tensors' shapes. Quantized weights stay quantized (candle's
//! quantized kernels multiply them); everything else is dequantized to the compute dtype.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::config::WanTransformerConfig;
use super::transformer::WanTransformer;
use crate::nn::linear::with_prequantized;
use crate::{ModelError, Result};

/// Channels per attention head in every published Wan model (1.3B: 12 x 128, 5B: 24 x 128,
/// 14B: 40 x 128), used when the file does not give `wan.attention.head_count` (llama.cpp's key
/// pattern; the community's Wan files carry no config).
const HEAD_DIM: usize = 128;
const HEAD_COUNT_KEY: &str = "wan.attention.head_count";

/// Wan's original names -> diffusers' (scripts/convert_wan_to_diffusers.py in diffusers), applied
/// in order. The original calls the norm before cross-attention `norm3` and the one before the
/// feed-forward `norm2`; diffusers swaps them.
const RENAMES: [(&str, &str); 17] = [
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"),
    ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"),
    ("norm3", "norm2"),
    ("norm__placeholder", "norm3"),
    ("self_attn.o", "attn1.to_out.0"),
    ("cross_attn.o", "attn2.to_out.0"),
    ("self_attn.", "attn1."),
    ("cross_attn.", "attn2."),
];

/// The diffusers name of an original Wan tensor name.
fn diffusers_name(original: &str) -> String {
    let mut name = original.to_string();
    for (from, to) in RENAMES {
        name = name.replace(from, to);
    }
    // Attention projections: `attn1.q.weight` -> `attn1.to_q.weight` (norm_q/norm_k keep their names).
    for projection in ["q", "k", "v"] {
        for attention in ["attn1", "attn2"] {
            name = name.replace(&format!("{attention}.{projection}."), &format!("{attention}.to_{projection}."));
        }
    }
    name
}

fn gguf_error(path: &Path, e: impl std::fmt::Display) -> ModelError {
    // candle's errors may carry a backtrace after the first line.
    let message = e.to_string();
    let first_line = message.lines().next().unwrap_or_default();
    ModelError::Checkpoint(format!("{} is not a readable GGUF file: {first_line}", path.display()))
}

/// The shape a tensor had before it was flattened to fit GGUF's four dimensions, if it was.
fn original_shape(content: &Content, name: &str) -> Option<Vec<usize>> {
    let Value::Array(values) = content.metadata.get(&format!("comfy.gguf.orig_shape.{name}"))? else {
        return None;
    };
    values
        .iter()
        .map(|v| match v {
            Value::I32(d) => usize::try_from(*d).ok(),
            Value::I64(d) => usize::try_from(*d).ok(),
            Value::U32(d) => Some(*d as usize),
            Value::U64(d) => usize::try_from(*d).ok(),
            _ => None,
        })
        .collect()
}

/// The transformer's configuration, read off the shapes of its tensors (diffusers names).
fn infer_config(shapes: &HashMap<String, Vec<usize>>, heads: Option<usize>, path: &Path) -> Result<WanTransformerConfig> {
    let shape = |name: &str| -> Result<&Vec<usize>> {
        shapes.get(name).ok_or_else(|| {
            ModelError::Checkpoint(format!("{} has no tensor {name}: it is not a Wan text-to-video transformer", path.display()))
        })
    };
    let patch = shape("patch_embedding.weight")?;
    let [dim, in_channels, pt, ph, pw] = patch[..] else {
        return Err(ModelError::Checkpoint(format!(
            "{}: patch_embedding.weight has shape {patch:?}, expected 5 dimensions (dim, channels, t, h, w)",
            path.display()
        )));
    };
    let layers = (0..).take_while(|i| shapes.contains_key(&format!("blocks.{i}.ffn.net.0.proj.weight"))).count();
    let ffn_dim = shape("blocks.0.ffn.net.0.proj.weight")?[0];
    let text_dim = shape("condition_embedder.text_embedder.linear_1.weight")?[1];
    let freq_dim = shape("condition_embedder.time_embedder.linear_1.weight")?[1];
    let out_channels = shape("proj_out.weight")?[0] / (pt * ph * pw);
    let heads = heads.unwrap_or(dim / HEAD_DIM);
    if heads == 0 || dim % heads != 0 {
        return Err(ModelError::Unsupported(format!(
            "{}: width {dim} does not split into {heads} heads (give {HEAD_COUNT_KEY} in the file's metadata)",
            path.display()
        )));
    }
    let config = serde_json::json!({
        "patch_size": [pt, ph, pw], "num_attention_heads": heads, "attention_head_dim": dim / heads,
        "in_channels": in_channels, "out_channels": out_channels, "text_dim": text_dim, "freq_dim": freq_dim,
        "ffn_dim": ffn_dim, "num_layers": layers, "cross_attn_norm": shapes.contains_key("blocks.0.norm2.weight"),
        "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024
    });
    Ok(serde_json::from_value(config).expect("a valid transformer config"))
}

impl WanTransformer {
    /// Loads a Wan text-to-video transformer from a GGUF file (see the module's documentation),
    /// computing in `dtype` (quantized weights stay quantized).
    pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        let content = Content::read(&mut file).map_err(|e| gguf_error(path, e))?;
        let image_branch: Vec<&String> = content.tensor_infos.keys().filter(|n| n.starts_with("img_emb") || n.contains("_img.")).collect();
        if !image_branch.is_empty() {
            return Err(ModelError::Unsupported(format!(
                "{} is an image-to-video transformer (it has {}): only text-to-video GGUF files load",
                path.display(),
                image_branch[0]
            )));
        }

        let mut dense = HashMap::new();
        let mut quantized = HashMap::new();
        let mut shapes = HashMap::new();
        for name in content.tensor_infos.keys() {
            let tensor: QTensor = content.tensor(&mut file, name, device).map_err(|e| gguf_error(path, format!("{name}: {e}")))?;
            let target = diffusers_name(name);
            let flattened_from = original_shape(&content, name);
            let is_float = matches!(tensor.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
            if !is_float && flattened_from.is_none() && tensor.shape().rank() == 2 {
                shapes.insert(target.clone(), tensor.shape().dims().to_vec());
                quantized.insert(target, Arc::new(tensor));
            } else {
                let mut values = tensor.dequantize(device)?;
                if let Some(shape) = flattened_from {
                    values = values.reshape(shape)?;
                }
                shapes.insert(target.clone(), values.dims().to_vec());
                dense.insert(target, values);
            }
        }
        let heads = content.metadata.get(HEAD_COUNT_KEY).map(|v| v.to_u32().map(|h| h as usize)).transpose().map_err(|e| gguf_error(path, e))?;
        let config = infer_config(&shapes, heads, path)?;
        let vb = VarBuilder::from_tensors(dense, dtype, device);
        let (model, unused) = with_prequantized(quantized, || Self::new(&config, vb.clone()));
        let model = model?;
        if !unused.is_empty() {
            return Err(ModelError::Checkpoint(format!(
                "{} has quantized tensors the Wan transformer does not use: {}",
                path.display(),
                unused.join(", ")
            )));
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_names_map_to_diffusers_names() {
        for (original, expected) in [
            ("blocks.3.self_attn.q.weight", "blocks.3.attn1.to_q.weight"),
            ("blocks.3.cross_attn.o.bias", "blocks.3.attn2.to_out.0.bias"),
            ("blocks.3.self_attn.norm_k.weight", "blocks.3.attn1.norm_k.weight"),
            ("blocks.3.norm3.weight", "blocks.3.norm2.weight"),
            ("blocks.3.modulation", "blocks.3.scale_shift_table"),
            ("blocks.3.ffn.2.weight", "blocks.3.ffn.net.2.weight"),
            ("head.modulation", "scale_shift_table"),
            ("head.head.weight", "proj_out.weight"),
            ("time_projection.1.bias", "condition_embedder.time_proj.bias"),
            ("text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"),
            ("patch_embedding.weight", "patch_embedding.weight"),
        ] {
            assert_eq!(diffusers_name(original), expected, "{original}");
        }
    }
}
