//! Layers take differentiable paths when their inputs track gradients (candle's fused kernels have
//! no backward pass); both paths must compute the same values, and gradients must flow.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use reel_models::nn::attention::scaled_dot_product_attention;
use reel_models::nn::norm::{LayerNormF32, RmsNorm};
use reel_models::nn::rope::Rope3d;
use reel_models::testing::assert_close;

fn random(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

fn check(name: &str, f: impl Fn(&Tensor) -> Tensor, x: &Tensor) {
    let plain = f(x);
    let var = Var::from_tensor(x).unwrap();
    let tracked = f(var.as_tensor());
    assert_close(name, &tracked, &plain, 1e-5);
    let grads = tracked.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let grad = grads.get(var.as_tensor()).expect("a gradient reaches the input");
    assert!(grad.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{name}: zero gradient");
}

#[test]
fn norms_attention_and_rope_agree_on_both_paths() {
    let mut weights = std::collections::HashMap::new();
    weights.insert("ln.weight".to_string(), random(&[16]));
    weights.insert("ln.bias".to_string(), random(&[16]));
    weights.insert("rms.weight".to_string(), random(&[16]));
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let ln = LayerNormF32::new(16, 1e-6, true, vb.pp("ln")).unwrap();
    let rms = RmsNorm::new(16, 1e-6, vb.pp("rms")).unwrap();
    let x = random(&[2, 5, 16]);
    check("layer norm", |x| ln.forward(x).unwrap(), &x);
    check("rms norm", |x| rms.forward(x).unwrap(), &x);

    let (k, v) = (random(&[1, 2, 7, 8]), random(&[1, 2, 7, 8]));
    check("attention", |q| scaled_dot_product_attention(q, &k, &v).unwrap(), &random(&[1, 2, 5, 8]));

    let rope = Rope3d::new(12, (2, 2, 3), 10000.0, &Device::Cpu).unwrap();
    check("rope", |x| rope.apply(x).unwrap(), &random(&[1, 2, 12, 12]));
}
