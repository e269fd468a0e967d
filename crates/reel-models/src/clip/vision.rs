//! CLIP's vision transformer: mirrors transformers' `CLIPVisionModel` (transformers 5.23,
//! models/clip/modeling_clip.py) as far as Wan2.1 image-to-video reads it, `hidden_states[-2]`: the output
//! of the penultimate encoder layer. The last layer and `post_layernorm` never run, so they are not loaded.

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

use super::config::{Activation, ClipVisionConfig};
use crate::nn::attention::scaled_dot_product_attention;
use crate::nn::linear::{linear, Linear};
use crate::nn::norm::LayerNormF32;
use crate::nn::patch::PatchEmbed;
use crate::weights::ComponentFolder;
use crate::{ModelError, Result};

/// transformers 4 saved `CLIPVisionModel` (and `CLIPVisionModelWithProjection`, which diffusers' Wan
/// checkpoints come from) under this prefix; transformers 5 strips it on load and saves without it.
const LEGACY_PREFIX: &str = "vision_model";

/// Tensors checkpoints carry that the penultimate hidden state does not use: the pooled output's norm, the
/// projection of `CLIPVisionModelWithProjection`, and the position-id buffer old transformers saved.
const UNUSED: [&str; 3] = ["post_layernorm.", "visual_projection.", "embeddings.position_ids"];

#[derive(Debug, Clone)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(config: &ClipVisionConfig, vb: VarBuilder) -> CandleResult<Self> {
        let d = config.hidden_size;
        Ok(Self {
            q: linear(d, d, vb.pp("q_proj"))?,
            k: linear(d, d, vb.pp("k_proj"))?,
            v: linear(d, d, vb.pp("v_proj"))?,
            out: linear(d, d, vb.pp("out_proj"))?,
            heads: config.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let (b, n, d) = x.dims3()?;
        let split = |t: Tensor| t.reshape((b, n, self.heads, d / self.heads))?.transpose(1, 2)?.contiguous();
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let attended = scaled_dot_product_attention(&q, &k, &v)?;
        self.out.forward(&attended.transpose(1, 2)?.reshape((b, n, d))?)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = match self.activation {
            Activation::GeluErf => h.gelu_erf()?,
            Activation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
        };
        self.fc2.forward(&h)
    }
}

/// `CLIPEncoderLayer`: pre-norm attention and MLP, each added to the residual stream.
#[derive(Debug, Clone)]
struct EncoderLayer {
    norm1: LayerNormF32,
    attention: SelfAttention,
    norm2: LayerNormF32,
    mlp: Mlp,
}

impl EncoderLayer {
    fn new(config: &ClipVisionConfig, activation: Activation, vb: VarBuilder) -> CandleResult<Self> {
        let (d, eps) = (config.hidden_size, config.layer_norm_eps);
        Ok(Self {
            norm1: LayerNormF32::new(d, eps, true, vb.pp("layer_norm1"))?,
            attention: SelfAttention::new(config, vb.pp("self_attn"))?,
            norm2: LayerNormF32::new(d, eps, true, vb.pp("layer_norm2"))?,
            mlp: Mlp {
                fc1: linear(d, config.intermediate_size, vb.pp("mlp.fc1"))?,
                fc2: linear(config.intermediate_size, d, vb.pp("mlp.fc2"))?,
                activation,
            },
        })
    }

    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let attended = self.attention.forward(&self.norm1.forward(x)?.to_dtype(x.dtype())?)?;
        let x = (x + attended)?;
        let fed = self.mlp.forward(&self.norm2.forward(&x)?.to_dtype(x.dtype())?)?;
        x + fed
    }
}

/// The CLIP vision encoder up to its penultimate layer.
#[derive(Debug, Clone)]
pub struct ClipVisionEncoder {
    config: ClipVisionConfig,
    patch_embedding: PatchEmbed,
    /// The class token, (hidden).
    class_embedding: Tensor,
    /// One learned row per position, class token first: (1 + patches, hidden), added whole as the
    /// reference's `position_ids` are 0..n.
    position_embedding: Tensor,
    pre_layrnorm: LayerNormF32,
    layers: Vec<EncoderLayer>,
    dtype: DType,
}

impl ClipVisionEncoder {
    /// Builds the embeddings, `pre_layrnorm` and every encoder layer but the last from `vb` (names as in
    /// transformers 5, without the `vision_model.` prefix).
    pub fn new(config: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let activation = config.activation()?;
        let d = config.hidden_size;
        let embeddings = vb.pp("embeddings");
        let positions = config.grid() * config.grid() + 1;
        let layers = vb.pp("encoder.layers");
        Ok(Self {
            patch_embedding: PatchEmbed::image_without_bias(config.num_channels, d, config.patch_size, embeddings.pp("patch_embedding"))?,
            class_embedding: embeddings.get(d, "class_embedding")?,
            position_embedding: embeddings.get((positions, d), "position_embedding.weight")?,
            pre_layrnorm: LayerNormF32::new(d, config.layer_norm_eps, true, vb.pp("pre_layrnorm"))?,
            layers: (0..config.num_hidden_layers.saturating_sub(1))
                .map(|i| EncoderLayer::new(config, activation, layers.pp(i)))
                .collect::<CandleResult<_>>()?,
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// Loads an `image_encoder/` folder written by transformers' `CLIPVisionModel` or
    /// `CLIPVisionModelWithProjection`, in either version's weight names.
    pub fn load(folder: &ComponentFolder, dtype: DType, device: &Device) -> Result<Self> {
        let config = ClipVisionConfig::read(folder)?;
        let weights = folder.weights(dtype, device)?;
        let vb = weights.var_builder();
        let legacy = vb.contains_tensor(&format!("{LEGACY_PREFIX}.embeddings.class_embedding"));
        let model = Self::new(&config, if legacy { vb.pp(LEGACY_PREFIX) } else { vb })?;
        let last_layer = format!("encoder.layers.{}.", config.num_hidden_layers - 1);
        let ignored: Vec<&str> = UNUSED.iter().copied().chain([last_layer.as_str()]).collect();
        weights.finish(&ignored)?;
        Ok(model)
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// `pixel_values` (batch, channels, image_size, image_size), as the checkpoint's image processor makes
    /// them -> transformers' `hidden_states[-2]`: (batch, 1 + patches, hidden) in the model's dtype, the
    /// class token first.
    pub fn penultimate_hidden_states(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.check_input(pixel_values)?;
        let batch = pixel_values.dim(0)?;
        let d = self.config.hidden_size;
        let patches = self.patch_embedding.forward(&pixel_values.to_dtype(self.dtype)?.unsqueeze(2)?)?;
        let class = self.class_embedding.reshape((1, 1, d))?.broadcast_as((batch, 1, d))?;
        let embeddings = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = self.pre_layrnorm.forward(&embeddings)?.to_dtype(self.dtype)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    fn check_input(&self, pixel_values: &Tensor) -> Result<()> {
        let (channels, size) = (self.config.num_channels, self.config.image_size);
        let dims = pixel_values.dims();
        let problem = match *dims {
            [_, c, _, _] if c != channels => format!(
                "pixel_values have {c} channels, this CLIP vision encoder takes {channels} (num_channels in its \
                 config.json)"
            ),
            [_, _, h, w] if h != size || w != size => format!(
                "pixel_values are {h}x{w} (height x width), this CLIP vision encoder takes {size}x{size} (image_size \
                 in its config.json): preprocess images with the checkpoint's image processor, whose crop size \
                 should be {size}"
            ),
            [_, _, _, _] => return Ok(()),
            _ => format!("pixel_values must be (batch, channels, height, width), found shape {dims:?}"),
        };
        Err(ModelError::InvalidInput(problem))
    }
}
