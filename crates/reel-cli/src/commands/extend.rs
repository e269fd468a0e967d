//! `reel extend`: continues a finished video (an H.264 MP4) for a few more seconds, from its last
//! frames, as the studio's `POST /v1/videos/extensions` does.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use reel_film::continuation::extend_video;
use reel_media::read_mp4_info;

use super::generate::{announce_windows, check_outputs, frames_for_seconds, prepare, report_long, video_sink, GenerateArgs};
use super::progress::StageBars;

#[derive(Args)]
pub struct ExtendArgs {
    /// The video to continue (an H.264 MP4, as reel writes)
    video: PathBuf,
    /// Everything `reel generate` takes: the prompt of the continuation, the model, steps, seed,
    /// output...; --seconds is the length of the new part (default 4)
    #[command(flatten)]
    generate: GenerateArgs,
}

pub fn run(args: ExtendArgs) -> anyhow::Result<()> {
    let ExtendArgs { video, mut generate } = args;
    anyhow::ensure!(generate.image.is_none(), "--image starts a new video; `reel extend` continues the given one");
    anyhow::ensure!(generate.init_latents.is_none(), "--init-latents replaces one generation's noise; it does not apply to `reel extend`");
    let info = read_mp4_info(&video)?;
    check_outputs(&generate)?;
    // The continuation has the source's size and frame rate.
    generate.width = Some(info.width);
    generate.height = Some(info.height);
    generate.fps = Some(info.fps);
    let prepared = prepare(&generate).with_context(|| {
        format!("{} is {}x{}: the model must be able to make videos of that size", video.display(), info.width, info.height)
    })?;
    let new_frames = frames_for_seconds(generate.seconds.unwrap_or(4.0), info.fps)?;
    let mut sink = video_sink(&generate, info.width, info.height, info.fps, info.frames + new_frames)?;
    let started = Instant::now();
    let mut bars = StageBars::new(generate.quiet);
    let mut on_window = announce_windows(generate.quiet);
    let extended = extend_video(&prepared.pipeline, &prepared.request, &video, new_frames, generate.overlap, &mut sink, &mut on_window, &mut |p| bars.update(p))?;
    bars.finish();
    report_long(&generate, sink, extended.report.windows, started, info.fps)
}
