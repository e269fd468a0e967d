//! The work of each stage of text-to-video, from the model's configuration: floating-point
//! operations (a multiply-add counts two) and parameters. Counts follow reel's own implementation
//! layer by layer, so that they can be checked against instrumented runs.

use reel_models::umt5::Umt5Config;
use reel_models::wan::{WanTransformerConfig, WanVaeConfig};

/// Operations and parameters of one stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Work {
    pub flops: f64,
    pub parameters: f64,
    /// Layer calls (transformer blocks, convolutions): what per-call overheads are charged on.
    pub calls: f64,
    /// The FLOPs by the shape of their products: (rows, width, FLOPs), with the rows (tokens) and
    /// width (model width or head size) of matrix products, or 0 rows and the input channels of
    /// convolutions. Short and narrow products run far below a processor's peak.
    pub flops_by_shape: Vec<(usize, usize, f64)>,
}

impl Work {
    /// Adds `flops` done by products of `rows` by `width`.
    fn at(&mut self, rows: usize, width: usize, flops: f64) {
        self.flops += flops;
        match self.flops_by_shape.iter_mut().find(|(r, w, _)| (*r, *w) == (rows, width)) {
            Some((_, _, total)) => *total += flops,
            None => self.flops_by_shape.push((rows, width, flops)),
        }
    }
}

/// UMT5 encoding one prompt padded to `tokens` (Wan always pads to the full length).
pub fn text_encoder(config: &Umt5Config, tokens: usize) -> Work {
    let (l, d) = (tokens as f64, config.d_model as f64);
    let inner = (config.num_heads * config.d_kv) as f64;
    // Gated activations (UMT5's gated-gelu) have two input projections.
    let ffn_inputs = if config.feed_forward_proj.starts_with("gated") { 2.0 } else { 1.0 };
    let ffn = (ffn_inputs + 1.0) * d * config.d_ff as f64;
    let per_layer_params = 4.0 * d * inner + ffn + 2.0 * d + (config.relative_attention_num_buckets * config.num_heads) as f64;
    let layers = config.num_layers as f64;
    let mut work = Work { parameters: config.vocab_size as f64 * d + layers * per_layer_params + d, calls: layers, ..Work::default() };
    work.at(tokens, config.d_model, layers * 2.0 * l * (4.0 * d * inner + ffn));
    work.at(tokens, config.d_kv, layers * 4.0 * l * l * inner);
    work
}

/// One transformer forward over `tokens` video tokens attending to `text_tokens` prompt tokens.
pub fn transformer_forward(config: &WanTransformerConfig, tokens: usize, text_tokens: usize) -> Work {
    let flops = config.forward_flops(tokens, text_tokens);
    let mut work = Work { parameters: config.parameter_count() as f64, calls: config.num_layers as f64, ..Work::default() };
    work.at(tokens, config.inner_dim(), flops.linear);
    work.at(tokens, config.attention_head_dim, flops.self_attention + flops.cross_attention);
    work
}

/// Counts convolutions over a feature map of `voxels` positions.
struct ConvCounter {
    work: Work,
}

impl ConvCounter {
    /// A convolution with a kernel of `taps` positions from `c_in` to `c_out` channels, applied at
    /// `positions` output positions.
    fn conv(&mut self, taps: f64, c_in: usize, c_out: usize, positions: f64) {
        let weights = taps * c_in as f64 * c_out as f64;
        self.work.at(0, c_in, 2.0 * weights * positions);
        self.work.parameters += weights + c_out as f64;
        self.work.calls += 1.0;
    }

    /// Wan's residual block: two (RMS norm, 3x3x3 convolution) steps and a 1x1x1 shortcut when
    /// the width changes.
    fn residual(&mut self, c_in: usize, c_out: usize, positions: f64) {
        self.work.parameters += (c_in + c_out) as f64;
        self.conv(27.0, c_in, c_out, positions);
        self.conv(27.0, c_out, c_out, positions);
        if c_in != c_out {
            self.conv(1.0, c_in, c_out, positions);
        }
    }

    /// Single-head self-attention over each frame's `pixels` positions.
    fn frame_attention(&mut self, c: usize, frames: f64, pixels: f64) {
        self.work.parameters += c as f64;
        self.conv(1.0, c, 3 * c, frames * pixels);
        self.conv(1.0, c, c, frames * pixels);
        self.work.at(0, c, frames * 4.0 * pixels * pixels * c as f64);
    }
}

/// The VAE decoding `latent_frames` latent frames of `latent_height` x `latent_width`, walked as
/// reel's decoder is built: causal input convolution, middle block with attention, up blocks with
/// temporal and spatial upsampling, output convolution.
pub fn vae_decode(config: &WanVaeConfig, latent_frames: usize, latent_height: usize, latent_width: usize) -> Work {
    let dim = config.decoder_base_dim();
    let levels = config.dim_mult.len();
    let mults: Vec<usize> = std::iter::once(config.dim_mult[levels - 1]).chain(config.dim_mult.iter().rev().copied()).collect();
    let dims: Vec<usize> = mults.iter().map(|m| m * dim).collect();
    let temporal_upsample: Vec<bool> = config.temperal_downsample.iter().rev().copied().collect();
    let (mut t, mut h, mut w) = (latent_frames as f64, latent_height as f64, latent_width as f64);
    let mut count = ConvCounter { work: Work::default() };

    count.conv(27.0, config.z_dim, dims[0], t * h * w);
    count.residual(dims[0], dims[0], t * h * w);
    count.frame_attention(dims[0], t, h * w);
    count.residual(dims[0], dims[0], t * h * w);
    for i in 0..levels {
        let out_dim = dims[i + 1];
        let mut in_dim = dims[i];
        if i > 0 && !config.is_residual {
            in_dim /= 2;
        }
        for j in 0..=config.num_res_blocks {
            count.residual(if j == 0 { in_dim } else { out_dim }, out_dim, t * h * w);
        }
        if i == levels - 1 {
            break;
        }
        if temporal_upsample[i] {
            // Every frame but the first becomes two.
            count.conv(3.0, out_dim, 2 * out_dim, t * h * w);
            t = 1.0 + 2.0 * (t - 1.0);
        }
        let up_out = if config.is_residual { out_dim } else { out_dim / 2 };
        h *= 2.0;
        w *= 2.0;
        count.conv(9.0, out_dim, up_out, t * h * w);
    }
    count.work.parameters += dims[levels] as f64;
    count.conv(27.0, dims[levels], config.out_channels, t * h * w);
    // The decoder runs once per latent frame.
    count.work.calls *= latent_frames as f64;
    count.work
}

/// Parameters of the whole VAE: text-to-video runs only the decoder, but loads the encoder too.
pub fn vae_parameters(config: &WanVaeConfig) -> f64 {
    let dims: Vec<usize> = std::iter::once(1).chain(config.dim_mult.iter().copied()).map(|m| m * config.base_dim).collect();
    let levels = config.dim_mult.len();
    let z = config.z_dim;
    let mut encoder = ConvCounter { work: Work::default() };
    encoder.conv(27.0, config.in_channels, dims[0], 0.0);
    for i in 0..levels {
        let (mut c_in, c_out) = (dims[i], dims[i + 1]);
        for _ in 0..config.num_res_blocks {
            encoder.residual(c_in, c_out, 0.0);
            c_in = c_out;
        }
        if i != levels - 1 {
            encoder.conv(9.0, c_out, c_out, 0.0);
            if config.temperal_downsample[i] {
                encoder.conv(3.0, c_out, c_out, 0.0);
            }
        }
    }
    let last = dims[levels];
    encoder.residual(last, last, 0.0);
    encoder.frame_attention(last, 0.0, 0.0);
    encoder.residual(last, last, 0.0);
    encoder.work.parameters += last as f64;
    encoder.conv(27.0, last, 2 * z, 0.0);
    // quant_conv and post_quant_conv.
    encoder.conv(1.0, 2 * z, 2 * z, 0.0);
    encoder.conv(1.0, z, z, 0.0);
    encoder.work.parameters + vae_decode(config, 1, 1, 1).parameters
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_models::wan::published_model;

    #[test]
    fn parameter_counts_match_the_published_sizes() {
        let wan = published_model("wan2.1-t2v-1.3b").unwrap();
        let umt5 = text_encoder(&wan.text_encoder, 512).parameters;
        // UMT5-XXL's encoder: 5.68 billion parameters (its safetensors hold 5.68e9 values).
        assert!((umt5 / 5.68e9 - 1.0).abs() < 0.01, "{umt5:e}");
        let transformer = transformer_forward(&wan.transformer, 1, 1).parameters;
        assert!((transformer / 1.42e9 - 1.0).abs() < 0.02, "{transformer:e}");
    }

    /// The parameters the VAE walk counts are exactly those a checkpoint stores.
    #[test]
    fn vae_parameters_match_a_checkpoint_tensor_for_tensor() {
        let dir = reel_models::testing::fixture("tiny-wan2.1").join("vae");
        let config: WanVaeConfig = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join("diffusion_pytorch_model.safetensors")).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let count = |prefix: &str| -> f64 {
            tensors.tensors().iter().filter(|(name, _)| name.starts_with(prefix)).map(|(_, t)| t.shape().iter().product::<usize>() as f64).sum()
        };
        assert_eq!(vae_decode(&config, 1, 1, 1).parameters, count("decoder."));
        assert_eq!(vae_parameters(&config), count(""));
    }

    #[test]
    fn attention_grows_with_the_square_of_the_tokens() {
        let wan = published_model("wan2.1-t2v-14b").unwrap();
        let flops = |n| transformer_forward(&wan.transformer, n, 512).flops;
        let (one, two) = (flops(20_000), flops(40_000));
        // Linear parts double, attention quadruples: the ratio lies strictly between.
        assert!(two / one > 2.0 && two / one < 4.0, "{}", two / one);
        let decode = |frames| vae_decode(&wan.vae, frames, 60, 104).flops;
        assert!(decode(21) > 4.0 * decode(5), "more latent frames decode to proportionally more frames");
    }
}
