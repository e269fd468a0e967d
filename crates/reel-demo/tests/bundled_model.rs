//! The bundled demo model (models/demo) on held-out prompts (combinations never seen in training):
//! a small, deterministic run of the evaluator (seeded prompts and noise, so it does not flicker).
//!
//! The committed model does NOT reach the targets of its design (colour 90%, motion 80%, shape 70%,
//! count 80%): its card reports colour 95.0%, shape 18.7%, count 70%, motion 55.4% on 50 prompts.
//! Until a better-trained model replaces it, this test guards what it does achieve, so that a
//! change to the pipeline, the loader or the evaluator that breaks it fails CI: on these 20 prompts
//! it finds the prompt's colour in 100% of the objects and scores 97.3% frame-to-frame consistency;
//! the floors sit about three binomial standard errors (3 x 9 points) or more below, where a
//! model that draws nothing or noise (0% colour) falls far under. When a model meets the targets, the check
//! returns to `report.misses(margin)` against them.

use std::path::PathBuf;

use reel_demo::eval::{evaluate, first_frame_generator, held_out_cases, model_generator};

const CASES: usize = 20;
const COLOUR_FLOOR: f64 = 0.55;
const CONSISTENCY_FLOOR: f64 = 0.40;
/// Most a given first frame's object pixels may differ from the render (mean level, 0..255): the VAE
/// redraws edges, so a few levels to a few tens are expected.
const GIVEN_FRAME_OFF: f64 = 30.0;

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
    let mut generate = model_generator(&checkpoint(), Default::default()).unwrap();
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

/// Image-to-video and windows with the bundled model: started from the world's own first frame of
/// held-out prompts and continued for a second window. On these four prompts the object moves
/// 2.45 px per frame at joins against 1.70 inside windows (ratio 1.44; four prompts measure noisily: over
/// 8 and 16 other prompts the ratio is 1.12 and 0.70), frames change about as much across joins as inside
/// (pixel ratio 0.95), and the first frame's colour is kept in three of the four. The floors: at least one of these
/// four videos keeps its colour, and a join may
/// not move the object more than twice as far per frame as the windows do (a cut to unrelated
/// content measures 2 to 5 times).
#[test]
fn the_bundled_model_starts_from_a_first_frame_and_joins_windows_smoothly() {
    let generator = reel_demo::eval::CaseGenerator::open(&checkpoint(), Default::default()).unwrap();
    let cases = held_out_cases(4, 2);
    let report = reel_demo::continuity::evaluate_continuity(&generator, &cases, 2, &mut |_, _| {}).unwrap();
    eprintln!("{}", report.table());
    assert!(report.colour_kept >= 0.25, "no video kept its first frame's colour:\n{}", report.table());
    assert!(report.position_jump_ratio < 2.0, "the joins jump:\n{}", report.table());
}

/// `reel eval demo --from-first-frame`: each clip starts from the world's own first frame of its
/// prompt, so its first frame shows the render's objects where they are (through the VAE), while a
/// clip from the prompt alone places its own. Measured on the render's object pixels (mean level
/// difference): on these three prompts the given first frames are off by 7.0 to 19.7 levels, those
/// from the prompt alone by 48.8 to 80.0 (objects drawn elsewhere leave backdrop under the render's).
#[test]
fn from_first_frame_clips_start_from_the_worlds_render() {
    let object_difference = |frame: &[u8], render: &[u8]| {
        let pixels: Vec<f64> = frame
            .chunks(3)
            .zip(render.chunks(3))
            .filter(|(_, r)| reel_demo::analysis::is_object_pixel(r))
            .map(|(f, r)| f.iter().zip(r).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / 3.0)
            .collect();
        pixels.iter().sum::<f64>() / pixels.len() as f64
    };
    let mut from_frame = first_frame_generator(&checkpoint(), Default::default()).unwrap();
    let mut from_prompt = model_generator(&checkpoint(), Default::default()).unwrap();
    for case in held_out_cases(3, 4) {
        let render = case.scene.render().swap_remove(0);
        let (given, drawn) = (from_frame(&case).unwrap(), from_prompt(&case).unwrap());
        assert_eq!(given.len(), drawn.len(), "{}", case.prompt);
        let (given_off, drawn_off) = (object_difference(&given[0], &render), object_difference(&drawn[0], &render));
        eprintln!("{}: object pixels off the render by {given_off:.1} levels, {drawn_off:.1} from the prompt alone", case.prompt);
        assert!(given_off < GIVEN_FRAME_OFF && given_off < drawn_off / 2.0, "{}: {given_off:.1} against {drawn_off:.1}", case.prompt);
    }
}
