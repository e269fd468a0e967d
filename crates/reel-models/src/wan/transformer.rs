//! The Wan diffusion transformer: mirrors diffusers' `WanTransformer3DModel` (diffusers 0.42.1,
//! models/transformers/transformer_wan.py) for the checkpoints of Wan 2.1 and 2.2: text-to-video, and
//! Wan 2.1's image-to-video, whose cross-attention also attends to CLIP image tokens through its own
//! keys and values (`add_k_proj`, `add_v_proj`, `norm_added_k`).
//!
//! Precision follows the reference: the modules diffusers keeps in f32 (`time_embedder`,
//! `scale_shift_table`, `norm1..3`) are loaded in f32 whatever the compute dtype, the modulation and
//! the residual updates are computed in f32, and everything else runs in the compute dtype.

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use candle_nn::{Module, VarBuilder};

use super::config::WanTransformerConfig;
use crate::nn::attention::scaled_dot_product_attention;
use crate::nn::broadcast::{broadcast_add, broadcast_mul};
use crate::nn::linear::{linear, Linear};
use crate::nn::norm::{LayerNormF32, RmsNorm};
use crate::nn::patch::{unpatchify, PatchEmbed};
use crate::nn::rope::Rope3d;
use crate::nn::timestep::timestep_embedding;
use crate::weights::ComponentFolder;
use crate::{ModelError, Result};

const ROPE_THETA: f64 = 10000.0;

/// Checkpoint names the reference itself ignores when loading (`_keys_to_ignore_on_load_unexpected`).
const IGNORED_ON_LOAD: [&str; 1] = ["norm_added_q"];

/// Timestep and text conditioning (`condition_embedder`, diffusers' `WanTimeTextImageEmbedding`).
#[derive(Debug, Clone)]
struct ConditionEmbedder {
    freq_dim: usize,
    time_linear_1: Linear,
    time_linear_2: Linear,
    time_proj: Linear,
    text_linear_1: Linear,
    text_linear_2: Linear,
    image_embedder: Option<ImageEmbedder>,
}

impl ConditionEmbedder {
    fn new(config: &WanTransformerConfig, vb: VarBuilder) -> CandleResult<Self> {
        let dim = config.inner_dim();
        let time = vb.pp("time_embedder").to_dtype(DType::F32);
        Ok(Self {
            freq_dim: config.freq_dim,
            time_linear_1: linear(config.freq_dim, dim, time.pp("linear_1"))?,
            time_linear_2: linear(dim, dim, time.pp("linear_2"))?,
            time_proj: linear(dim, 6 * dim, vb.pp("time_proj"))?,
            text_linear_1: linear(config.text_dim, dim, vb.pp("text_embedder.linear_1"))?,
            text_linear_2: linear(dim, dim, vb.pp("text_embedder.linear_2"))?,
            image_embedder: config.image_dim.map(|image_dim| ImageEmbedder::new(image_dim, dim, config.pos_embed_seq_len, vb.pp("image_embedder"))).transpose()?,
        })
    }

    /// `timesteps` (N) -> (temb (N, dim), projection (N, 6 * dim)), both in `dtype`.
    fn time(&self, timesteps: &Tensor, dtype: DType) -> CandleResult<(Tensor, Tensor)> {
        let sinusoid = timestep_embedding(timesteps, self.freq_dim)?;
        let temb = self.time_linear_2.forward(&self.time_linear_1.forward(&sinusoid)?.silu()?)?;
        let temb = temb.to_dtype(dtype)?;
        let projection = self.time_proj.forward(&temb.silu()?)?;
        Ok((temb, projection))
    }

    fn text(&self, context: &Tensor) -> CandleResult<Tensor> {
        self.text_linear_2.forward(&self.text_linear_1.forward_gelu_tanh(context)?)
    }
}

/// CLIP image tokens into the transformer's width (`WanImageEmbedding`): LayerNorm, a GELU
/// feed-forward, LayerNorm; with `pos_embed` (first-last-frame checkpoints) the two images' tokens
/// are joined and given learned positions first.
#[derive(Debug, Clone)]
struct ImageEmbedder {
    norm1: LayerNormF32,
    ff_in: Linear,
    ff_out: Linear,
    norm2: LayerNormF32,
    /// (1, tokens of both images, image_dim)
    pos_embed: Option<Tensor>,
}

/// `FP32LayerNorm`'s default epsilon (torch's LayerNorm default).
const IMAGE_NORM_EPS: f64 = 1e-5;

impl ImageEmbedder {
    fn new(image_dim: usize, dim: usize, pos_embed_seq_len: Option<usize>, vb: VarBuilder) -> CandleResult<Self> {
        Ok(Self {
            norm1: LayerNormF32::new(image_dim, IMAGE_NORM_EPS, true, vb.pp("norm1"))?,
            ff_in: linear(image_dim, image_dim, vb.pp("ff.net.0.proj"))?,
            ff_out: linear(image_dim, dim, vb.pp("ff.net.2"))?,
            norm2: LayerNormF32::new(dim, IMAGE_NORM_EPS, true, vb.pp("norm2"))?,
            pos_embed: pos_embed_seq_len.map(|n| vb.get((1, n, image_dim), "pos_embed")).transpose()?,
        })
    }

    /// (batch, tokens, image_dim) in the compute dtype -> (batch', tokens', dim); with positions,
    /// consecutive pairs of images become one sequence.
    fn forward(&self, image: &Tensor) -> CandleResult<Tensor> {
        let dtype = image.dtype();
        let image = match &self.pos_embed {
            Some(positions) => {
                let (batch, tokens, width) = image.dims3()?;
                if batch % 2 != 0 || 2 * tokens != positions.dim(1)? {
                    candle_core::bail!(
                        "this first-last-frame transformer takes the tokens of two images ({} in all), found {batch} image(s) of {tokens} tokens",
                        positions.dim(1)?
                    );
                }
                image.reshape((batch / 2, 2 * tokens, width))?.broadcast_add(positions)?
            }
            None => image.clone(),
        };
        let x = self.norm1.forward(&image)?.to_dtype(dtype)?;
        let x = self.ff_out.forward(&self.ff_in.forward(&x)?.gelu_erf()?)?;
        self.norm2.forward(&x)?.to_dtype(dtype)
    }
}

/// The image keys and values of an image-to-video cross-attention.
#[derive(Debug, Clone)]
struct AddedKeysValues {
    add_k_proj: Linear,
    add_v_proj: Linear,
    norm_added_k: RmsNorm,
}

/// Self- or cross-attention with RMS norm on queries and keys across all heads (`WanAttention`).
#[derive(Debug, Clone)]
struct WanAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: RmsNorm,
    norm_k: RmsNorm,
    added: Option<AddedKeysValues>,
    heads: usize,
}

/// What one block's cross-attention attends to: the prompt's keys and values, and the image's when
/// the transformer has an image branch.
#[derive(Debug, Clone)]
struct CrossContext {
    text: (Tensor, Tensor),
    image: Option<(Tensor, Tensor)>,
}

impl WanAttention {
    /// `added_kv_dim`: the width of the image tokens of an image-to-video cross-attention.
    fn new(dim: usize, heads: usize, eps: f64, added_kv_dim: Option<usize>, vb: VarBuilder) -> CandleResult<Self> {
        let added = added_kv_dim
            .map(|width| -> CandleResult<_> {
                Ok(AddedKeysValues {
                    add_k_proj: linear(width, dim, vb.pp("add_k_proj"))?,
                    add_v_proj: linear(width, dim, vb.pp("add_v_proj"))?,
                    norm_added_k: RmsNorm::new(dim, eps, vb.pp("norm_added_k"))?,
                })
            })
            .transpose()?;
        Ok(Self {
            to_q: linear(dim, dim, vb.pp("to_q"))?,
            to_k: linear(dim, dim, vb.pp("to_k"))?,
            to_v: linear(dim, dim, vb.pp("to_v"))?,
            to_out: linear(dim, dim, vb.pp("to_out.0"))?,
            norm_q: RmsNorm::new(dim, eps, vb.pp("norm_q"))?,
            norm_k: RmsNorm::new(dim, eps, vb.pp("norm_k"))?,
            added,
            heads,
        })
    }

    /// (batch, tokens, dim) -> (batch, heads, tokens, head_dim)
    fn split_heads(&self, x: &Tensor) -> CandleResult<Tensor> {
        let (b, n, dim) = x.dims3()?;
        x.reshape((b, n, self.heads, dim / self.heads))?.transpose(1, 2)?.contiguous()
    }

    /// Keys and values (batch, heads, tokens, head_dim) of `source`, keys normed.
    fn keys_values(&self, source: &Tensor) -> CandleResult<(Tensor, Tensor)> {
        let k = self.split_heads(&self.norm_k.forward(&self.to_k.forward(source)?)?)?;
        let v = self.split_heads(&self.to_v.forward(source)?)?;
        Ok((k, v))
    }

    /// Keys and values of image tokens (batch, tokens, width) through the image branch.
    fn image_keys_values(&self, image: &Tensor) -> CandleResult<(Tensor, Tensor)> {
        let added = self.added.as_ref().expect("only image-to-video blocks are given image tokens");
        let k = self.split_heads(&added.norm_added_k.forward(&added.add_k_proj.forward(image)?)?)?;
        let v = self.split_heads(&added.add_v_proj.forward(image)?)?;
        Ok((k, v))
    }

    /// Self-attention, `rope` rotating queries and keys.
    fn self_attention(&self, x: &Tensor, rope: &Rope3d) -> CandleResult<Tensor> {
        let (k, v) = self.keys_values(x)?;
        let q = rope.apply(&self.queries(x)?)?;
        self.project_out(&scaled_dot_product_attention(&q, &rope.apply(&k)?, &v)?)
    }

    /// Cross-attention to the prompt's keys and values, plus (image-to-video) attention to the
    /// image's, the two results summed before the output projection.
    fn cross_attention(&self, x: &Tensor, context: &CrossContext) -> CandleResult<Tensor> {
        let q = self.queries(x)?;
        let (k, v) = &context.text;
        let mut out = scaled_dot_product_attention(&q, k, v)?;
        if let Some((k, v)) = &context.image {
            out = (out + scaled_dot_product_attention(&q, k, v)?)?;
        }
        self.project_out(&out)
    }

    fn queries(&self, x: &Tensor) -> CandleResult<Tensor> {
        self.split_heads(&self.norm_q.forward(&self.to_q.forward(x)?)?)
    }

    /// (batch, heads, tokens, head_dim) -> the output projection of (batch, tokens, dim).
    fn project_out(&self, out: &Tensor) -> CandleResult<Tensor> {
        let (b, h, n, d) = out.dims4()?;
        self.to_out.forward(&out.transpose(1, 2)?.reshape((b, n, h * d))?)
    }
}

/// Shift, scale and gate vectors from a modulation table (parts, dim) plus the timestep projection, in f32.
/// `projection` is (batch, 1 or tokens, parts, dim); each part comes out as (batch, 1 or tokens, dim).
fn modulation(table: &Tensor, projection: &Tensor) -> CandleResult<Vec<Tensor>> {
    let parts = table.dim(0)?;
    let sum = broadcast_add(&projection.to_dtype(DType::F32)?, &table.unsqueeze(0)?)?;
    (0..parts).map(|i| sum.narrow(2, i, 1)?.squeeze(2)).collect()
}

/// `x * (1 + scale) + shift`, all f32.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> CandleResult<Tensor> {
    broadcast_add(&broadcast_mul(x, &(scale + 1.0)?)?, shift)
}

/// `(residual.f32 + update.f32 * gate).to(dtype)`: a gated residual update in f32.
fn gated_residual(residual: &Tensor, update: &Tensor, gate: &Tensor) -> CandleResult<Tensor> {
    let dtype = residual.dtype();
    let update = broadcast_mul(&update.to_dtype(DType::F32)?, gate)?;
    (residual.to_dtype(DType::F32)? + update)?.to_dtype(dtype)
}

/// One transformer block (`WanTransformerBlock`).
#[derive(Debug, Clone)]
struct WanBlock {
    norm1: LayerNormF32,
    attn1: WanAttention,
    norm2: Option<LayerNormF32>,
    attn2: WanAttention,
    norm3: LayerNormF32,
    ffn_in: Linear,
    ffn_out: Linear,
    /// (6, dim) f32: shift, scale, gate of self-attention, then of the feed-forward.
    scale_shift_table: Tensor,
}

impl WanBlock {
    fn new(config: &WanTransformerConfig, vb: VarBuilder) -> CandleResult<Self> {
        let dim = config.inner_dim();
        let heads = config.num_attention_heads;
        let eps = config.eps;
        let norm2 = if config.cross_attn_norm {
            Some(LayerNormF32::new(dim, eps, true, vb.pp("norm2"))?)
        } else {
            None
        };
        let table = vb.to_dtype(DType::F32).get((1, 6, dim), "scale_shift_table")?.squeeze(0)?;
        Ok(Self {
            norm1: LayerNormF32::new(dim, eps, false, vb.pp("norm1"))?,
            attn1: WanAttention::new(dim, heads, eps, None, vb.pp("attn1"))?,
            norm2,
            attn2: WanAttention::new(dim, heads, eps, config.added_kv_proj_dim, vb.pp("attn2"))?,
            norm3: LayerNormF32::new(dim, eps, false, vb.pp("norm3"))?,
            ffn_in: linear(dim, config.ffn_dim, vb.pp("ffn.net.0.proj"))?,
            ffn_out: linear(config.ffn_dim, dim, vb.pp("ffn.net.2"))?,
            scale_shift_table: table,
        })
    }

    fn forward(&self, x: &Tensor, prompt: &CrossContext, projection: &Tensor, rope: &Rope3d) -> CandleResult<Tensor> {
        let dtype = x.dtype();
        let m = modulation(&self.scale_shift_table, projection)?;
        let (shift, scale, gate, c_shift, c_scale, c_gate) = (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);

        let normed = modulate(&self.norm1.forward(x)?, shift, scale)?.to_dtype(dtype)?;
        let x = gated_residual(x, &self.attn1.self_attention(&normed, rope)?, gate)?;

        let normed = match &self.norm2 {
            Some(norm) => norm.forward(&x)?.to_dtype(dtype)?,
            None => x.clone(),
        };
        let x = (&x + self.attn2.cross_attention(&normed, prompt)?)?;

        let normed = modulate(&self.norm3.forward(&x)?, c_shift, c_scale)?.to_dtype(dtype)?;
        let ff = self.ffn_out.forward(&self.ffn_in.forward_gelu_tanh(&normed)?)?;
        gated_residual(&x, &ff, c_gate)
    }
}

/// A prompt's (and, image-to-video, an image's) cross-attention keys and values for every block of
/// one transformer.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    keys_values: Vec<CrossContext>,
}

/// The Wan transformer: predicts the flow (velocity) for noisy video latents.
#[derive(Debug, Clone)]
pub struct WanTransformer {
    config: WanTransformerConfig,
    patch_embedding: PatchEmbed,
    condition_embedder: ConditionEmbedder,
    blocks: Vec<WanBlock>,
    norm_out: LayerNormF32,
    proj_out: Linear,
    /// (2, dim) f32: shift and scale of the output norm.
    scale_shift_table: Tensor,
    dtype: DType,
    device: Device,
}

impl WanTransformer {
    /// Builds the model from weights named as in the checkpoint; `vb`'s dtype is the compute dtype.
    pub fn new(config: &WanTransformerConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let dim = config.inner_dim();
        let (pt, ph, pw) = config.patch();
        let blocks = (0..config.num_layers)
            .map(|i| WanBlock::new(config, vb.pp(format!("blocks.{i}"))))
            .collect::<CandleResult<Vec<_>>>()?;
        Ok(Self {
            patch_embedding: PatchEmbed::new(config.in_channels, dim, config.patch(), vb.pp("patch_embedding"))?,
            condition_embedder: ConditionEmbedder::new(config, vb.pp("condition_embedder"))?,
            blocks,
            norm_out: LayerNormF32::new(dim, config.eps, false, vb.pp("norm_out"))?,
            proj_out: linear(dim, config.out_channels() * pt * ph * pw, vb.pp("proj_out"))?,
            scale_shift_table: vb.to_dtype(DType::F32).get((1, 2, dim), "scale_shift_table")?.squeeze(0)?,
            config: config.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads a `transformer/` folder in the diffusers layout, computing in `dtype` on `device`.
    pub fn load(folder: &ComponentFolder, dtype: DType, device: &Device) -> Result<Self> {
        let config: WanTransformerConfig = folder.config()?;
        config.validate().map_err(|e| match e {
            ModelError::Unsupported(msg) => {
                ModelError::Unsupported(format!("{}: {msg}", folder.dir().join("config.json").display()))
            }
            other => other,
        })?;
        let weights = folder.weights(dtype, device)?;
        let model = Self::new(&config, weights.var_builder())?;
        weights.finish(&IGNORED_ON_LOAD)?;
        Ok(model)
    }

    pub fn config(&self) -> &WanTransformerConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Checks that latents of shape (batch, channels, frames, height, width) fit this model.
    pub fn check_latents(&self, dims: &[usize]) -> Result<()> {
        let (pt, ph, pw) = self.config.patch();
        let [_, channels, frames, height, width] = dims else {
            return Err(ModelError::InvalidInput(format!(
                "latents must be (batch, channels, frames, height, width), found shape {dims:?}"
            )));
        };
        if *channels != self.config.in_channels {
            return Err(ModelError::InvalidInput(format!(
                "latents have {channels} channels but the transformer expects {}",
                self.config.in_channels
            )));
        }
        if frames % pt != 0 || height % ph != 0 || width % pw != 0 {
            return Err(ModelError::InvalidInput(format!(
                "latent size {frames}x{height}x{width} (frames x height x width) is not a multiple \
                 of the patch size {pt}x{ph}x{pw}"
            )));
        }
        let longest = (frames / pt).max(height / ph).max(width / pw);
        if longest > self.config.rope_max_seq_len {
            return Err(ModelError::InvalidInput(format!(
                "latent grid {}x{}x{} exceeds the model's rotary table of {} positions per axis",
                frames / pt,
                height / ph,
                width / pw,
                self.config.rope_max_seq_len
            )));
        }
        Ok(())
    }

    /// One denoising evaluation.
    ///
    /// - `latents`: (batch, in_channels, frames, height, width)
    /// - `timestep`: (batch) or, for per-token timesteps as Wan 2.2 TI2V uses them, (batch, tokens)
    /// - `context`: (batch, text_tokens, text_dim) prompt embeddings
    ///
    /// Image-to-video transformers take their image through [`Self::prepare_prompt`]. Returns (batch, out_channels, frames, height, width) in the compute dtype.
    pub fn forward(&self, latents: &Tensor, timestep: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_prepared(latents, timestep, &self.prepare_prompt(context, None)?)
    }

    /// Whether the transformer attends to CLIP image tokens (Wan 2.1 image-to-video).
    pub fn takes_image_tokens(&self) -> bool {
        self.condition_embedder.image_embedder.is_some()
    }

    /// Every block's cross-attention keys and values for prompt embeddings `context` (batch,
    /// text_tokens, text_dim) and, for an image-to-video transformer, the image's CLIP tokens `image`
    /// (batch, image_tokens, image_dim): they depend on the prompt and image alone, so a generation
    /// prepares them once and passes them to [`Self::forward_prepared`] at every step.
    pub fn prepare_prompt(&self, context: &Tensor, image: Option<&Tensor>) -> Result<PreparedPrompt> {
        let image = match (&self.condition_embedder.image_embedder, image) {
            (Some(embedder), Some(image)) => Some(embedder.forward(&image.to_dtype(self.dtype)?)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ModelError::InvalidInput(
                    "this image-to-video transformer needs the CLIP tokens of the image the video starts from".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ModelError::InvalidInput("this transformer has no image branch: it takes no CLIP image tokens".into()))
            }
        };
        let context = self.condition_embedder.text(&context.to_dtype(self.dtype)?)?;
        let keys_values = self
            .blocks
            .iter()
            .map(|block| {
                Ok(CrossContext {
                    text: block.attn2.keys_values(&context)?,
                    image: image.as_ref().map(|image| block.attn2.image_keys_values(image)).transpose()?,
                })
            })
            .collect::<CandleResult<_>>()?;
        Ok(PreparedPrompt { keys_values })
    }

    /// [`Self::forward`] with the prompt prepared by [`Self::prepare_prompt`].
    pub fn forward_prepared(&self, latents: &Tensor, timestep: &Tensor, prompt: &PreparedPrompt) -> Result<Tensor> {
        self.check_latents(latents.dims())?;
        if prompt.keys_values.len() != self.blocks.len() {
            return Err(ModelError::InvalidInput(format!(
                "the prepared prompt has {} blocks, this transformer {}: prepare it with the same model",
                prompt.keys_values.len(),
                self.blocks.len()
            )));
        }
        let (batch, _, frames, height, width) = latents.dims5()?;
        let (pt, ph, pw) = self.config.patch();
        let grid = (frames / pt, height / ph, width / pw);
        let tokens = grid.0 * grid.1 * grid.2;
        let per_token = match timestep.dims() {
            [b] if *b == batch => false,
            [b, n] if *b == batch && *n == tokens => true,
            other => {
                return Err(ModelError::InvalidInput(format!(
                    "timestep must have shape [{batch}] or [{batch}, {tokens}], found {other:?}"
                )))
            }
        };
        let dim = self.config.inner_dim();
        let rope = Rope3d::new(self.config.attention_head_dim, grid, ROPE_THETA, &self.device)?;

        let x = self.patch_embedding.forward(&latents.to_dtype(self.dtype)?)?;
        let (temb, projection) = self.condition_embedder.time(&timestep.flatten_all()?, self.dtype)?;
        let steps = if per_token { tokens } else { 1 };
        let temb = temb.reshape((batch, steps, dim))?;
        let projection = projection.reshape((batch, steps, 6, dim))?;
        let mut x = x;
        for (block, keys_values) in self.blocks.iter().zip(&prompt.keys_values) {
            x = block.forward(&x, keys_values, &projection, &rope)?;
        }

        let m = modulation(&self.scale_shift_table, &temb.unsqueeze(2)?)?;
        let normed = modulate(&self.norm_out.forward(&x)?, &m[0], &m[1])?;
        let out = self.proj_out.forward(&normed.to_dtype(self.dtype)?)?;
        Ok(unpatchify(&out, grid, self.config.patch(), self.config.out_channels())?)
    }
}
