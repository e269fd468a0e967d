//! Seeded noise against torch's CPU generator (`torch.Generator("cpu").manual_seed(seed)` then
//! `torch.randn`), scripts/fixtures/pipeline.py. torch's vectorised log/sin/cos differ from libm in
//! the last bits, so the comparison is at f32 relative error 1e-5, not bit equality.

use candle_core::Device;
use reel_models::testing::{assert_close, load_tensors, take};
use reel_sampling::noise::seeded_noise;

#[test]
fn seeds_reproduce_torch_randn() {
    let tensors = load_tensors("parity/noise.safetensors");
    assert_eq!(tensors.len(), 4);
    for (name, expected) in &tensors {
        let seed: u64 = name.strip_prefix("seed_").unwrap().parse().unwrap();
        let noise = seeded_noise(seed, expected.dims(), &Device::Cpu).unwrap();
        assert_close(name, &noise, &take(&tensors, name), 1e-5);
    }
}

#[test]
fn different_seeds_give_different_noise() {
    let a = seeded_noise(1, (4, 64), &Device::Cpu).unwrap();
    let b = seeded_noise(2, (4, 64), &Device::Cpu).unwrap();
    let diff = (a - b).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff > 0.5, "noise of two seeds differs by only {diff}");
}
