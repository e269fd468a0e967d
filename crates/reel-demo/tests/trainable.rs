//! Training changes parameters in place: every parameter a model reads must be the live one, not
//! a copy made when the model was built (a copy would silently never train).

use candle_core::{Device, Tensor};
use reel_demo::model;
use reel_demo::params::Params;
use reel_models::umt5::Umt5Encoder;
use reel_models::wan::{WanTransformer, WanVae};

/// Perturbs each parameter in turn and checks that the output moves. Zero-initialised layers
/// (the transformer's output projection) would hide everything behind them: all parameters get
/// fresh random values first.
fn assert_all_live(params: &Params, forward: &dyn Fn() -> Tensor) {
    for (_, var) in params.vars() {
        let random = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu).unwrap();
        var.set(&(var.as_tensor() + random).unwrap()).unwrap();
    }
    let base = forward();
    for (name, var) in params.vars() {
        let original = var.as_tensor().copy().unwrap();
        // Random, not constant: a constant shift of an attention bias changes nothing, rightly.
        let noise = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
        var.set(&(&original + noise).unwrap()).unwrap();
        let changed = (forward() - &base).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        var.set(&original).unwrap();
        assert!(changed > 0.0, "changing parameter {name} does not change the output");
    }
}

#[test]
fn vae_parameters_are_live() {
    let params = Params::new(1);
    let vae = WanVae::new(&model::vae_config(vec![0.0; 8], vec![1.0; 8]), params.var_builder()).unwrap();
    let video = Tensor::randn(0f32, 0.5, (1, 3, 5, 16, 16), &Device::Cpu).unwrap();
    assert_all_live(&params, &|| {
        let posterior = vae.encode(&video, None).unwrap();
        vae.decode_unclamped(&posterior.mean, None, &mut |_, _| {}).unwrap()
    });
}

#[test]
fn transformer_and_text_encoder_parameters_are_live() {
    let params = Params::new(2);
    let transformer = WanTransformer::new(&model::transformer_config(model::TRANSFORMER_LAYERS), params.var_builder()).unwrap();
    let latents = Tensor::randn(0f32, 1.0, (1, 8, 2, 4, 4), &Device::Cpu).unwrap();
    let context = Tensor::randn(0f32, 1.0, (1, 5, 64), &Device::Cpu).unwrap();
    let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
    assert_all_live(&params, &|| transformer.forward(&latents, &t, &context).unwrap());

    let params = Params::new(3);
    let encoder = Umt5Encoder::new(&model::text_encoder_config(40, model::TEXT_ENCODER_LAYERS), params.var_builder()).unwrap();
    let ids = Tensor::new(&[[3u32, 7, 9, 1]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1]], &Device::Cpu).unwrap();
    assert_all_live(&params, &|| encoder.forward(&ids, &mask).unwrap());
}
