//! The estimator's FLOP count of a Wan transformer forward equals the count of the matrix products
//! reel's transformer actually performs (recorded by its linear and attention layers), on the tiny
//! checkpoints of both latent layouts with fresh random inputs.

use candle_core::{DType, Device, Tensor};
use reel_estimate::cost::transformer_forward;
use reel_models::nn::flops::count_flops;
use reel_models::testing::fixture;
use reel_models::wan::{WanTransformer, WanTransformerConfig};
use reel_models::weights::ComponentFolder;

fn check(model: &str, frames: usize, height: usize, width: usize, text_tokens: usize) {
    let dir = fixture(model).join("transformer");
    let config: WanTransformerConfig = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let transformer = WanTransformer::load(&ComponentFolder::open(&dir).unwrap(), DType::F32, &Device::Cpu).unwrap();
    let latents = Tensor::randn(0f32, 1.0, (1, config.in_channels, frames, height, width), &Device::Cpu).unwrap();
    let timestep = Tensor::new(&[617.25f32], &Device::Cpu).unwrap();
    let context = Tensor::randn(0f32, 1.0, (1, text_tokens, config.text_dim), &Device::Cpu).unwrap();

    let (output, counted) = count_flops(|| transformer.forward(&latents, &timestep, &context));
    output.unwrap();
    let (pt, ph, pw) = config.patch();
    let tokens = frames / pt * (height / ph) * (width / pw);
    let formula = transformer_forward(&config, tokens, text_tokens).flops;
    assert!(counted > 0.0);
    assert!((formula - counted).abs() <= 1e-9 * counted, "{model}: the formula gives {formula:e} FLOPs, the forward did {counted:e}");
}

#[test]
fn wan21_transformer_flops_equal_the_instrumented_count() {
    check("tiny-wan2.1", 3, 8, 12, 7);
}

#[test]
fn wan22_transformer_flops_equal_the_instrumented_count() {
    check("tiny-wan2.2-ti2v", 2, 6, 10, 5);
}

#[test]
fn text_encoder_flops_equal_the_instrumented_count() {
    use reel_estimate::cost::text_encoder;
    use reel_models::umt5::{Umt5Config, Umt5Encoder};
    let dir = fixture("tiny-wan2.1").join("text_encoder");
    let config: Umt5Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let encoder = Umt5Encoder::load(&ComponentFolder::open(&dir).unwrap(), DType::F32, &Device::Cpu).unwrap();
    let tokens = 9usize;
    let ids: Vec<u32> = (0..tokens as u32).map(|i| (i * 37 + 5) % config.vocab_size as u32).collect();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let (output, counted) = count_flops(|| encoder.forward(&ids, &ids.ones_like().unwrap()));
    output.unwrap();
    let formula = text_encoder(&config, tokens).flops;
    assert!((formula - counted).abs() <= 1e-9 * counted, "the formula gives {formula:e} FLOPs, the encoder did {counted:e}");
}
