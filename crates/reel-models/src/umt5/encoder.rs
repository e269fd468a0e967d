//! The UMT5 encoder: mirrors transformers' `UMT5EncoderModel` (transformers 5.23,
//! models/umt5/modeling_umt5.py). Unlike T5, every layer has its own relative position bias.

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::{Embedding, VarBuilder};

use super::config::{Activation, Umt5Config};
use crate::nn::attention::attention;
use crate::nn::linear::{linear_no_bias as linear, Linear};
use crate::nn::norm::RmsNorm;
use crate::weights::ComponentFolder;
use crate::Result;

/// The embedding table may be stored under either name; they are tied in the reference.
const EMBEDDING_NAMES: [&str; 2] = ["shared.weight", "encoder.embed_tokens.weight"];

/// T5's bidirectional relative position buckets for a (query, key) offset `key - query`.
fn relative_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> u32 {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative > 0 { half } else { 0 };
    let distance = relative.abs();
    let max_exact = half / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        // In f32 as the reference computes it, truncated toward zero.
        let ratio = (distance as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32);
        let large = max_exact + (ratio * (half - max_exact) as f32) as i64;
        bucket += large.min(half - 1);
    }
    bucket as u32
}

#[derive(Debug, Clone)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    relative_bias: Embedding,
    heads: usize,
    d_kv: usize,
}

impl SelfAttention {
    fn new(config: &Umt5Config, vb: VarBuilder) -> CandleResult<Self> {
        let inner = config.num_heads * config.d_kv;
        Ok(Self {
            q: linear(config.d_model, inner, vb.pp("q"))?,
            k: linear(config.d_model, inner, vb.pp("k"))?,
            v: linear(config.d_model, inner, vb.pp("v"))?,
            o: linear(inner, config.d_model, vb.pp("o"))?,
            relative_bias: candle_nn::embedding(
                config.relative_attention_num_buckets,
                config.num_heads,
                vb.pp("relative_attention_bias"),
            )?,
            heads: config.num_heads,
            d_kv: config.d_kv,
        })
    }

    /// `buckets`: (len, len) u32; `mask`: (batch, 1, 1, len) f32, 0 or very negative.
    fn forward(&self, x: &Tensor, buckets: &Tensor, mask: &Tensor) -> CandleResult<Tensor> {
        let (b, n, _) = x.dims3()?;
        let split = |t: Tensor| -> CandleResult<Tensor> {
            t.reshape((b, n, self.heads, self.d_kv))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let position_bias = self
            .relative_bias
            .forward(&buckets.flatten_all()?)?
            .reshape((n, n, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .to_dtype(DType::F32)?;
        let bias = position_bias.broadcast_add(mask)?;
        let out = attention(&q, &k, &v, 1.0, Some(&bias))?;
        self.o.forward(&out.transpose(1, 2)?.reshape((b, n, self.heads * self.d_kv))?)
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
    activation: Activation,
}

impl FeedForward {
    fn new(config: &Umt5Config, vb: VarBuilder) -> Result<Self> {
        let (activation, gated) = config.feed_forward()?;
        let (d, ff) = (config.d_model, config.d_ff);
        Ok(Self {
            wi_0: linear(d, ff, vb.pp(if gated { "wi_0" } else { "wi" }))?,
            wi_1: if gated { Some(linear(d, ff, vb.pp("wi_1"))?) } else { None },
            wo: linear(ff, d, vb.pp("wo"))?,
            activation,
        })
    }

    fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
        let h = match self.activation {
            Activation::GeluTanh => self.wi_0.forward_gelu_tanh(x)?,
            Activation::GeluErf => self.wi_0.forward(x)?.gelu_erf()?,
            Activation::Relu => self.wi_0.forward(x)?.relu()?,
            Activation::Silu => self.wi_0.forward(x)?.silu()?,
        };
        let h = match &self.wi_1 {
            Some(wi_1) => (h * wi_1.forward(x)?)?,
            None => h,
        };
        self.wo.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct Block {
    attention_norm: RmsNorm,
    attention: SelfAttention,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

/// The UMT5 encoder stack with its token embedding.
#[derive(Debug, Clone)]
pub struct Umt5Encoder {
    config: Umt5Config,
    embedding: Embedding,
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    dtype: DType,
    device: Device,
}

impl Umt5Encoder {
    pub fn new(config: &Umt5Config, vb: VarBuilder) -> Result<Self> {
        config.feed_forward()?;
        let eps = config.layer_norm_epsilon;
        let d = config.d_model;
        let name = EMBEDDING_NAMES.iter().find(|n| vb.contains_tensor(n)).copied().unwrap_or(EMBEDDING_NAMES[0]);
        let embedding = Embedding::new(vb.get((config.vocab_size, d), name)?, d);
        let stack = vb.pp("encoder");
        let blocks = (0..config.num_layers)
            .map(|i| -> Result<Block> {
                let layer = stack.pp(format!("block.{i}.layer"));
                Ok(Block {
                    attention_norm: RmsNorm::new(d, eps, layer.pp("0.layer_norm"))?,
                    attention: SelfAttention::new(config, layer.pp("0.SelfAttention"))?,
                    ff_norm: RmsNorm::new(d, eps, layer.pp("1.layer_norm"))?,
                    ff: FeedForward::new(config, layer.pp("1.DenseReluDense"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embedding,
            blocks,
            final_norm: RmsNorm::new(d, eps, stack.pp("final_layer_norm"))?,
            config: config.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads a `text_encoder/` folder in the transformers layout.
    pub fn load(folder: &ComponentFolder, dtype: DType, device: &Device) -> Result<Self> {
        let config: Umt5Config = folder.config()?;
        let weights = folder.weights(dtype, device)?;
        let model = Self::new(&config, weights.var_builder())?;
        // The tied copy of the embedding, when the checkpoint stores both names.
        weights.finish(&[EMBEDDING_NAMES[1]])?;
        Ok(model)
    }

    pub fn config(&self) -> &Umt5Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `input_ids` (batch, len) u32 and `attention_mask` (batch, len) of 0/1 -> the last hidden
    /// state (batch, len, d_model) in the model's dtype.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = input_ids.dims2()?;
        let buckets: Vec<u32> = (0..len as i64)
            .flat_map(|query| {
                (0..len as i64).map(move |key| {
                    relative_bucket(key - query, self.config.relative_attention_num_buckets, self.config.relative_attention_max_distance)
                })
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, (len, len), &self.device)?;
        // Padded keys get the most negative f32, as the reference's additive mask.
        let keep = attention_mask.to_dtype(DType::F32)?;
        let mask = ((1.0 - keep)? * f32::MIN as f64)?.reshape((batch, 1, 1, len))?;

        let mut x = self.embedding.forward(input_ids)?.to_dtype(self.dtype)?;
        for block in &self.blocks {
            let attended = block.attention.forward(&block.attention_norm.forward(&x)?, &buckets, &mask)?;
            x = (x + attended)?;
            let fed = block.ff.forward(&block.ff_norm.forward(&x)?)?;
            x = (x + fed)?;
        }
        Ok(self.final_norm.forward(&x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_match_t5_for_known_offsets() {
        // Reference values of transformers' _relative_position_bucket (bidirectional, 32 buckets,
        // max distance 128).
        let expected = [(0, 0), (1, 17), (-1, 1), (7, 23), (-7, 7), (8, 24), (-8, 8), (12, 25), (20, 26),
            (-40, 12), (64, 30), (127, 31), (-500, 15), (500, 31)];
        for (offset, bucket) in expected {
            assert_eq!(relative_bucket(offset, 32, 128), bucket, "offset {offset}");
        }
    }
}
