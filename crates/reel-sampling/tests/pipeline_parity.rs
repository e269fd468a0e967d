//! Whole text-to-video runs against diffusers' `WanPipeline` (scripts/fixtures/pipeline.py) on tiny
//! random checkpoints in the diffusers layout: prompt and negative prompt through tokenizer and
//! UMT5, the sampler from the same initial latents, the VAE, frames out; and image-to-video against
//! `WanImageToVideoPipeline` (scripts/fixtures/image_to_video.py for Wan 2.2 TI2V,
//! scripts/fixtures/wan21_i2v.py for Wan 2.1 I2V with its CLIP encoder and Wan 2.2 I2V-A14B). f32,
//! relative error 1e-4 over all frames.

use candle_core::{DType, Tensor};
use reel_models::testing::{assert_close, fixture, load_tensors, take, test_device};
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{GenerationRequest, VaeTiling, WanPipeline};
use reel_sampling::progress::Stage;

const TOLERANCE: f64 = 1e-4;

fn run(model: &str, case: &str) -> Vec<Stage> {
    run_with(model, case, |_, _| {})
}

fn run_with(model: &str, case: &str, adjust: impl FnOnce(&mut GenerationRequest, &std::collections::HashMap<String, Tensor>)) -> Vec<Stage> {
    let device = test_device();
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("parity/pipeline_{case}.json"))).unwrap()).unwrap();
    let tensors = load_tensors(&format!("parity/pipeline_{case}.safetensors"));
    let number = |key: &str| settings[key].as_u64().unwrap() as usize;
    let mut request = GenerationRequest::new(settings["prompt"].as_str().unwrap());
    request.negative_prompt = settings["negative_prompt"].as_str().unwrap().into();
    request.frames = number("frames");
    request.height = number("height");
    request.width = number("width");
    request.steps = number("num_inference_steps");
    request.guidance = settings["guidance_scale"].as_f64().unwrap();
    request.guidance_2 = settings.get("guidance_scale_2").and_then(|v| v.as_f64());
    request.init_latents = Some(take(&tensors, "latents"));
    request.vae_tiling = VaeTiling::Off;
    adjust(&mut request, &tensors);

    let pipeline = WanPipeline::new(WanCheckpoint::open(fixture(model)).unwrap(), DType::F32, &device);
    let mut stages = vec![];
    let generated = pipeline
        .generate(&request, &mut |p| {
            if stages.last() != Some(&p.stage) {
                stages.push(p.stage)
            }
        })
        .unwrap();
    let expected = take(&tensors, "frames").squeeze(0).unwrap();
    assert_close(case, &generated.frames, &expected, TOLERANCE);
    assert_eq!(generated.rgb8().unwrap().len(), request.frames);
    stages
}

#[test]
fn wan21_text_to_video_with_unipc_and_guidance() {
    let stages = run("tiny-wan2.1", "wan2.1_unipc");
    assert_eq!(
        stages,
        vec![
            Stage::Load("text_encoder"),
            Stage::EncodePrompt,
            Stage::Load("transformer"),
            Stage::Denoise,
            Stage::Load("vae"),
            Stage::Decode
        ]
    );
}

#[test]
fn wan22_ti2v_text_to_video() {
    run("tiny-wan2.2-ti2v", "ti2v_unipc");
}

#[test]
fn wan22_two_experts_text_to_video() {
    let stages = run("tiny-wan2.2-a14b", "a14b_unipc");
    assert!(stages.contains(&Stage::Load("transformer_2")), "{stages:?}");
}

#[test]
fn wan22_ti2v_image_to_video() {
    let stages = run_with("tiny-wan2.2-ti2v", "ti2v_image", |request, tensors| {
        let image = take(tensors, "image").to_dtype(DType::F32).unwrap() / 255.0;
        request.first_frames = Some(image.unwrap().unsqueeze(0).unwrap());
    });
    assert!(stages.contains(&Stage::EncodeFrames), "{stages:?}");
}

/// Wan 2.1 I2V: the image through CLIP into the transformer's image branch, and the mask and the
/// VAE's encoding of the image (then empty frames) joined to the latents' channels.
#[test]
fn wan21_i2v_image_to_video() {
    let stages = run_with("tiny-wan2.1-i2v", "wan2.1_i2v", |request, tensors| {
        let image = take(tensors, "image").to_dtype(DType::F32).unwrap() / 255.0;
        request.first_frames = Some(image.unwrap().unsqueeze(0).unwrap());
    });
    assert!(stages.contains(&Stage::EncodeFrames) && stages.contains(&Stage::Load("image_encoder")), "{stages:?}");
}

/// Wan 2.2 I2V-A14B: the same channels without CLIP, two experts with their own guidance.
#[test]
fn wan22_a14b_image_to_video() {
    let stages = run_with("tiny-wan2.2-i2v-a14b", "a14b_i2v", |request, tensors| {
        let image = take(tensors, "image").to_dtype(DType::F32).unwrap() / 255.0;
        request.first_frames = Some(image.unwrap().unsqueeze(0).unwrap());
    });
    assert!(stages.contains(&Stage::Load("transformer_2")) && !stages.contains(&Stage::Load("image_encoder")), "{stages:?}");
}

#[test]
fn an_image_to_video_model_asks_for_its_image() {
    let pipeline = WanPipeline::new(WanCheckpoint::open(fixture("tiny-wan2.1-i2v")).unwrap(), DType::F32, &test_device());
    let mut request = GenerationRequest::new("a red circle");
    (request.frames, request.height, request.width) = (9, 32, 48);
    let err = pipeline.generate(&request, &mut |_| {}).err().expect("no image").to_string();
    assert!(err.contains("starts from an image") && err.contains("--image"), "{err}");
}
