//! Schedulers against diffusers' traces (scripts/fixtures/engine.py): timesteps and sigmas of the
//! schedule, and a whole chain of `step` calls on random model outputs, f32 relative error 1e-4.

use candle_core::{DType, Tensor};
use reel_models::testing::{assert_close, fixture, load_tensors, take};
use reel_sampling::scheduler::{SchedulerChoice, SchedulerConfig};

const TOLERANCE: f64 = 1e-4;

fn check_trace(name: &str, expected_choice: SchedulerChoice) {
    let dir = format!("parity/scheduler_{name}");
    let config = SchedulerConfig::from_file(&fixture(&format!("{dir}/scheduler_config.json"))).unwrap();
    assert_eq!(config.choice(), expected_choice);
    let trace = load_tensors(&format!("{dir}/trace.safetensors"));
    let expected_timesteps = take(&trace, "timesteps").to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    let expected_sigmas = take(&trace, "sigmas").to_vec1::<f32>().unwrap();
    let samples = take(&trace, "samples");
    let outputs = take(&trace, "model_outputs");

    let mut scheduler = config.build(expected_timesteps.len()).unwrap();
    assert_eq!(scheduler.timesteps(), expected_timesteps.as_slice(), "{name}: timesteps");
    let sigma_error = scheduler
        .sigmas()
        .iter()
        .zip(&expected_sigmas)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(scheduler.sigmas().len(), expected_sigmas.len(), "{name}: number of sigmas");
    assert!(sigma_error <= 1e-6, "{name}: sigmas differ by {sigma_error}");

    let mut sample: Tensor = samples.get(0).unwrap();
    for i in 0..expected_timesteps.len() {
        sample = scheduler.step(&outputs.get(i).unwrap(), &sample).unwrap();
        assert_close(&format!("{name} step {i}"), &sample, &samples.get(i + 1).unwrap(), TOLERANCE);
    }
    assert!(scheduler.step(&outputs.get(0).unwrap(), &sample).is_err(), "stepping past the end must fail");
}

#[test]
fn unipc_with_wans_published_config() {
    check_trace("unipc_wan", SchedulerChoice::UniPc);
}

#[test]
fn unipc_with_shift_5() {
    check_trace("unipc_shift5", SchedulerChoice::UniPc);
}

#[test]
fn unipc_bh1_third_order() {
    check_trace("unipc_bh1", SchedulerChoice::UniPc);
}

#[test]
fn flow_euler_with_shift_5() {
    check_trace("euler_shift5", SchedulerChoice::Euler);
}

#[test]
fn flow_euler_without_shift() {
    check_trace("euler_shift1", SchedulerChoice::Euler);
}

#[test]
fn unsupported_options_and_classes_are_rejected_by_name() {
    let err = SchedulerConfig::from_json(r#"{"_class_name": "DDIMScheduler"}"#).unwrap_err().to_string();
    assert!(err.contains("DDIMScheduler") && err.contains("--scheduler"), "{err}");
    let err = SchedulerConfig::from_json(
        r#"{"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": true,
            "prediction_type": "flow_prediction", "use_karras_sigmas": true}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("use_karras_sigmas"), "{err}");
    let err = SchedulerConfig::from_json(r#"{"_class_name": "UniPCMultistepScheduler"}"#).unwrap_err().to_string();
    assert!(err.contains("flow_prediction"), "{err}");
    let err = SchedulerConfig::from_json("{not json").unwrap_err().to_string();
    assert!(err.contains("invalid scheduler config"), "{err}");
}

#[test]
fn switching_scheduler_keeps_the_shift() {
    let path = fixture("parity/scheduler_unipc_shift5/scheduler_config.json");
    let unipc = SchedulerConfig::from_file(&path).unwrap();
    let euler = unipc.clone().with_choice(SchedulerChoice::Euler);
    assert_eq!(euler.choice(), SchedulerChoice::Euler);
    assert_eq!(euler.shift(), 5.0);
    let shifted = unipc.with_shift(2.5).unwrap();
    assert_eq!(shifted.shift(), 2.5);
    // A smaller shift spends fewer steps at high noise: the second timestep is lower.
    let steps = |c: &SchedulerConfig| c.build(6).unwrap().timesteps()[1];
    assert!(steps(&shifted) < steps(&SchedulerConfig::from_file(&path).unwrap()));
}
