//! Starting from given frames (image-to-video, continuations) and window-by-window generation on
//! the tiny Wan 2.2 TI2V checkpoint (per-token timesteps): the given latent frames come out
//! unchanged, windows cover the length asked for, and bad requests are refused with clear errors.

use candle_core::{DType, Device, Tensor};
use reel_models::testing::fixture;
use reel_models::wan::WanVae;
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{GenerationRequest, WanPipeline};
use reel_sampling::windows::{generate_windows, WindowPlan};

fn pipeline(model: &str) -> WanPipeline {
    WanPipeline::new(WanCheckpoint::open(fixture(model)).unwrap(), DType::F32, &Device::Cpu)
}

fn request(frames: usize) -> GenerationRequest {
    let mut request = GenerationRequest::new("a small red circle drifts to the left");
    (request.frames, request.height, request.width, request.steps, request.guidance) = (frames, 32, 32, 2, 1.0);
    request.max_sequence_length = 16;
    request
}

#[test]
fn given_latent_frames_come_out_unchanged() {
    let pipeline = pipeline("tiny-wan2.2-ti2v");
    let mut request = request(13);
    // Five frames: two latent frames of a 4x-in-time VAE.
    let given = Tensor::rand(0f32, 1.0, (5, 32, 32, 3), &Device::Cpu).unwrap();
    request.first_frames = Some(given.clone());
    let generated = pipeline.generate(&request, &mut |_| {}).unwrap();

    let checkpoint = WanCheckpoint::open(fixture("tiny-wan2.2-ti2v")).unwrap();
    let vae = WanVae::load(&checkpoint.component("vae").unwrap(), DType::F32, &Device::Cpu).unwrap();
    let video = ((given * 2.0).unwrap() - 1.0).unwrap().permute((3, 0, 1, 2)).unwrap().unsqueeze(0).unwrap().contiguous().unwrap();
    let expected = vae.normalize(&vae.encode(&video, None).unwrap().mean).unwrap();
    let kept = generated.latents.narrow(2, 0, 2).unwrap();
    let diff = (kept - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "given latent frames changed by {diff}");
    // The rest was denoised from noise, not copied.
    let rest = generated.latents.narrow(2, 2, 2).unwrap();
    assert!(rest.abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
    assert_eq!(generated.frames.dim(0).unwrap(), 13);
}

#[test]
fn bad_given_frames_are_refused_with_reasons() {
    let ti2v = pipeline("tiny-wan2.2-ti2v");
    let check = |pipeline: &WanPipeline, frames: Tensor, video_frames: usize, expect: &str| {
        let mut request = request(video_frames);
        request.first_frames = Some(frames);
        let error = pipeline.latent_shape(&request).unwrap_err().to_string();
        assert!(error.contains(expect), "expected '{expect}' in: {error}");
    };
    let frames = |n: usize, h: usize, w: usize| Tensor::rand(0f32, 1.0, (n, h, w, 3), &Device::Cpu).unwrap();
    check(&ti2v, frames(1, 64, 32), 9, "resize or crop");
    check(&ti2v, frames(3, 32, 32), 9, "give 1 (an image) or 1 + 4k");
    check(&ti2v, frames(9, 32, 32), 9, "nothing to generate");
    // Wan 2.1 text-to-video has neither per-token timesteps nor image channels.
    check(&pipeline("tiny-wan2.1"), frames(1, 32, 32), 9, "text-to-video model cannot start from a given image");
}

#[test]
fn windows_cover_the_length_and_report_their_joins() {
    let pipeline = pipeline("tiny-wan2.2-ti2v");
    let request = request(9);
    let plan = WindowPlan { window: 9, overlap: 1, total: 20 };
    let mut chunks = Vec::new();
    let mut windows_seen = Vec::new();
    let report = generate_windows(
        &pipeline,
        &request,
        plan,
        None,
        &mut |frames| {
            chunks.push(frames.dim(0)?);
            Ok(())
        },
        &mut |i, n| windows_seen.push((i, n)),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.windows, 3);
    assert_eq!(windows_seen, vec![(0, 3), (1, 3), (2, 3)]);
    assert_eq!(report.frames, 20);
    assert_eq!(chunks.iter().sum::<usize>(), 20);
    assert_eq!(report.joins, vec![8, 16]);

    // An overlap that is not whole latent frames, or more than half the window, is refused.
    for overlap in [2, 5] {
        let bad = WindowPlan { overlap, ..plan };
        let error = generate_windows(&pipeline, &request, bad, None, &mut |_| Ok(()), &mut |_, _| {}, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("at most half the window"), "{error}");
    }
}
