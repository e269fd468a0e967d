//! Videos longer than one generation, and continuations of existing ones: window after window, each
//! starting from the last frames of the one before (given first frames, see
//! [`GenerationRequest::first_frames`]), the overlapping frames cross-faded from the old window to
//! the new. Finished frames go to a sink as soon as they are final, so memory is that of one window
//! whatever the length of the video.

use candle_core::Tensor;

use crate::pipeline::{GenerationRequest, WanPipeline};
use crate::progress::OnProgress;
use crate::{Result, SamplingError};

/// How a long video is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    /// Frames of one generation (the request's frames).
    pub window: usize,
    /// Frames each window shares with the one before: 1 + temporal*k, k >= 0, at most half the window.
    pub overlap: usize,
    /// Frames of the whole video, counting the frames it continues from (if any).
    pub total: usize,
}

impl WindowPlan {
    /// Windows needed; the first may start from given frames (extension) or from noise.
    pub fn windows(&self, continues: bool) -> usize {
        let fresh = self.window - self.overlap;
        let first = if continues { self.overlap } else { self.overlap.min(self.total) };
        // Every window adds `fresh` frames to the `overlap` frames it starts from.
        (self.total.saturating_sub(first)).div_ceil(fresh).max(1)
    }
}

/// What [`generate_windows`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowReport {
    /// Generations run.
    pub windows: usize,
    /// Index of the first frame of each join: frames `join..join + overlap` are cross-faded.
    pub joins: Vec<usize>,
    /// Frames given to the sink.
    pub frames: usize,
}

/// Frames `start..end` of (frames, height, width, 3).
fn frames_range(frames: &Tensor, start: usize, end: usize) -> Result<Tensor> {
    Ok(frames.narrow(0, start, end - start)?)
}

/// Cross-fade of two equally long runs of frames, from all `old` at the start to all `new` at the end.
fn cross_fade(old: &Tensor, new: &Tensor) -> Result<Tensor> {
    let n = old.dim(0)?;
    let weights: Vec<f32> = (0..n).map(|j| (j + 1) as f32 / (n + 1) as f32).collect();
    let weights = Tensor::from_vec(weights, (n, 1, 1, 1), old.device())?;
    Ok((old.broadcast_mul(&(1.0 - &weights)?)? + new.broadcast_mul(&weights)?)?)
}

/// Generates `plan.total` frames with windows of `request.frames`, handing finished frames
/// ((frames, height, width, 3) in [0, 1]) to `sink` in order. `start` holds the last `plan.overlap`
/// frames of a video to continue (they count in `plan.total` and come out cross-faded with the first
/// window's re-creation of them); without it the video starts from the request's own first frames
/// (an image, image-to-video) or from noise. Window `i` uses seed
/// `request.seed + i`. `on_window(i, windows)` is called before each window starts.
pub fn generate_windows(
    pipeline: &WanPipeline,
    request: &GenerationRequest,
    plan: WindowPlan,
    start: Option<Tensor>,
    sink: &mut dyn FnMut(&Tensor) -> Result<()>,
    on_window: &mut dyn FnMut(usize, usize),
    on_progress: OnProgress,
) -> Result<WindowReport> {
    let invalid = |msg: String| Err(SamplingError::InvalidInput(msg));
    let temporal = pipeline.geometry()?.temporal;
    if plan.window != request.frames {
        return invalid(format!("the window plan has {} frames per window, the request {}", plan.window, request.frames));
    }
    if plan.overlap == 0 || !(plan.overlap - 1).is_multiple_of(temporal) || 2 * plan.overlap > plan.window {
        return invalid(format!(
            "an overlap of {} frames does not fit windows of {}: use 1 + {temporal}k frames, at most half the window",
            plan.overlap, plan.window
        ));
    }
    if plan.total == 0 {
        return invalid("a video needs at least one frame".into());
    }
    if let Some(start) = &start {
        if start.dim(0)? != plan.overlap {
            return invalid(format!("{} frames to continue from, but the overlap is {}", start.dim(0)?, plan.overlap));
        }
    }
    let windows = plan.windows(start.is_some());
    if (windows > 1 || start.is_some()) && !pipeline.can_start_from_frames() {
        return invalid(format!(
            "{} frames need {windows} windows, each starting from the last frames of the one before, and this model \
             cannot start from given frames (that needs per-token timesteps, as Wan2.2-TI2V-5B and reel's demo model have): \
             make at most {} frames with it",
            plan.total, plan.window
        ));
    }
    let mut report = WindowReport { windows, ..WindowReport::default() };
    let mut emit = |frames: &Tensor, report: &mut WindowReport| -> Result<()> {
        let take = frames.dim(0)?.min(plan.total - report.frames);
        if take > 0 {
            sink(&frames_range(frames, 0, take)?)?;
            report.frames += take;
        }
        Ok(())
    };
    // The last frames of the latest window: final only once the next window has re-made them.
    let mut held = start;
    for i in 0..windows {
        on_window(i, windows);
        let mut window = request.clone();
        window.seed = request.seed.wrapping_add(i as u64);
        if let Some(held) = &held {
            window.first_frames = Some(held.clone());
        }
        let frames = pipeline.generate(&window, on_progress)?.frames;
        let fresh_from = match held.take() {
            Some(old) => {
                report.joins.push(report.frames);
                emit(&cross_fade(&old, &frames_range(&frames, 0, plan.overlap)?)?, &mut report)?;
                plan.overlap
            }
            None => 0,
        };
        emit(&frames_range(&frames, fresh_from, plan.window - plan.overlap)?, &mut report)?;
        held = Some(frames_range(&frames, plan.window - plan.overlap, plan.window)?);
    }
    if let Some(last) = held {
        emit(&last, &mut report)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_video() {
        // 17-frame windows sharing 5: each window adds 12 frames.
        let plan = WindowPlan { window: 17, overlap: 5, total: 17 };
        assert_eq!(plan.windows(false), 1);
        assert_eq!(WindowPlan { total: 29, ..plan }.windows(false), 2);
        assert_eq!(WindowPlan { total: 30, ..plan }.windows(false), 3);
        assert_eq!(WindowPlan { total: 5 + 12, ..plan }.windows(true), 1);
        assert_eq!(WindowPlan { total: 5 + 13, ..plan }.windows(true), 2);
        assert_eq!(WindowPlan { total: 3, ..plan }.windows(false), 1);
    }

    #[test]
    fn cross_fade_moves_from_old_to_new() {
        let device = candle_core::Device::Cpu;
        let old = Tensor::rand(0f32, 1.0, (3, 2, 2, 3), &device).unwrap();
        let new = Tensor::rand(0f32, 1.0, (3, 2, 2, 3), &device).unwrap();
        let faded = cross_fade(&old, &new).unwrap();
        for j in 0..3 {
            let w = (j + 1) as f32 / 4.0;
            let expected = ((old.get(j).unwrap() * (1.0 - w as f64)).unwrap() + (new.get(j).unwrap() * w as f64).unwrap()).unwrap();
            let diff = (faded.get(j).unwrap() - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "frame {j}: {diff}");
        }
    }
}
