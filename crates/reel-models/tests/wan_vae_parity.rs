//! The Wan VAE against diffusers' `AutoencoderKLWan` (scripts/fixtures/pipeline.py) in both variants:
//! encode (posterior mean and log-variance) and decode, chunked in time, untiled and tiled.
//! f32, relative error 1e-4 over the whole tensor.

use candle_core::DType;
use reel_models::testing::{assert_close, fixture, load_tensors, take, test_device};
use reel_models::wan::{Tiling, WanVae};
use reel_models::weights::ComponentFolder;

const TOLERANCE: f64 = 1e-4;

fn check(model: &str, case: &str) {
    let device = test_device();
    let vae = WanVae::load(&ComponentFolder::open(fixture(&format!("{model}/vae"))).unwrap(), DType::F32, &device).unwrap();
    let tensors = load_tensors(&format!("parity/vae_{case}.safetensors"));
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("parity/vae_{case}.json"))).unwrap()).unwrap();
    let tile = settings["tile"].as_u64().unwrap() as usize;
    let stride = settings["stride"].as_u64().unwrap() as usize;
    let tiling = Tiling { tile: (tile, tile), stride: (stride, stride) };
    let video = take(&tensors, "video").to_device(&device).unwrap();
    let latents = take(&tensors, "latents").to_device(&device).unwrap();

    let posterior = vae.encode(&video, None).unwrap();
    assert_close(&format!("{case} encode mean"), &posterior.mean, &take(&tensors, "encoded_mean"), TOLERANCE);
    assert_close(&format!("{case} encode logvar"), &posterior.logvar, &take(&tensors, "encoded_logvar"), TOLERANCE);
    let decoded = vae.decode(&latents, None).unwrap();
    assert_close(&format!("{case} decode"), &decoded, &take(&tensors, "decoded"), TOLERANCE);

    let tiled = vae.encode(&video, Some(tiling)).unwrap();
    assert_close(&format!("{case} tiled encode"), &tiled.mean, &take(&tensors, "tiled_encoded_mean"), TOLERANCE);
    let tiled = vae.decode(&latents, Some(tiling)).unwrap();
    assert_close(&format!("{case} tiled decode"), &tiled, &take(&tensors, "tiled_decoded"), TOLERANCE);
}

#[test]
fn wan21_vae_encode_and_decode() {
    check("tiny-wan2.1", "wan2.1");
}

#[test]
fn wan22_vae_encode_and_decode() {
    check("tiny-wan2.2-ti2v", "wan2.2");
}
