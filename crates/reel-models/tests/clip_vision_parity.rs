//! CLIP's image preprocessing and vision encoder against transformers' `CLIPImageProcessor` (PIL backend) and
//! `CLIPVisionModel` on a tiny random checkpoint (scripts/fixtures/clip_vision.py). Tolerances: Pillow's
//! resized bytes and the pixel values are exact (every bit); the penultimate hidden states 1e-4 relative
//! error in f32, 2e-2 in bf16, over the whole output.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use reel_models::clip::resample::{self, Filter};
use reel_models::clip::{ClipImageProcessor, ClipVisionEncoder};
use reel_models::testing::{assert_close, copy_dir, fixture, load_tensors, take, test_device};
use reel_models::weights::ComponentFolder;
use reel_models::ModelError;

const F32_TOLERANCE: f64 = 1e-4;
const BF16_TOLERANCE: f64 = 2e-2;
const PARITY: &str = "parity/clip_vision.safetensors";
const ENCODER: &str = "tiny-clip-vision/image_encoder";

/// An 8-bit (height, width, 3) image of the fixture: (bytes, width, height).
fn image(tensors: &std::collections::HashMap<String, Tensor>, name: &str) -> (Vec<u8>, usize, usize) {
    let image = take(tensors, name);
    let (height, width, _) = image.dims3().unwrap();
    (image.flatten_all().unwrap().to_vec1::<u8>().unwrap(), width, height)
}

/// Asserts two f32 tensors are equal to the bit, reporting how many values differ and by how much.
fn assert_identical(case: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.dims(), expected.dims(), "{case}: shapes differ");
    let a = actual.to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let e = expected.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let differing: Vec<f32> = a.iter().zip(&e).filter(|(x, y)| x.to_bits() != y.to_bits()).map(|(x, y)| (x - y).abs()).collect();
    let worst = differing.iter().copied().fold(0f32, f32::max);
    assert!(differing.is_empty(), "{case}: {} of {} values differ, by up to {worst:e}", differing.len(), e.len());
    eprintln!("{case}: all {} values identical", e.len());
}

#[test]
fn resizes_equal_pillow_byte_for_byte() {
    let tensors = load_tensors(PARITY);
    let mut cases = 0;
    while let Some(spec) = tensors.get(&format!("resize.{cases}.spec")) {
        let [index, code, width, height] = <[i64; 4]>::try_from(spec.to_vec1::<i64>().unwrap()).unwrap();
        let filter = Filter::from_pil(code).unwrap();
        let (pixels, w, h) = image(&tensors, &format!("image.{index}"));
        let resized = resample::resize(&pixels, (w, h), 3, (width as usize, height as usize), filter);
        let expected = take(&tensors, &format!("resize.{cases}")).flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let differing = resized.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(
            (resized.len(), differing),
            (expected.len(), 0),
            "{filter:?} {w}x{h} -> {width}x{height}: bytes differ from Pillow's"
        );
        cases += 1;
    }
    assert!(cases >= 10, "the fixture should hold resize cases, found {cases}");
    eprintln!("{cases} resizes identical to Pillow's");
}

#[test]
fn pixel_values_equal_transformers_exactly() {
    let tensors = load_tensors(PARITY);
    let device = test_device();
    for (dir, expected) in [("tiny-clip-vision/image_processor", "pixel_values"), ("parity/clip_vision_padded", "pixel_values_padded")] {
        let processor = ClipImageProcessor::load(fixture(dir)).unwrap();
        let expected = take(&tensors, expected);
        for i in 0..expected.dim(0).unwrap() {
            let (pixels, width, height) = image(&tensors, &format!("image.{i}"));
            let values = processor.pixel_values(&pixels, width, height, &device).unwrap();
            assert_identical(&format!("{dir} image {i} ({width}x{height})"), &values, &expected.narrow(0, i, 1).unwrap());
        }
    }
}

fn check_encoder(folder: &Path, dtype: DType, expected: &str, tolerance: f64) {
    let device = test_device();
    let tensors = load_tensors(PARITY);
    let model = ClipVisionEncoder::load(&ComponentFolder::open(folder).unwrap(), dtype, &device).unwrap();
    let pixel_values = take(&tensors, "pixel_values").to_device(&device).unwrap();
    let hidden = model.penultimate_hidden_states(&pixel_values).unwrap();
    assert_eq!(hidden.dtype(), dtype);
    assert_close(&format!("{expected} ({dtype:?})"), &hidden, &take(&tensors, expected), tolerance);
}

#[test]
fn penultimate_hidden_states_match_f32_and_bf16() {
    check_encoder(&fixture(ENCODER), DType::F32, "hidden_states_f32", F32_TOLERANCE);
    check_encoder(&fixture(ENCODER), DType::BF16, "hidden_states_bf16", BF16_TOLERANCE);
}

/// A copy of the tiny encoder whose config.json has `hidden_act` replaced.
fn with_activation(dir: &Path, activation: &str) {
    copy_dir(&fixture(ENCODER), dir);
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["hidden_act"] = activation.into();
    std::fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn quick_gelu_checkpoints_match() {
    let dir = tempfile::tempdir().unwrap();
    with_activation(dir.path(), "quick_gelu");
    check_encoder(dir.path(), DType::F32, "hidden_states_quick_gelu_f32", F32_TOLERANCE);
}

/// transformers 4 wrote `vision_model.`-prefixed names, `CLIPVisionModelWithProjection` adds its projection and
/// old versions the position ids: the layout of diffusers' Wan2.1 image encoders.
#[test]
fn transformers_4_layout_with_projection_loads() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(ENCODER);
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> =
        load_tensors(&format!("{ENCODER}/model.safetensors")).into_iter().map(|(name, t)| (format!("vision_model.{name}"), t)).collect();
    tensors.insert("visual_projection.weight".into(), Tensor::zeros((16, 32), DType::F32, &Device::Cpu).unwrap());
    tensors.insert("vision_model.embeddings.position_ids".into(), Tensor::arange(0i64, 17, &Device::Cpu).unwrap().unsqueeze(0).unwrap());
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    check_encoder(dir.path(), DType::F32, "hidden_states_f32", F32_TOLERANCE);
}

#[test]
fn unsupported_activation_names_the_file_and_value() {
    let dir = tempfile::tempdir().unwrap();
    with_activation(dir.path(), "relu");
    let error = ClipVisionEncoder::load(&ComponentFolder::open(dir.path()).unwrap(), DType::F32, &Device::Cpu).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ModelError::Unsupported(_)), "{message}");
    assert!(message.contains("config.json") && message.contains("\"relu\""), "{message}");
}

#[test]
fn wrong_pixel_values_are_named() {
    let model = ClipVisionEncoder::load(&ComponentFolder::open(fixture(ENCODER)).unwrap(), DType::F32, &Device::Cpu).unwrap();
    let cases = [
        ((2, 4, 32, 32), "have 4 channels, this CLIP vision encoder takes 3"),
        ((1, 3, 24, 32), "are 24x32 (height x width), this CLIP vision encoder takes 32x32"),
    ];
    for (shape, expected) in cases {
        let error = model.penultimate_hidden_states(&Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()).unwrap_err();
        assert!(matches!(&error, ModelError::InvalidInput(m) if m.contains(expected)), "{shape:?}: {error}");
    }
    let error = model.penultimate_hidden_states(&Tensor::zeros((3, 32, 32), DType::F32, &Device::Cpu).unwrap()).unwrap_err();
    assert!(error.to_string().contains("must be (batch, channels, height, width), found shape [3, 32, 32]"), "{error}");
}
