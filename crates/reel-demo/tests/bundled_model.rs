//! The bundled demo model (models/demo) on held-out prompts (combinations never seen in training):
//! a small, deterministic run of the evaluator (seeded prompts and noise, so it does not flicker).
//!
//! The committed model does NOT reach the targets of its design (colour 90%, motion 80%, shape 70%,
//! count 80%): its card reports colour 93.7%, shape 32.3%, count 66%, motion 59.6% on 50 prompts.
//! Until a better-trained model replaces it, this test guards what it does achieve, so that a
//! change to the pipeline, the loader or the evaluator that breaks it fails CI: on these 20 prompts
//! it finds the prompt's colour in 100% of the objects and scores 98.5% frame-to-frame consistency;
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
/// held-out prompts and continued for a second window. On these eight prompts the first frame's
/// colour is kept in all eight and no join jumps (the ratio of the mean steps is 0.46: 1.05 px per
/// frame at joins against 2.27 inside windows). The models before (runs 29 and 27 on its card)
/// each jumped in one video of these: a three-object video whose join moved an object 24.5 px
/// against 5.4 inside its windows, which alone lifted run 29's ratio of means to 2.17 (the six
/// others' ratios lay between 0.6 and 1.4). So the floor is on jumping videos, not on a ratio of
/// means that one video can swing: at most two of the eight may jump, where a cut to unrelated
/// content (2 to 5 times the step) would jump in most; and at least two keep their colour.
#[test]
fn the_bundled_model_starts_from_a_first_frame_and_joins_windows_smoothly() {
    let generator = reel_demo::eval::CaseGenerator::open(&checkpoint(), Default::default()).unwrap();
    let cases = held_out_cases(8, 2);
    let report = reel_demo::continuity::evaluate_continuity(&generator, &cases, 2, &mut |_, _| {}).unwrap();
    eprintln!("{}", report.table());
    assert!(report.colour_kept >= 0.25, "no video kept its first frame's colour:\n{}", report.table());
    assert!(report.jumping_videos <= 0.25, "the joins jump:\n{}", report.table());
}

/// `reel eval demo --from-first-frame`: each clip starts from the world's own first frame of its
/// prompt, so its first frame shows the render's objects where they are (through the VAE), while a
/// clip from the prompt alone places its own. Measured on the render's object pixels (mean level
/// difference): on these three prompts the given first frames are off by 7.0 to 16.4 levels (mean
/// 12.6), those from the prompt alone by 19.6 to 70.6 (mean 53.2: objects drawn elsewhere leave
/// backdrop under the render's). A lone object that the prompt alone happens to draw near the
/// render's place can come close (an earlier model drew one 14.2 off, against 7.0 given), so the
/// comparison is over the three prompts together: the given frames must be off by under half as much.
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
    let (mut given_total, mut drawn_total) = (0.0, 0.0);
    for case in held_out_cases(3, 4) {
        let render = case.scene.render().swap_remove(0);
        let (given, drawn) = (from_frame(&case).unwrap(), from_prompt(&case).unwrap());
        assert_eq!(given.len(), drawn.len(), "{}", case.prompt);
        let (given_off, drawn_off) = (object_difference(&given[0], &render), object_difference(&drawn[0], &render));
        eprintln!("{}: object pixels off the render by {given_off:.1} levels, {drawn_off:.1} from the prompt alone", case.prompt);
        assert!(given_off < GIVEN_FRAME_OFF, "{}: the given first frame is off by {given_off:.1} levels", case.prompt);
        (given_total, drawn_total) = (given_total + given_off, drawn_total + drawn_off);
    }
    assert!(given_total < drawn_total / 2.0, "given first frames off by {given_total:.1} levels in all, from the prompt alone {drawn_total:.1}");
}
