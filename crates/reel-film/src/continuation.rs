//! Videos made window after window into a file: long videos (from noise or from an image) and
//! continuations of a finished video read back from its MP4. The CLI (`reel generate --seconds`,
//! `reel extend`) and the studio (`POST /v1/videos/extensions`) both run these.

use std::collections::VecDeque;
use std::path::Path;

use candle_core::Tensor;
use reel_media::{read_mp4_frames, read_mp4_info, MediaError, VideoInfo, VideoSink};
use reel_sampling::pipeline::{frames_from_rgb8, rgb8_frames, GenerationRequest, WanPipeline};
use reel_sampling::progress::OnProgress;
use reel_sampling::windows::{generate_windows, WindowPlan, WindowReport};

use crate::{FilmError, Result};

/// Frames each window shares with the one before unless told otherwise: two latent frames of a
/// 4x-in-time VAE, enough to carry the motion over.
pub const DEFAULT_OVERLAP: usize = 5;

/// Generates windows of `request.frames` into `sink` until it holds `total` frames. `continue_from`
/// holds the last `overlap` frames of a video whose earlier frames are in the sink already; without
/// it the request's own first frames (an image) or noise start the first window.
pub fn generate_into(
    pipeline: &WanPipeline,
    request: &GenerationRequest,
    total: usize,
    overlap: usize,
    continue_from: Option<Tensor>,
    sink: &mut VideoSink,
    on_window: &mut dyn FnMut(usize, usize),
    on_progress: OnProgress,
) -> Result<WindowReport> {
    let already = sink.written();
    if total <= already {
        return Err(FilmError::Io(format!("the video already has {already} of the {total} frames asked for")));
    }
    let plan = WindowPlan { window: request.frames, overlap, total: total - already };
    // Media errors inside the sink travel through the sampler as text; the first one is kept whole.
    let mut failure: Option<MediaError> = None;
    let mut push = |frames: &Tensor| -> reel_sampling::Result<()> {
        for rgb in rgb8_frames(frames)? {
            if let Err(e) = sink.push(rgb) {
                let message = e.to_string();
                failure = Some(e);
                return Err(reel_sampling::SamplingError::InvalidInput(message));
            }
        }
        Ok(())
    };
    let report = generate_windows(pipeline, request, plan, continue_from, &mut push, on_window, on_progress);
    match (report, failure) {
        (_, Some(media)) => Err(media.into()),
        (report, None) => Ok(report?),
    }
}

/// What [`extend_video`] read from the source.
#[derive(Debug, Clone)]
pub struct Extended {
    pub source: VideoInfo,
    pub report: WindowReport,
}

/// Copies `source` (an H.264 MP4) into `sink` and continues it by `new_frames` frames. The sink and
/// `request` must have the source's size (see [`read_mp4_info`]); the source's last `overlap`
/// frames start the first window and come out cross-faded with its re-creation of them.
pub fn extend_video(
    pipeline: &WanPipeline,
    request: &GenerationRequest,
    source: &Path,
    new_frames: usize,
    overlap: usize,
    sink: &mut VideoSink,
    on_window: &mut dyn FnMut(usize, usize),
    on_progress: OnProgress,
) -> Result<Extended> {
    let info = read_mp4_info(source)?;
    if (info.width, info.height) != (request.width, request.height) || (sink.width(), sink.height()) != (info.width, info.height) {
        return Err(FilmError::Io(format!(
            "{} is {}x{}, but the continuation is set up for {}x{}",
            source.display(),
            info.width,
            info.height,
            request.width,
            request.height
        )));
    }
    if info.frames < overlap {
        return Err(FilmError::Io(format!(
            "{} has {} frames, fewer than the {overlap} a continuation starts from",
            source.display(),
            info.frames
        )));
    }
    let mut tail: VecDeque<Vec<u8>> = VecDeque::with_capacity(overlap + 1);
    read_mp4_frames(source, &mut |rgb| {
        tail.push_back(rgb.to_vec());
        if tail.len() > overlap {
            sink.push(tail.pop_front().expect("longer than the overlap"))?;
        }
        Ok(())
    })?;
    let tail: Vec<Vec<u8>> = tail.into();
    let continue_from = frames_from_rgb8(&tail, info.height, info.width)?;
    let total = sink.written() + overlap + new_frames;
    let report = generate_into(pipeline, request, total, overlap, Some(continue_from), sink, on_window, on_progress)?;
    Ok(Extended { source: info, report })
}
