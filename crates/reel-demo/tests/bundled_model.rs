//! The bundled demo model (models/demo) follows its prompts: a small run of the evaluator on
//! held-out prompts (combinations never seen in training) must stay within a margin of the targets.
//!
//! The margin is 15 points: on 20 clips a proportion near 0.8 has a binomial standard error of
//! about 0.09, so 15 points (1.6 standard errors) absorbs the choice of prompts, while a model that
//! lost its grip on colour, shape or motion falls far below. The run is deterministic (seeded noise),
//! so it does not flicker from one CI run to the next.

use std::path::PathBuf;

use reel_demo::eval::{evaluate, held_out_cases, model_generator};

const CASES: usize = 20;
const MARGIN: f64 = 0.15;

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
fn held_out_prompts_score_within_the_margin_of_the_targets() {
    let cases = held_out_cases(CASES, 1);
    let mut generate = model_generator(&checkpoint()).unwrap();
    let report = evaluate(&cases, &mut generate, &mut |_, _| {}).unwrap();
    eprintln!("{}", report.table());
    let misses = report.misses(MARGIN);
    assert!(misses.is_empty(), "the demo model scores below its targets: {}", misses.join(", "));
}
