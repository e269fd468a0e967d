//! The Wan transformer against diffusers' `WanTransformer3DModel` on tiny random checkpoints saved in
//! the reference layout (scripts/fixtures/engine.py). Tolerances: f32 1e-4, bf16 2e-2 relative error
//! over the whole output; weights quantized to int8 at load (q8) 5e-2 against the f32 reference.

use candle_core::DType;
use reel_models::nn::linear::{with_quantization, Quantization};
use reel_models::testing::{assert_close, fixture, load_tensors, take, test_device};
use reel_models::wan::WanTransformer;
use reel_models::weights::ComponentFolder;

const F32_TOLERANCE: f64 = 1e-4;
const BF16_TOLERANCE: f64 = 2e-2;
/// Q8_0 rounds each linear layer's weights and inputs to 8 bits per 32-value block (about 0.6% rms
/// each); the errors of the layers add up through the blocks.
const Q8_TOLERANCE: f64 = 5e-2;

fn check(model_dir: &str, case: &str) {
    let device = test_device();
    let folder = ComponentFolder::open(fixture(model_dir)).unwrap();
    let tensors = load_tensors(&format!("parity/transformer_{case}.safetensors"));
    let latents = take(&tensors, "latents").to_device(&device).unwrap();
    let timestep = take(&tensors, "timestep").to_device(&device).unwrap();
    let context = take(&tensors, "context").to_device(&device).unwrap();

    for (dtype, expected, tolerance) in [
        (DType::F32, "output_f32", F32_TOLERANCE),
        (DType::BF16, "output_bf16", BF16_TOLERANCE),
    ] {
        let model = WanTransformer::load(&folder, dtype, &device).unwrap();
        let output = model.forward(&latents, &timestep, &context).unwrap();
        assert_eq!(output.dtype(), dtype);
        assert_close(&format!("{case} {dtype:?}"), &output, &take(&tensors, expected), tolerance);
    }
    let quantized = with_quantization(Some(Quantization::Q8), || WanTransformer::load(&folder, DType::F32, &device)).unwrap();
    let output = quantized.forward(&latents, &timestep, &context).unwrap();
    assert_close(&format!("{case} q8"), &output, &take(&tensors, "output_f32"), Q8_TOLERANCE);
}

#[test]
fn wan21_sharded_f32_checkpoint_with_batch_of_two() {
    check("tiny-wan2.1/transformer", "wan2.1");
}

#[test]
fn wan21_fractional_timestep() {
    check("tiny-wan2.1/transformer", "wan2.1_float_t");
}

#[test]
fn wan22_ti2v_bf16_checkpoint_with_per_token_timesteps() {
    check("tiny-wan2.2-ti2v/transformer", "wan2.2_ti2v");
}

/// A GGUF file in the community's layout (original Wan names, Q8_0 linear weights, F16 norms, a
/// flattened 5-D patch embedding; scripts/fixtures/gguf_wan.py) against diffusers with the
/// unquantized weights.
#[test]
fn wan21_gguf_q8_checkpoint() {
    let device = test_device();
    let tensors = load_tensors("parity/transformer_gguf.safetensors");
    let model = WanTransformer::load_gguf(&fixture("tiny-wan2.1-gguf/transformer.gguf"), DType::F32, &device).unwrap();
    assert_eq!(model.config().num_layers, 2);
    let output = model
        .forward(&take(&tensors, "latents").to_device(&device).unwrap(), &take(&tensors, "timestep").to_device(&device).unwrap(), &take(&tensors, "context").to_device(&device).unwrap())
        .unwrap();
    assert_close("gguf q8", &output, &take(&tensors, "output_f32"), Q8_TOLERANCE);
}

/// Wan2.1-I2V's transformer (scripts/fixtures/wan21_i2v.py): latents with the mask and image
/// channels, cross-attention to the prompt plus the CLIP image tokens through the image branch.
#[test]
fn wan21_i2v_image_branch() {
    let device = test_device();
    let folder = ComponentFolder::open(fixture("tiny-wan2.1-i2v/transformer")).unwrap();
    let tensors = load_tensors("parity/transformer_wan2.1_i2v.safetensors");
    let input = |name: &str| take(&tensors, name).to_device(&device).unwrap();
    let (latents, timestep, context, image) = (input("latents"), input("timestep"), input("context"), input("image"));
    for (dtype, expected, tolerance) in [(DType::F32, "output_f32", F32_TOLERANCE), (DType::BF16, "output_bf16", BF16_TOLERANCE)] {
        let model = WanTransformer::load(&folder, dtype, &device).unwrap();
        assert!(model.takes_image_tokens());
        let prepared = model.prepare_prompt(&context, Some(&image)).unwrap();
        let output = model.forward_prepared(&latents, &timestep, &prepared).unwrap();
        assert_close(&format!("wan2.1 i2v {dtype:?}"), &output, &take(&tensors, expected), tolerance);
        // Without its image the model refuses to run rather than ignore the branch.
        let err = model.forward(&latents, &timestep, &context).unwrap_err().to_string();
        assert!(err.contains("CLIP tokens"), "{err}");
    }
}
