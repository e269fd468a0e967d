//! Continuity: does a video given its first frame keep what that frame shows, and does a video
//! made window after window carry its objects across the joins? For held-out prompts the demo model
//! is given the world's own first frame (image-to-video), then continues for more windows.
//!
//! At each join the frame-to-frame change (object position, pixels) across the cross-faded frames is
//! compared with the typical frame-to-frame change inside the windows: a ratio near 1 means the join
//! is as smooth as the rest of the video; a jump shows as a ratio well above 1.

use candle_core::Tensor;
use reel_sampling::pipeline::{frames_from_rgb8, rgb8_frames};
use reel_sampling::windows::{generate_windows, WindowPlan};
use serde::Serialize;

use crate::analysis::{tracks, Track};
use crate::eval::{Case, CaseGenerator};
use crate::world::{HEIGHT, WIDTH};
use crate::Error;

/// Frames each window shares with the one before: two latent frames, so motion carries over.
pub const OVERLAP: usize = 5;

/// How many times its windows' step a video's join step must be to count as a jump: a cut to
/// unrelated content measures 2 to 5.
pub const JUMP: f64 = 2.0;

/// One case's continuity.
#[derive(Debug, Clone, Serialize)]
pub struct ContinuityScore {
    pub prompt: String,
    /// The first object's colour is found in at least half of the first window's frames.
    pub colour_kept: bool,
    /// Its shape is read as the first frame shows it.
    pub shape_kept: bool,
    /// It moves as the prompt says, over the whole video.
    pub motion_kept: bool,
    /// Mean displacement of the object between consecutive frames around joins, and inside windows (pixels).
    pub join_step: Option<f64>,
    pub window_step: Option<f64>,
    /// Mean absolute pixel change between consecutive frames around joins, and inside windows (0..255).
    pub join_pixel_change: f64,
    pub window_pixel_change: f64,
    /// The object is present on both sides of every join.
    pub present_across_joins: bool,
    pub frames: usize,
}

/// Averages over the cases.
#[derive(Debug, Clone, Serialize)]
pub struct ContinuityReport {
    pub cases: usize,
    pub windows: usize,
    pub colour_kept: f64,
    pub shape_kept: f64,
    pub motion_kept: f64,
    pub join_step: f64,
    pub window_step: f64,
    /// join_step / window_step. Both steps are averaged over the videos where both were measured.
    pub position_jump_ratio: f64,
    /// Share of those videos whose own join step is over [`JUMP`] times their window step. Unlike
    /// the ratio of means, one video whose object leaps across the frame cannot swing it alone.
    pub jumping_videos: f64,
    pub join_pixel_change: f64,
    pub window_pixel_change: f64,
    /// join_pixel_change / window_pixel_change.
    pub pixel_jump_ratio: f64,
    pub present_across_joins: f64,
    pub scores: Vec<ContinuityScore>,
}

impl ContinuityReport {
    pub fn table(&self) -> String {
        let pct = |v: f64| format!("{:.1}%", 100.0 * v);
        let mut out = format!("continuity over {} held-out prompts, {} windows each (overlap {OVERLAP} frames)\n", self.cases, self.windows);
        out += &format!("  first frame kept: colour {}  shape {}  motion {}\n", pct(self.colour_kept), pct(self.shape_kept), pct(self.motion_kept));
        out += &format!(
            "  object step per frame: {:.2} px at joins, {:.2} px inside windows (ratio {:.2})\n",
            self.join_step, self.window_step, self.position_jump_ratio
        );
        out += &format!("  videos whose join jumps (over {JUMP}x their windows' step): {}\n", pct(self.jumping_videos));
        out += &format!(
            "  pixel change per frame: {:.2} at joins, {:.2} inside windows (ratio {:.2})\n",
            self.join_pixel_change, self.window_pixel_change, self.pixel_jump_ratio
        );
        out += &format!("  object present across every join: {}\n", pct(self.present_across_joins));
        out
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Whether the step from frame `t` to `t + 1` touches a join (the frame before it, its cross-faded
/// frames, the first fresh frame after them).
fn at_join(t: usize, joins: &[usize], overlap: usize) -> bool {
    joins.iter().any(|&j| t + 1 >= j && t < j + overlap)
}

/// Scores frames made from `case`'s first frame in windows joined at `joins`.
pub fn score_continuity(case: &Case, frames: &[Vec<u8>], joins: &[usize], window: usize) -> ContinuityScore {
    let object = &case.scene.objects[0];
    let first_window = &frames[..window.min(frames.len())];
    let track_of = |frames: &[Vec<u8>]| -> Option<Track> { tracks(frames).into_iter().find(|t| t.colour == object.colour) };
    let first = track_of(first_window);
    let whole = track_of(frames);
    let (mut join_steps, mut window_steps, mut join_pixels, mut window_pixels) = (vec![], vec![], vec![], vec![]);
    for t in 0..frames.len() - 1 {
        let joining = at_join(t, joins, OVERLAP);
        let change = frames[t].iter().zip(&frames[t + 1]).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / frames[t].len() as f64;
        if joining { join_pixels.push(change) } else { window_pixels.push(change) }
        let step = whole.as_ref().and_then(|track| match (&track.frames[t], &track.frames[t + 1]) {
            (Some(a), Some(b)) => Some(((a.centroid.0 - b.centroid.0).powi(2) + (a.centroid.1 - b.centroid.1).powi(2)).sqrt() as f64),
            _ => None,
        });
        if let Some(step) = step {
            if joining { join_steps.push(step) } else { window_steps.push(step) }
        }
    }
    let present = |i: usize| whole.as_ref().is_some_and(|t| t.frames.get(i).is_some_and(|b| b.is_some()));
    ContinuityScore {
        prompt: case.prompt.clone(),
        colour_kept: first.as_ref().is_some_and(|t| t.presence() >= 0.5),
        shape_kept: first.as_ref().is_some_and(|t| t.shape() == object.shape),
        motion_kept: whole.as_ref().is_some_and(|t| t.motion(t.shape()) == object.motion),
        join_step: mean(&join_steps),
        window_step: mean(&window_steps),
        join_pixel_change: mean(&join_pixels).unwrap_or(0.0),
        window_pixel_change: mean(&window_pixels).unwrap_or(0.0),
        present_across_joins: joins.iter().all(|&j| j > 0 && present(j - 1) && present(j + OVERLAP)),
        frames: frames.len(),
    }
}

/// Makes `windows` windows for the case, the first starting from the world's first frame.
pub fn generate_from_first_frame(generator: &CaseGenerator, case: &Case, windows: usize) -> Result<(Vec<Vec<u8>>, Vec<usize>), Error> {
    let mut request = generator.request(case);
    let first = case.scene.render().swap_remove(0);
    request.first_frames = Some(frames_from_rgb8(&[first], HEIGHT, WIDTH)?);
    let window = request.frames;
    let plan = WindowPlan { window, overlap: OVERLAP, total: window + (windows - 1) * (window - OVERLAP) };
    let mut frames = Vec::new();
    let mut sink = |chunk: &Tensor| -> reel_sampling::Result<()> {
        frames.extend(rgb8_frames(chunk)?);
        Ok(())
    };
    let report = generate_windows(generator.pipeline(), &request, plan, None, &mut sink, &mut |_, _| {}, &mut |_| {})?;
    Ok((frames, report.joins))
}

/// Scores `cases` (their first object), `windows` windows each.
pub fn evaluate_continuity(
    generator: &CaseGenerator,
    cases: &[Case],
    windows: usize,
    on_case: &mut dyn FnMut(usize, &ContinuityScore),
) -> Result<ContinuityReport, Error> {
    if windows == 0 {
        return Err("continuity needs at least one window".into());
    }
    let mut scores = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (frames, joins) = generate_from_first_frame(generator, case, windows)?;
        let window = generator.request(case).frames;
        let score = score_continuity(case, &frames, &joins, window);
        on_case(i, &score);
        scores.push(score);
    }
    Ok(continuity_report(scores, windows))
}

/// Averages `scores` into a report. The object steps at joins and inside windows are averaged over
/// the same videos, those where both were measured: a video whose object is tracked inside its
/// windows but lost at its joins would otherwise lower the window mean alone and move the ratio
/// without any join getting rougher.
fn continuity_report(scores: Vec<ContinuityScore>, windows: usize) -> ContinuityReport {
    let share = |f: &dyn Fn(&ContinuityScore) -> bool| scores.iter().filter(|s| f(s)).count() as f64 / scores.len().max(1) as f64;
    let paired_steps: Vec<(f64, f64)> = scores.iter().filter_map(|s| Some((s.join_step?, s.window_step?))).collect();
    let join_step = mean(&paired_steps.iter().map(|p| p.0).collect::<Vec<_>>()).unwrap_or(0.0);
    let window_step = mean(&paired_steps.iter().map(|p| p.1).collect::<Vec<_>>()).unwrap_or(0.0);
    let join_pixel_change = mean(&scores.iter().map(|s| s.join_pixel_change).collect::<Vec<_>>()).unwrap_or(0.0);
    let window_pixel_change = mean(&scores.iter().map(|s| s.window_pixel_change).collect::<Vec<_>>()).unwrap_or(0.0);
    ContinuityReport {
        cases: scores.len(),
        windows,
        colour_kept: share(&|s| s.colour_kept),
        shape_kept: share(&|s| s.shape_kept),
        motion_kept: share(&|s| s.motion_kept),
        join_step,
        window_step,
        position_jump_ratio: join_step / window_step.max(1e-6),
        jumping_videos: paired_steps.iter().filter(|(join, window)| *join > JUMP * window).count() as f64 / paired_steps.len().max(1) as f64,
        join_pixel_change,
        window_pixel_change,
        pixel_jump_ratio: join_pixel_change / window_pixel_change.max(1e-6),
        present_across_joins: share(&|s| s.present_across_joins),
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::held_out_cases;

    #[test]
    fn a_jump_at_a_join_shows_in_the_ratios() {
        // The world's own clip is smooth; cutting to a later part of it at frame 8 makes a jump.
        use crate::world::Motion::*;
        let case = held_out_cases(40, 3)
            .into_iter()
            .find(|c| c.scene.objects.len() == 1 && matches!(c.scene.objects[0].motion, Left | Right | Up | Down | UpLeft | UpRight | DownLeft | DownRight))
            .unwrap();
        let smooth = case.scene.render();
        let score = score_continuity(&case, &smooth, &[8], smooth.len());
        // Back to the second frame after the tenth: the object jumps back nine frames' travel.
        let mut jumped = smooth[..10].to_vec();
        jumped.extend(smooth[1..].iter().cloned());
        let cut = score_continuity(&case, &jumped, &[8], smooth.len());
        assert!(score.colour_kept && score.present_across_joins, "{score:?}");
        let (smooth_ratio, cut_ratio) = (score.join_step.unwrap() / score.window_step.unwrap(), cut.join_step.unwrap() / cut.window_step.unwrap());
        assert!(cut_ratio > smooth_ratio + 0.5, "smooth {smooth_ratio:.2}, cut {cut_ratio:.2}");
        // The cut video counts as one whose join jumps; the smooth one does not.
        assert_eq!(continuity_report(vec![score, cut], 2).jumping_videos, 0.5, "smooth {smooth_ratio:.2}, cut {cut_ratio:.2}");
    }

    #[test]
    fn the_step_ratio_compares_joins_and_windows_of_the_same_videos() {
        let score = |join_step: Option<f64>, window_step: Option<f64>| ContinuityScore {
            prompt: String::new(),
            colour_kept: true,
            shape_kept: true,
            motion_kept: true,
            join_step,
            window_step,
            join_pixel_change: 3.0,
            window_pixel_change: 2.0,
            present_across_joins: join_step.is_some(),
            frames: 29,
        };
        let tracked = vec![score(Some(3.0), Some(2.0)), score(Some(1.0), Some(2.0))];
        let report = continuity_report(tracked.clone(), 2);
        assert!((report.position_jump_ratio - 1.0).abs() < 1e-12, "{}", report.position_jump_ratio);
        assert_eq!(report.jumping_videos, 0.0);
        // One video whose join leaps far: the ratio of means swings past a cut's, but one video of three jumps.
        let mut with_leap = tracked.clone();
        with_leap.push(score(Some(24.0), Some(4.0)));
        let report = continuity_report(with_leap, 2);
        assert!(report.position_jump_ratio > JUMP, "{}", report.position_jump_ratio);
        assert!((report.jumping_videos - 1.0 / 3.0).abs() < 1e-12, "{}", report.jumping_videos);
        // A third video whose object is lost at its join but moves slowly inside its windows, and a
        // fourth lost everywhere: neither has a join step to compare, so the ratio stays.
        let mut with_lost = tracked;
        with_lost.extend([score(None, Some(0.5)), score(None, None)]);
        let report = continuity_report(with_lost, 2);
        assert!((report.position_jump_ratio - 1.0).abs() < 1e-12, "{}", report.position_jump_ratio);
        assert!((report.present_across_joins - 0.5).abs() < 1e-12);
        assert_eq!(report.jumping_videos, 0.0);
        assert!((report.pixel_jump_ratio - 1.5).abs() < 1e-12);
    }
}
