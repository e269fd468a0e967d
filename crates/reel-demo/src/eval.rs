//! `reel eval demo`: does a generated video follow its prompt? Prompts come from held-out
//! combinations (a colour with a shape, a shape with a motion) that never occurred in training;
//! each clip is read back ([`crate::analysis`]) and scored on colour, shape, count, motion
//! direction and camera move, plus how steadily its objects persist from frame to frame.

use serde::Serialize;

use crate::analysis::{camera_from_still_objects, tracks, Track};
use crate::caption::caption;
use crate::rng::Rng;
use crate::world::{Camera, Colour, Motion, Pattern, Scene, Shape, Split, HELD_OUT_COLOUR_SHAPE};
use crate::Error;

/// One clip's frames as RGB8 rows, or why they could not be made.
pub type ClipFrames = Result<Vec<Vec<u8>>, Error>;

/// The targets of the demo model on held-out prompts (fractions).
pub const TARGETS: Targets = Targets { colour: 0.90, motion: 0.80, shape: 0.70, count: 0.80 };

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Targets {
    pub colour: f64,
    pub motion: f64,
    pub shape: f64,
    pub count: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CaseKind {
    /// Objects move, the camera holds: colour, shape, count and motion are scored.
    Content,
    /// A still object and a moving camera: the camera move is scored (with colour, shape, count).
    Camera,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub kind: CaseKind,
    pub scene: Scene,
    pub prompt: String,
    /// Seed of the generation's noise.
    pub seed: u64,
}

/// `count` held-out cases, one in five about the camera.
pub fn held_out_cases(count: usize, seed: u64) -> Vec<Case> {
    cases(count, seed, Split::HeldOut)
}

/// `count` cases of `split`, one in five about the camera: with [`Split::HeldOut`], each case
/// holds a combination never seen in training; with [`Split::Train`], only combinations seen in
/// training (new scenes and captions), to tell what the model learned from what it generalises.
pub fn cases(count: usize, seed: u64, split: Split) -> Vec<Case> {
    let mut rng = Rng::new(seed ^ 0xe7a1);
    (0..count)
        .map(|i| {
            let kind = if i % 5 == 4 { CaseKind::Camera } else { CaseKind::Content };
            let mut scene = Scene::random(&mut rng, split);
            match kind {
                CaseKind::Content => scene.camera = Camera::Static,
                CaseKind::Camera => {
                    // One still object (of a held-out colour and shape for held-out cases), a visible backdrop pattern.
                    scene.objects.truncate(1);
                    let object = &mut scene.objects[0];
                    if split == Split::HeldOut {
                        (object.colour, object.shape) = *rng.choose(&HELD_OUT_COLOUR_SHAPE);
                    }
                    (object.motion, object.start) = (Motion::Still, (32.0, 32.0));
                    scene.pattern = Pattern::Checker;
                    scene.camera = *rng.choose(&[Camera::PanLeft, Camera::PanRight, Camera::ZoomIn, Camera::ZoomOut]);
                }
            }
            let prompt = caption(&scene, &mut rng);
            Case { kind, scene, prompt, seed: 1000 + i as u64 }
        })
        .collect()
}

/// A case's clip laid out for a person to check what was scored: the world's render of the prompt's
/// scene in the top row, the scored frames below, one frame per column. RGB bytes, with the
/// sheet's width and height.
pub fn comparison_sheet(case: &Case, scored: &[Vec<u8>]) -> (Vec<u8>, usize, usize) {
    use crate::world::{HEIGHT, WIDTH};
    let rows = [case.scene.render(), scored.to_vec()];
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = columns * WIDTH;
    let mut sheet = vec![0u8; 3 * width * 2 * HEIGHT];
    for (row, frames) in rows.iter().enumerate() {
        for (column, frame) in frames.iter().enumerate() {
            for y in 0..HEIGHT {
                let to = 3 * ((row * HEIGHT + y) * width + column * WIDTH);
                sheet[to..to + 3 * WIDTH].copy_from_slice(&frame[3 * y * WIDTH..3 * (y + 1) * WIDTH]);
            }
        }
    }
    (sheet, width, 2 * HEIGHT)
}

/// Scores of one clip (fractions of the prompt's objects, or 0/1), with what was read.
#[derive(Debug, Clone, Serialize)]
pub struct CaseScore {
    pub prompt: String,
    pub kind: CaseKind,
    pub colour: f64,
    pub shape: f64,
    pub count: f64,
    pub motion: Option<f64>,
    pub camera: Option<f64>,
    pub consistency: f64,
    pub seen: Vec<String>,
    /// Each prompt object's shape and the one read from the object of its colour.
    pub shapes: Vec<Read>,
    /// Content cases: each prompt object's motion and the one read from the object of its colour.
    pub motions: Vec<Read>,
    /// For each object found in a colour the prompt did not ask for, the share of frames it was seen in.
    pub unasked: Vec<f32>,
}

/// What a prompt asked of one object (its motion or its shape, `asked`) and what was read from the
/// object of its colour (`seen`; `None` when no object of that colour was found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read {
    pub asked: String,
    pub seen: Option<String>,
}

impl Read {
    pub fn is_right(&self) -> bool {
        self.seen.as_deref() == Some(self.asked.as_str())
    }
}

/// How often one asked motion or shape was read right over a report, and its commonest misreading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub asked: String,
    pub objects: usize,
    pub right: usize,
    /// The reading most often made instead ("not found" when the object was missing), and how often.
    pub commonest_misread: Option<(String, usize)>,
}

fn describe(track: &Track, shape: Shape) -> String {
    format!("{} {} {:?} ({:.0}% of frames)", track.colour.name(), shape.name(), track.motion(shape), 100.0 * track.presence())
}

pub fn score(case: &Case, frames: &[Vec<u8>]) -> CaseScore {
    let found = tracks(frames);
    // Each track's shape is read once: template matching is the costly part of scoring.
    let track_shapes: std::collections::HashMap<Colour, Shape> = found.iter().map(|t| (t.colour, t.shape())).collect();
    let objects = &case.scene.objects;
    // A prompt's object is the found track of its colour.
    let track_of = |colour: Colour| found.iter().find(|t| t.colour == colour);
    let share = |hits: usize| hits as f64 / objects.len() as f64;
    let consistency = objects
        .iter()
        .map(|o| track_of(o.colour).map_or(0.0, |t| t.presence() as f64))
        .sum::<f64>()
        / objects.len() as f64;
    let shapes: Vec<Read> = objects
        .iter()
        .map(|o| Read {
            asked: o.shape.name().to_string(),
            seen: track_of(o.colour).map(|t| track_shapes[&t.colour].name().to_string()),
        })
        .collect();
    let motions: Vec<Read> = match case.kind {
        CaseKind::Content => objects
            .iter()
            .map(|o| Read {
                asked: format!("{:?}", o.motion),
                seen: track_of(o.colour).map(|t| format!("{:?}", t.motion(track_shapes[&t.colour]))),
            })
            .collect(),
        CaseKind::Camera => Vec::new(),
    };
    CaseScore {
        prompt: case.prompt.clone(),
        kind: case.kind,
        colour: share(objects.iter().filter(|o| track_of(o.colour).is_some()).count()),
        shape: share(shapes.iter().filter(|read| read.is_right()).count()),
        count: if found.len() == objects.len() { 1.0 } else { 0.0 },
        motion: (case.kind == CaseKind::Content)
            .then(|| share(motions.iter().filter(|read| read.is_right()).count())),
        camera: (case.kind == CaseKind::Camera)
            .then(|| if camera_from_still_objects(&found) == case.scene.camera { 1.0 } else { 0.0 }),
        consistency,
        seen: found.iter().map(|t| describe(t, track_shapes[&t.colour])).collect(),
        shapes,
        motions,
        unasked: found.iter().filter(|t| !objects.iter().any(|o| o.colour == t.colour)).map(Track::presence).collect(),
    }
}

/// Averages over all cases (motion over content cases, camera over camera cases).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cases: usize,
    pub colour: f64,
    pub shape: f64,
    pub count: f64,
    pub motion: f64,
    pub camera: f64,
    pub consistency: f64,
    pub seconds_per_clip: f64,
    pub targets: Targets,
    /// Per asked shape, over all cases' objects (the commonest shapes first).
    pub shape_tallies: Vec<Tally>,
    /// Per asked motion, over the content cases' objects (the commonest motions first).
    pub motion_tallies: Vec<Tally>,
    /// The scores again, per number of objects the prompts ask for (fewest first): a model that
    /// follows one-object prompts may still mix up the objects of a longer one.
    pub by_object_count: Vec<ObjectCountScores>,
    pub count_misses: CountMisses,
    pub scores: Vec<CaseScore>,
}

/// An unasked object seen in fewer than this share of the frames is fleeting.
const FLEETING_PRESENCE: f32 = 0.5;

/// How counts were missed: prompts whose clips showed more objects than asked or fewer, and the
/// objects found in colours their prompts did not ask for, of which `fleeting` were seen in under
/// half the frames (flicker rather than a steady extra object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountMisses {
    pub more: usize,
    pub fewer: usize,
    pub unasked: usize,
    pub fleeting: usize,
}

impl CountMisses {
    fn of(scores: &[CaseScore]) -> Self {
        let unasked = || scores.iter().flat_map(|s| &s.unasked);
        Self {
            more: scores.iter().filter(|s| s.seen.len() > s.shapes.len()).count(),
            fewer: scores.iter().filter(|s| s.seen.len() < s.shapes.len()).count(),
            unasked: unasked().count(),
            fleeting: unasked().filter(|presence| **presence < FLEETING_PRESENCE).count(),
        }
    }

    /// The table's line.
    fn line(&self) -> String {
        format!(
            "  count missed: {} prompts showed more objects than asked, {} fewer; {} objects in unasked colours, {} of them in under half the frames\n",
            self.more, self.fewer, self.unasked, self.fleeting
        )
    }
}

/// The mean scores of the cases whose prompts ask for `objects` objects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectCountScores {
    pub objects: usize,
    pub cases: usize,
    pub colour: f64,
    pub shape: f64,
    pub count: f64,
    /// Over the group's content cases; `None` where it has none.
    pub motion: Option<f64>,
}

/// The mean of `values`; `None` for none.
fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The scores grouped by how many objects each case's prompt asks for (one shape read each).
fn by_object_count(scores: &[CaseScore]) -> Vec<ObjectCountScores> {
    let mut counts: Vec<usize> = scores.iter().map(|s| s.shapes.len()).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .map(|objects| {
            let group: Vec<&CaseScore> = scores.iter().filter(|s| s.shapes.len() == objects).collect();
            let of = |score: fn(&CaseScore) -> f64| mean(group.iter().map(|s| score(s))).unwrap_or(0.0);
            ObjectCountScores {
                objects,
                cases: group.len(),
                colour: of(|s| s.colour),
                shape: of(|s| s.shape),
                count: of(|s| s.count),
                motion: mean(group.iter().filter_map(|s| s.motion)),
            }
        })
        .collect()
}

impl Report {
    pub fn new(scores: Vec<CaseScore>, seconds_per_clip: f64) -> Self {
        // The mean over the cases that have the score (motion: content cases, camera: camera cases).
        let of = |score: fn(&CaseScore) -> Option<f64>| mean(scores.iter().filter_map(score)).unwrap_or(0.0);
        Self {
            cases: scores.len(),
            colour: of(|s| Some(s.colour)),
            shape: of(|s| Some(s.shape)),
            count: of(|s| Some(s.count)),
            motion: of(|s| s.motion),
            camera: of(|s| s.camera),
            consistency: of(|s| Some(s.consistency)),
            seconds_per_clip,
            targets: TARGETS,
            shape_tallies: tallies(scores.iter().flat_map(|s| &s.shapes)),
            motion_tallies: tallies(scores.iter().flat_map(|s| &s.motions)),
            by_object_count: by_object_count(&scores),
            count_misses: CountMisses::of(&scores),
            scores,
        }
    }

    /// The targets this report misses, each by how much, allowing `margin` below each.
    pub fn misses(&self, margin: f64) -> Vec<String> {
        [("colour", self.colour, TARGETS.colour), ("motion", self.motion, TARGETS.motion), ("shape", self.shape, TARGETS.shape), ("count", self.count, TARGETS.count)]
            .into_iter()
            .filter(|(_, value, target)| *value < target - margin)
            .map(|(name, value, target)| format!("{name} {:.1}% < target {:.0}%{}", 100.0 * value, 100.0 * target,
                if margin > 0.0 { format!(" - {:.0} points", 100.0 * margin) } else { String::new() }))
            .collect()
    }

    pub fn table(&self) -> String {
        let row = |name: &str, value: f64, target: Option<f64>| match target {
            Some(t) => format!("  {name:<12} {:>6.1}%   (target {:.0}%)\n", 100.0 * value, 100.0 * t),
            None => format!("  {name:<12} {:>6.1}%\n", 100.0 * value),
        };
        let mut text = format!("{} prompts, {:.2} s per clip\n", self.cases, self.seconds_per_clip);
        text += &row("colour", self.colour, Some(TARGETS.colour));
        text += &row("shape", self.shape, Some(TARGETS.shape));
        text += &row("count", self.count, Some(TARGETS.count));
        text += &row("motion", self.motion, Some(TARGETS.motion));
        text += &row("camera", self.camera, None);
        text += &row("consistency", self.consistency, None);
        text += &object_count_lines(&self.by_object_count);
        text += &self.count_misses.line();
        text += &tally_lines("shape", &self.shape_tallies);
        text += &tally_lines("motion", &self.motion_tallies);
        text
    }
}

/// The table's lines for the scores per number of objects asked.
fn object_count_lines(groups: &[ObjectCountScores]) -> String {
    let mut text = format!("  {:<18}{:>7} {:>8} {:>7} {:>7} {:>7}\n", "by objects asked:", "prompts", "colour", "shape", "count", "motion");
    for group in groups {
        let label = format!("{} object{}", group.objects, if group.objects == 1 { "" } else { "s" });
        let motion = group.motion.map_or("-".to_string(), |m| format!("{:.1}%", 100.0 * m));
        text += &format!(
            "    {label:<16}{:>7} {:>7.1}% {:>6.1}% {:>6.1}% {motion:>7}\n",
            group.cases,
            100.0 * group.colour,
            100.0 * group.shape,
            100.0 * group.count
        );
    }
    text
}

/// The table's lines for one aspect's tallies (none without tallies).
fn tally_lines(aspect: &str, tallies: &[Tally]) -> String {
    if tallies.is_empty() {
        return String::new();
    }
    let mut text = format!("  {aspect} read right, per asked {aspect} (commonest misreading):\n");
    for tally in tallies {
        let misread = tally.commonest_misread.as_ref().map_or(String::new(), |(reading, n)| format!("  ({reading} {n}x)"));
        let line = format!("    {:<10} {:>3}/{:<3}{misread}", tally.asked, tally.right, tally.objects);
        text += line.trim_end();
        text += "\n";
    }
    text
}

/// Tallies reads by what was asked: how often each was read right and what it was most often read
/// as instead; the most asked first (ties by name).
fn tallies<'a>(reads: impl Iterator<Item = &'a Read>) -> Vec<Tally> {
    use std::collections::BTreeMap;
    let mut by_asked: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for read in reads {
        *by_asked.entry(&read.asked).or_default().entry(read.seen.as_deref().unwrap_or("not found")).or_default() += 1;
    }
    let mut tallies: Vec<Tally> = by_asked
        .into_iter()
        .map(|(asked, seen)| {
            let commonest_misread = seen
                .iter()
                .filter(|(reading, _)| **reading != asked)
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(reading, n)| (reading.to_string(), *n));
            Tally { asked: asked.to_string(), objects: seen.values().sum(), right: seen.get(asked).copied().unwrap_or(0), commonest_misread }
        })
        .collect();
    tallies.sort_by(|a, b| b.objects.cmp(&a.objects).then(a.asked.cmp(&b.asked)));
    tallies
}

/// Scores `generate`'s clips for every case.
pub fn evaluate(
    cases: &[Case],
    generate: &mut dyn FnMut(&Case) -> ClipFrames,
    on_case: &mut dyn FnMut(usize, &CaseScore),
) -> Result<Report, Error> {
    let started = std::time::Instant::now();
    let mut scores = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let frames = generate(case)?;
        let score = score(case, &frames);
        on_case(i, &score);
        scores.push(score);
    }
    let seconds = started.elapsed().as_secs_f64() / cases.len().max(1) as f64;
    Ok(Report::new(scores, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sheet holds the world's render in its top row and the scored frames below, frame by
    /// frame in columns.
    #[test]
    fn the_comparison_sheet_puts_the_render_above_the_scored_frames() {
        use crate::world::{FRAMES, HEIGHT, WIDTH};
        let case = &held_out_cases(1, 3)[0];
        let scored: Vec<Vec<u8>> = (0..FRAMES).map(|f| (0..3 * WIDTH * HEIGHT).map(|i| ((i * 7 + f * 13) % 251) as u8).collect()).collect();
        let (sheet, width, height) = comparison_sheet(case, &scored);
        assert_eq!((width, height, sheet.len()), (FRAMES * WIDTH, 2 * HEIGHT, 3 * FRAMES * WIDTH * 2 * HEIGHT));
        let pixel = |x: usize, y: usize| &sheet[3 * (y * width + x)..3 * (y * width + x) + 3];
        let rendered = case.scene.render();
        for (f, x, y) in [(0, 0, 0), (5, 17, 40), (FRAMES - 1, WIDTH - 1, HEIGHT - 1)] {
            let i = 3 * (y * WIDTH + x);
            assert_eq!(pixel(f * WIDTH + x, y), &rendered[f][i..i + 3], "render, frame {f}");
            assert_eq!(pixel(f * WIDTH + x, HEIGHT + y), &scored[f][i..i + 3], "scored, frame {f}");
        }
    }

    /// The evaluator reads the world's own renders almost perfectly: its errors are not the
    /// model's. (This bounds what the model can score.)
    #[test]
    fn the_world_itself_scores_near_perfectly() {
        let cases = held_out_cases(60, 5);
        let report = evaluate(&cases, &mut |case| Ok(case.scene.render()), &mut |_, _| {}).unwrap();
        eprintln!("{}", report.table());
        for s in &report.scores {
            if s.shape < 1.0 || s.motion.is_some_and(|m| m < 1.0) || s.count < 1.0 || s.camera.is_some_and(|c| c < 1.0) {
                eprintln!("{:?} {} -> {:?}", s.kind, s.prompt, s.seen);
            }
        }
        assert!(report.colour >= 0.99, "colour {}", report.colour);
        // Edges blended with the backdrop (orange over brown fading through red) are not objects.
        assert!(report.count >= 0.97, "count {}", report.count);
        assert!(report.shape >= 0.9, "shape {}", report.shape);
        assert!(report.motion >= 0.9, "motion {}", report.motion);
        assert!(report.camera >= 0.9, "camera {}", report.camera);
    }

    /// A sampling setting given replaces the checkpoint's; one not given keeps it.
    #[test]
    fn sampling_settings_replace_the_checkpoints_defaults() {
        use reel_sampling::checkpoint::GenerationDefaults;
        let case = &held_out_cases(1, 4)[0];
        let defaults = GenerationDefaults { steps: Some(20), guidance: Some(4.0), ..Default::default() };
        let kept = case_request(&defaults, &Sampling::default(), case);
        assert_eq!((kept.steps, kept.guidance, kept.shift, kept.step_cache), (20, 4.0, None, None));
        let sampling = Sampling { steps: Some(12), guidance: Some(2.5), shift: Some(5.0), step_cache: Some(0.1) };
        let changed = case_request(&defaults, &sampling, case);
        assert_eq!((changed.steps, changed.guidance, changed.shift, changed.step_cache), (12, 2.5, Some(5.0), Some(0.1)));
        assert_eq!((changed.prompt.as_str(), changed.seed), (case.prompt.as_str(), case.seed));
        let guidance_only = case_request(&defaults, &Sampling { guidance: Some(6.0), ..Default::default() }, case);
        assert_eq!((guidance_only.steps, guidance_only.guidance), (20, 6.0));
    }

    /// `count` held-out cases of prompt seed `seed`, scored on clips of which about every other one
    /// is another case's video (picked by `mix_seed`), so that misreadings occur.
    fn report_with_misreadings(count: usize, seed: u64, mix_seed: u64) -> (Vec<Case>, Report) {
        let cases = held_out_cases(count, seed);
        let mut rng = Rng::new(mix_seed);
        let report = evaluate(
            &cases,
            &mut |case| Ok(if rng.f32() < 0.5 { case.scene.render() } else { cases[rng.below(cases.len())].scene.render() }),
            &mut |_, _| {},
        )
        .unwrap();
        (cases, report)
    }

    /// Each asked shape's and motion's tally counts its objects, those read right and the commonest
    /// other reading (a missing object counts as "not found"), and agrees with the report's scores.
    #[test]
    fn tallies_count_right_reads_and_the_commonest_misreading() {
        let (cases, report) = report_with_misreadings(30, 8, 3);
        let objects = |kinds: &[CaseKind]| -> usize {
            report.scores.iter().zip(&cases).filter(|(s, _)| kinds.contains(&s.kind)).map(|(_, c)| c.scene.objects.len()).sum()
        };
        let shape_reads: Vec<&Read> = report.scores.iter().flat_map(|s| &s.shapes).collect();
        let motion_reads: Vec<&Read> = report.scores.iter().flat_map(|s| &s.motions).collect();
        assert_eq!(shape_reads.len(), objects(&[CaseKind::Content, CaseKind::Camera]));
        assert_eq!(motion_reads.len(), objects(&[CaseKind::Content]));
        check_tallies(&report.shape_tallies, &shape_reads, &report.table());
        check_tallies(&report.motion_tallies, &motion_reads, &report.table());
        // Per case the shape and motion scores are the shares of its objects read right.
        let right = |reads: &[Read]| reads.iter().filter(|r| r.seen.as_deref() == Some(r.asked.as_str())).count() as f64;
        for s in &report.scores {
            assert_eq!(s.shape, right(&s.shapes) / s.shapes.len() as f64);
            if s.kind == CaseKind::Content {
                assert_eq!(s.motion, Some(right(&s.motions) / s.motions.len() as f64));
            }
        }
    }

    /// Each group per number of objects asked holds exactly the cases with that many objects, and
    /// its scores are their means (motion over the content cases alone); the groups cover every case.
    #[test]
    fn object_count_groups_average_their_cases() {
        let (cases, report) = report_with_misreadings(24, 5, 8);
        let groups = &report.by_object_count;
        assert!(groups.len() >= 2, "one-object and multi-object prompts both occur: {groups:?}");
        assert!(groups.windows(2).all(|w| w[0].objects < w[1].objects));
        assert_eq!(groups.iter().map(|g| g.cases).sum::<usize>(), cases.len());
        for group in groups {
            let members: Vec<&CaseScore> =
                report.scores.iter().zip(&cases).filter(|(_, c)| c.scene.objects.len() == group.objects).map(|(s, _)| s).collect();
            assert_eq!(group.cases, members.len());
            let average = |values: Vec<f64>| values.iter().sum::<f64>() / values.len() as f64;
            assert!((group.shape - average(members.iter().map(|s| s.shape).collect())).abs() < 1e-12);
            assert!((group.count - average(members.iter().map(|s| s.count).collect())).abs() < 1e-12);
            assert!((group.colour - average(members.iter().map(|s| s.colour).collect())).abs() < 1e-12);
            let motions: Vec<f64> = members.iter().filter(|s| s.kind == CaseKind::Content).map(|s| s.motion.unwrap()).collect();
            assert_eq!(group.motion.is_none(), motions.is_empty());
            if let Some(motion) = group.motion {
                assert!((motion - average(motions)).abs() < 1e-12);
            }
        }
        assert!(groups.iter().any(|g| g.shape < 1.0 || g.count < 1.0), "no miss to average: {}", report.table());
        let table = report.table();
        assert!(groups.iter().all(|g| table.contains(&format!("{} object", g.objects))), "{table}");
    }

    /// A clip with an extra object in a colour the prompt did not ask for counts as showing more
    /// objects, one that lacks an asked object as showing fewer; an extra object seen in only a
    /// few frames counts as fleeting.
    #[test]
    fn count_misses_tell_extra_objects_from_missing_and_fleeting_ones() {
        use crate::world::{Object, Size, COLOURS, WIDTH};
        let case = held_out_cases(20, 6).into_iter().find(|c| c.kind == CaseKind::Content && c.scene.objects.len() == 2).unwrap();
        let colour = *COLOURS.iter().find(|c| case.scene.objects.iter().all(|o| o.colour != **c)).unwrap();
        // The extra object sits still in a corner that no asked object comes near in any frame.
        let asked_frames = case.scene.render();
        let comes_near = |(cx, cy): (usize, usize)| {
            asked_frames.iter().any(|frame| {
                (cy - 8..=cy + 8).any(|y| (cx - 8..=cx + 8).any(|x| crate::analysis::is_object_pixel(&frame[3 * (y * WIDTH + x)..3 * (y * WIDTH + x) + 3])))
            })
        };
        let corner = [(12, 12), (51, 12), (12, 51), (51, 51)].into_iter().find(|c| !comes_near(*c)).expect("a corner free of the asked objects");
        let mut with_extra = case.scene.clone();
        let start = (corner.0 as f32, corner.1 as f32);
        with_extra.objects.push(Object { shape: Shape::Square, colour, size: Size::Medium, motion: Motion::Still, start });
        let mut missing_one = case.scene.clone();
        missing_one.objects.pop();
        let steady = with_extra.render();
        let mut flickering = asked_frames.clone();
        flickering[..6].clone_from_slice(&steady[..6]);
        let scores: Vec<CaseScore> = [steady, missing_one.render(), flickering].iter().map(|frames| score(&case, frames)).collect();
        let table = |s: &CaseScore| format!("{} -> {:?}", s.prompt, s.seen);
        assert_eq!(scores[0].seen.len(), 3, "{}", table(&scores[0]));
        assert_eq!(scores[0].unasked.len(), 1, "{}", table(&scores[0]));
        assert!(scores[0].unasked[0] > 0.9, "{}", table(&scores[0]));
        assert_eq!((scores[1].seen.len(), scores[1].unasked.len()), (1, 0), "{}", table(&scores[1]));
        assert_eq!(scores[2].unasked.len(), 1, "{}", table(&scores[2]));
        assert!(scores[2].unasked[0] < 0.5, "{}", table(&scores[2]));
        let report = Report::new(scores, 0.0);
        assert_eq!(report.count_misses, CountMisses { more: 2, fewer: 1, unasked: 2, fleeting: 1 });
        assert!(report.table().contains("2 prompts showed more objects than asked, 1 fewer; 2 objects in unasked colours, 1 of them"), "{}", report.table());
    }

    fn check_tallies(tallies: &[Tally], reads: &[&Read], table: &str) {
        assert_eq!(tallies.iter().map(|t| t.objects).sum::<usize>(), reads.len());
        assert!(tallies.windows(2).all(|w| w[0].objects >= w[1].objects));
        for tally in tallies {
            let asked: Vec<&&Read> = reads.iter().filter(|r| r.asked == tally.asked).collect();
            assert_eq!(tally.objects, asked.len());
            assert_eq!(tally.right, asked.iter().filter(|r| r.seen.as_deref() == Some(r.asked.as_str())).count());
            match &tally.commonest_misread {
                None => assert_eq!(tally.right, tally.objects, "{tally:?}"),
                Some((reading, n)) => {
                    assert_ne!(reading, &tally.asked);
                    let count = |m: &str| asked.iter().filter(|r| r.seen.as_deref().unwrap_or("not found") == m).count();
                    assert_eq!(count(reading), *n);
                    assert!(asked.iter().all(|r| {
                        let m = r.seen.as_deref().unwrap_or("not found");
                        m == tally.asked || count(m) <= *n
                    }));
                }
            }
        }
        assert!(tallies.iter().any(|t| t.right < t.objects), "no misreading to tally: {table}");
    }

    #[test]
    fn held_out_cases_hold_an_unseen_combination_and_seen_cases_none() {
        use crate::world::is_held_out;
        let held_out = cases(40, 9, Split::HeldOut);
        let seen = cases(40, 9, Split::Train);
        assert!(held_out.iter().all(|c| c.scene.objects.iter().any(is_held_out)));
        assert!(seen.iter().all(|c| !c.scene.objects.iter().any(is_held_out)));
        assert_eq!(seen.iter().filter(|c| c.kind == CaseKind::Camera).count(), 8);
    }

    /// One RGB frame blurred by a Gaussian of one pixel: the softened edges a VAE's decoder draws.
    fn blurred(frame: &[u8]) -> Vec<u8> {
        use crate::analysis::gaussian_blur;
        use crate::world::{HEIGHT, WIDTH};
        let channels: Vec<Vec<f32>> = (0..3)
            .map(|c| gaussian_blur(&frame.iter().skip(c).step_by(3).map(|v| *v as f32).collect::<Vec<_>>(), WIDTH, HEIGHT, 1.0))
            .collect();
        (0..WIDTH * HEIGHT).flat_map(|i| (0..3).map(|c| channels[c][i].round().clamp(0.0, 255.0) as u8).collect::<Vec<_>>()).collect()
    }

    /// Shapes are read through the softened edges a VAE's decoder draws: the world's renders
    /// blurred by a Gaussian of one pixel still score their shapes.
    #[test]
    fn shapes_are_read_through_a_blur() {
        let cases = held_out_cases(40, 9);
        let report = evaluate(&cases, &mut |case| Ok(case.scene.render().iter().map(|f| blurred(f)).collect()), &mut |_, _| {}).unwrap();
        eprintln!("{}", report.table());
        assert!(report.shape >= 0.8, "shape {}", report.shape);
    }

    /// Turning is read from the angle the object's shape fits at, frame by frame: the world's
    /// rotating objects read as rotating and its still ones as still, also when every other frame
    /// is blurred, so that edges flicker as a decoder's do.
    #[test]
    fn turning_is_read_from_the_shape_and_not_from_flickering_edges() {
        use crate::analysis::tracks;
        use crate::world::Motion;
        let (mut asked, mut right) = (0, 0);
        for case in held_out_cases(120, 4).iter().filter(|c| c.kind == CaseKind::Content) {
            let flickering: Vec<Vec<u8>> =
                case.scene.render().iter().enumerate().map(|(i, f)| if i % 2 == 1 { blurred(f) } else { f.clone() }).collect();
            let found = tracks(&flickering);
            for object in case.scene.objects.iter().filter(|o| matches!(o.motion, Motion::Rotate | Motion::Still)) {
                asked += 1;
                right += found.iter().find(|t| t.colour == object.colour).is_some_and(|t| t.motion(t.shape()) == object.motion) as usize;
            }
        }
        assert!(asked >= 20, "only {asked} turning or still objects");
        assert!(right as f64 >= 0.9 * asked as f64, "{right} of {asked} turning or still objects read right");
    }

    #[test]
    fn a_wrong_video_scores_low() {
        let cases = held_out_cases(20, 6);
        // Every clip answered with the first case's video.
        let wrong = cases[0].scene.render();
        let report = evaluate(&cases, &mut |_| Ok(wrong.clone()), &mut |_, _| {}).unwrap();
        assert!(report.colour < 0.5 && report.motion < 0.5, "{}", report.table());
    }
}

/// Sampling settings that depart from the checkpoint's defaults, to measure how a model scores
/// under them; each `None` keeps the checkpoint's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sampling {
    pub steps: Option<usize>,
    pub guidance: Option<f64>,
    /// Flow shift of the scheduler's schedule.
    pub shift: Option<f64>,
    /// Threshold of the step cache (see `reel generate --step-cache`); off when `None`.
    pub step_cache: Option<f64>,
}

/// The demo model (or any checkpoint of the demo's geometry) generating held-out cases at the
/// checkpoint's default settings (or those of a [`Sampling`]), in f32 on the CPU.
pub struct CaseGenerator {
    pipeline: reel_sampling::pipeline::WanPipeline,
    defaults: reel_sampling::checkpoint::GenerationDefaults,
    sampling: Sampling,
}

impl CaseGenerator {
    pub fn open(checkpoint_dir: &std::path::Path, sampling: Sampling) -> Result<Self, Error> {
        let checkpoint = reel_sampling::checkpoint::WanCheckpoint::open(checkpoint_dir)?;
        let defaults = checkpoint.generation_defaults()?;
        let pipeline = reel_sampling::pipeline::WanPipeline::new(checkpoint, candle_core::DType::F32, &candle_core::Device::Cpu);
        Ok(Self { pipeline, defaults, sampling })
    }

    pub fn generate(&self, case: &Case) -> Result<reel_sampling::pipeline::Generated, Error> {
        Ok(self.pipeline.generate(&self.request(case), &mut |_| {})?)
    }

    pub fn pipeline(&self) -> &reel_sampling::pipeline::WanPipeline {
        &self.pipeline
    }

    /// The request for a case: the checkpoint's defaults, the case's prompt and seed.
    pub fn request(&self, case: &Case) -> reel_sampling::pipeline::GenerationRequest {
        case_request(&self.defaults, &self.sampling, case)
    }
}

/// The request for `case` under a checkpoint's `defaults`, overridden by `sampling`.
fn case_request(
    defaults: &reel_sampling::checkpoint::GenerationDefaults,
    sampling: &Sampling,
    case: &Case,
) -> reel_sampling::pipeline::GenerationRequest {
    let mut request = reel_sampling::pipeline::GenerationRequest::new(case.prompt.clone());
    request.frames = defaults.frames.unwrap_or(crate::world::FRAMES);
    request.height = defaults.height.unwrap_or(crate::world::HEIGHT);
    request.width = defaults.width.unwrap_or(crate::world::WIDTH);
    request.steps = sampling.steps.or(defaults.steps).unwrap_or(crate::model::DEFAULT_STEPS);
    request.guidance = sampling.guidance.or(defaults.guidance).unwrap_or(crate::model::DEFAULT_GUIDANCE);
    request.shift = sampling.shift;
    request.max_sequence_length = defaults.max_sequence_length.unwrap_or(crate::model::MAX_SEQUENCE_LENGTH);
    request.seed = case.seed;
    request.step_cache = sampling.step_cache;
    request
}

/// [`CaseGenerator`]'s frames for each case, as [`evaluate`] takes them.
pub fn model_generator(
    checkpoint_dir: &std::path::Path,
    sampling: Sampling,
) -> Result<impl FnMut(&Case) -> ClipFrames, Error> {
    let generator = CaseGenerator::open(checkpoint_dir, sampling)?;
    Ok(move |case: &Case| Ok(generator.generate(case)?.rgb8()?))
}

/// [`CaseGenerator`]'s frames for each case, each clip started from the world's own first frame
/// of the case (image-to-video): the objects are given placed, coloured and shaped, so what is
/// left to score is whether the model moves each as its prompt asks.
pub fn first_frame_generator(
    checkpoint_dir: &std::path::Path,
    sampling: Sampling,
) -> Result<impl FnMut(&Case) -> ClipFrames, Error> {
    let generator = CaseGenerator::open(checkpoint_dir, sampling)?;
    Ok(move |case: &Case| Ok(crate::continuity::generate_from_first_frame(&generator, case, 1)?.0))
}

/// Answers each case with the world's own render passed through a checkpoint's VAE (encode, then
/// decode): what the model could score at best with that VAE.
pub fn vae_round_trip(
    checkpoint_dir: &std::path::Path,
) -> Result<impl FnMut(&Case) -> ClipFrames, Error> {
    use crate::world::{FRAMES, HEIGHT, WIDTH};
    use candle_core::{DType, Device, Tensor};
    let folder = reel_models::weights::ComponentFolder::open(checkpoint_dir.join("vae"))?;
    let vae = reel_models::wan::WanVae::load(&folder, DType::F32, &Device::Cpu)?;
    Ok(move |case: &Case| {
        let rendered = case.scene.render();
        let pixels: Vec<f32> = rendered.iter().flatten().map(|v| *v as f32 / 127.5 - 1.0).collect();
        // (frames, height, width, 3) -> (1, 3, frames, height, width)
        let video = Tensor::from_vec(pixels, (FRAMES, HEIGHT, WIDTH, 3), &Device::Cpu)?.permute((3, 0, 1, 2))?.unsqueeze(0)?;
        let decoded = vae.decode(&vae.encode(&video, None)?.mean, None)?;
        let bytes = ((decoded.squeeze(0)?.permute((1, 2, 3, 0))? + 1.0)? * 127.5)?.round()?.clamp(0f32, 255f32)?.to_dtype(DType::U8)?;
        (0..FRAMES).map(|i| Ok(bytes.get(i)?.flatten_all()?.to_vec1::<u8>()?)).collect()
    })
}
