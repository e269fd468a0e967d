//! Whole denoising loops against diffusers' `WanPipeline` (scripts/fixtures/engine.py) from the same
//! latents and prompt embeddings: classifier-free guidance, the two-expert switch of Wan2.2 A14B,
//! per-token timesteps of Wan2.2 TI2V, both schedulers. f32, relative error 1e-4.

use candle_core::DType;
use reel_models::testing::{assert_close, fixture, load_tensors, take, test_device};
use reel_models::wan::WanTransformer;
use reel_models::weights::ComponentFolder;
use reel_sampling::progress::{Progress, Stage};
use reel_sampling::sampler::{Denoiser, Expert, Guidance};
use reel_sampling::scheduler::SchedulerConfig;

const TOLERANCE: f64 = 1e-4;

fn settings(case: &str) -> serde_json::Value {
    let path = fixture(&format!("parity/sampler_{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run(case: &str, mut denoiser: Denoiser, scheduler: SchedulerConfig) -> Vec<Progress> {
    let device = test_device();
    let tensors = load_tensors(&format!("parity/sampler_{case}.safetensors"));
    let settings = settings(case);
    let steps = settings["steps"].as_u64().unwrap() as usize;
    let guidance = Guidance {
        scale: settings["guidance_scale"].as_f64().unwrap(),
        scale_2: settings.get("guidance_scale_2").and_then(|v| v.as_f64()),
    };
    let mut scheduler = scheduler.build(steps).unwrap();
    let expected_timesteps = take(&tensors, "timesteps").to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(scheduler.timesteps(), expected_timesteps.as_slice());

    let latents = take(&tensors, "latents").to_device(&device).unwrap();
    let cond = take(&tensors, "prompt_embeds").to_device(&device).unwrap();
    let uncond = take(&tensors, "negative_prompt_embeds").to_device(&device).unwrap();
    let mut events = vec![];
    let out = denoiser
        .denoise(scheduler.as_mut(), latents, &cond, Some(&uncond), guidance, &mut |p| events.push(p))
        .unwrap();
    assert_close(case, &out, &take(&tensors, "output"), TOLERANCE);
    events
}

fn load(dir: &str) -> WanTransformer {
    WanTransformer::load(&ComponentFolder::open(fixture(dir)).unwrap(), DType::F32, &test_device()).unwrap()
}

#[test]
fn two_experts_switch_at_the_boundary_with_unipc_and_two_guidance_scales() {
    let root = fixture("tiny-wan2.2-a14b");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("model_index.json")).unwrap()).unwrap();
    let boundary = index["boundary_ratio"].as_f64().unwrap();
    let device = test_device();
    // The experts load from disk when first needed, as a real run does to save memory.
    let high = Expert::on_disk(ComponentFolder::open(root.join("transformer")).unwrap(), DType::F32, &device, "transformer");
    let low = Expert::on_disk(ComponentFolder::open(root.join("transformer_2")).unwrap(), DType::F32, &device, "transformer_2");
    let denoiser = Denoiser::two_experts(high, low, boundary).unwrap();
    let scheduler = SchedulerConfig::from_file(&root.join("scheduler/scheduler_config.json")).unwrap();
    let events = run("a14b_unipc", denoiser, scheduler);

    let loads: Vec<Stage> = events.iter().filter(|p| p.done == 1 && matches!(p.stage, Stage::Load(_))).map(|p| p.stage).collect();
    assert_eq!(loads, vec![Stage::Load("transformer"), Stage::Load("transformer_2")]);
    let steps = events.iter().filter(|p| p.stage == Stage::Denoise).count();
    assert_eq!(steps, 4);
}

#[test]
fn single_transformer_with_flow_euler() {
    let denoiser = Denoiser::single(Expert::loaded(load("tiny-wan2.1/transformer")));
    let scheduler = SchedulerConfig::from_json(
        r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 5.0}"#,
    )
    .unwrap();
    run("wan2.1_euler", denoiser, scheduler);
}

#[test]
fn ti2v_with_per_token_timesteps() {
    let denoiser = Denoiser::single(Expert::loaded(load("tiny-wan2.2-ti2v/transformer"))).with_expand_timesteps(true);
    let scheduler = SchedulerConfig::UniPc(reel_sampling::scheduler::UniPcConfig::wan(5.0));
    run("ti2v_unipc", denoiser, scheduler);
}

#[test]
fn guidance_without_negative_embeddings_is_an_error() {
    let mut denoiser = Denoiser::single(Expert::loaded(load("tiny-wan2.1/transformer")));
    let mut scheduler = SchedulerConfig::UniPc(reel_sampling::scheduler::UniPcConfig::wan(3.0)).build(2).unwrap();
    let tensors = load_tensors("parity/sampler_wan2.1_euler.safetensors");
    let guidance = Guidance { scale: 5.0, scale_2: None };
    let err = denoiser
        .denoise(scheduler.as_mut(), take(&tensors, "latents"), &take(&tensors, "prompt_embeds"), None, guidance, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("negative prompt"), "{err}");
    let guidance = Guidance { scale: 5.0, scale_2: Some(3.0) };
    let uncond = take(&tensors, "negative_prompt_embeds");
    let err = denoiser
        .denoise(scheduler.as_mut(), take(&tensors, "latents"), &take(&tensors, "prompt_embeds"), Some(&uncond), guidance, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("two-expert"), "{err}");
}
