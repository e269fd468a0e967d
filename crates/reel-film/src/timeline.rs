//! Frame-exact timing of a film: where each shot starts, how long it runs, where its narration and
//! subtitle go. Everything is counted in frames so that audio, cues and pictures cannot drift.

use reel_media::subtitles::Cue;

use crate::storyboard::{NarrationOverflow, Storyboard, Transition};
use crate::{FilmError, Result};

/// Silence kept after a shot's narration before the next shot begins (under `extend`).
pub const NARRATION_TAIL_SECONDS: f64 = 0.25;

/// One shot's place in the film.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotTiming {
    /// First frame of the shot in the film (the first frame of its fade-in, if any).
    pub start: usize,
    /// Frames the shot contributes, its fade-in and fade-out overlaps included.
    pub frames: usize,
    /// Frames at the start that blend over the previous shot (0 for a cut).
    pub fade_in: usize,
    /// The frame where the next shot begins (the film's end for the last shot). The shot's own
    /// interval, where its narration and subtitle live, is `start..own_end`.
    pub own_end: usize,
    /// Frames added to fit the narration (`extend`).
    pub extended_by: usize,
    /// Seconds of narration that play (all of it, unless `warn` cut it at the shot's end).
    pub narration_seconds: Option<f64>,
    /// The shot's subtitle.
    pub cue: Option<Cue>,
}

/// The film's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub fps: f64,
    pub shots: Vec<ShotTiming>,
    pub total_frames: usize,
    /// Things the user should know (narration cut short under `warn`).
    pub warnings: Vec<String>,
}

impl Timeline {
    pub fn seconds(&self, frame: usize) -> f64 {
        frame as f64 / self.fps
    }

    pub fn duration(&self) -> f64 {
        self.seconds(self.total_frames)
    }

    pub fn cues(&self) -> Vec<Cue> {
        self.shots.iter().filter_map(|s| s.cue.clone()).collect()
    }
}

/// Lays out the shots at `fps`, given each shot's spoken narration length in seconds.
pub fn plan(storyboard: &Storyboard, fps: f64, narration_seconds: &[Option<f64>]) -> Result<Timeline> {
    let shots = &storyboard.shots;
    assert_eq!(shots.len(), narration_seconds.len(), "one narration length per shot");
    let invalid = |i: usize, field: &str, problem: String| FilmError::Storyboard(format!("shots[{i}].{field}: {problem}"));

    let mut frames: Vec<usize> = Vec::with_capacity(shots.len());
    for (i, shot) in shots.iter().enumerate() {
        let count = (shot.duration * fps).round() as usize;
        if count == 0 {
            return Err(invalid(i, "duration", format!("{} s is shorter than one frame at {fps} fps", shot.duration)));
        }
        frames.push(count);
    }
    // fade[i]: frames by which shot i overlaps shot i - 1.
    let fade: Vec<usize> = (0..shots.len())
        .map(|i| match storyboard.transition_into(i) {
            Transition::Cut => 0,
            Transition::Crossfade(seconds) => ((seconds * fps).round() as usize).max(1),
        })
        .collect();
    let fade_out = |i: usize| fade.get(i + 1).copied().unwrap_or(0);

    let mut warnings = Vec::new();
    let mut extended_by = vec![0; shots.len()];
    let mut spoken = narration_seconds.to_vec();
    for i in 0..shots.len() {
        if fade[i] + fade_out(i) >= frames[i] {
            return Err(invalid(
                i,
                "transition",
                format!(
                    "the shot lasts {} frames, too few for its {} frames of crossfade in and {} frames out: lengthen it or shorten the crossfades",
                    frames[i], fade[i], fade_out(i)
                ),
            ));
        }
        let Some(seconds) = narration_seconds[i] else { continue };
        let own_frames = frames[i] - fade_out(i);
        let needed = ((seconds + NARRATION_TAIL_SECONDS) * fps).ceil() as usize;
        if needed <= own_frames {
            continue;
        }
        match storyboard.narration_overflow {
            NarrationOverflow::Extend => {
                extended_by[i] = needed - own_frames;
                frames[i] += extended_by[i];
            }
            NarrationOverflow::Warn => {
                let available = own_frames as f64 / fps;
                if seconds > available {
                    spoken[i] = Some(available);
                    warnings.push(format!(
                        "shot {}: its narration lasts {seconds:.2} s but the shot leaves {available:.2} s for it; the last {:.2} s are cut (set narration_overflow: extend to lengthen the shot instead)",
                        i + 1,
                        seconds - available
                    ));
                }
            }
        }
    }

    let mut timings = Vec::with_capacity(shots.len());
    let mut start = 0usize;
    for (i, shot) in shots.iter().enumerate() {
        if i > 0 {
            start -= fade[i];
        }
        let own_end = start + frames[i] - fade_out(i);
        let seconds = |frame: usize| frame as f64 / fps;
        let text = shot.subtitle.as_ref().or(shot.narration.as_ref());
        let cue = text.map(|text| Cue {
            start: seconds(start),
            // A narrated subtitle stays up while the words are spoken; a silent one for the shot.
            end: match spoken[i] {
                Some(spoken) => (seconds(start) + spoken).min(seconds(own_end)),
                None => seconds(own_end),
            },
            text: text.trim().to_string(),
        });
        timings.push(ShotTiming {
            start,
            frames: frames[i],
            fade_in: fade[i],
            own_end,
            extended_by: extended_by[i],
            narration_seconds: spoken[i],
            cue,
        });
        start += frames[i];
    }
    Ok(Timeline { fps, total_frames: start, shots: timings, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storyboard(extra: &str, shots: &[(f64, Option<&str>, &str)]) -> Storyboard {
        let mut yaml = format!("title: t\nmodel: demo\n{extra}shots:\n");
        for (duration, narration, transition) in shots {
            yaml += &format!("  - prompt: p\n    duration: {duration}\n    transition: {transition}\n");
            if let Some(n) = narration {
                yaml += &format!("    narration: {n}\n");
            }
        }
        Storyboard::from_yaml(&yaml).unwrap()
    }

    #[test]
    fn cuts_place_shots_end_to_end() {
        let board = storyboard("", &[(1.0, None, "cut"), (0.5, None, "cut"), (2.0, None, "cut")]);
        let timeline = plan(&board, 8.0, &[None, None, None]).unwrap();
        let starts: Vec<usize> = timeline.shots.iter().map(|s| s.start).collect();
        assert_eq!(starts, [0, 8, 12]);
        assert_eq!(timeline.total_frames, 28);
        assert_eq!(timeline.duration(), 3.5);
    }

    #[test]
    fn a_crossfade_overlaps_the_previous_shot() {
        let board = storyboard("", &[(2.0, None, "cut"), (2.0, None, "{crossfade: 0.5}")]);
        let timeline = plan(&board, 8.0, &[None, None]).unwrap();
        assert_eq!(timeline.shots[1].start, 12);
        assert_eq!(timeline.shots[1].fade_in, 4);
        assert_eq!(timeline.shots[0].own_end, 12);
        assert_eq!(timeline.total_frames, 28);
    }

    #[test]
    fn long_narration_extends_its_shot_and_the_cue_follows_the_speech() {
        let board = storyboard("", &[(1.0, Some("hello"), "cut"), (1.0, Some("again"), "cut")]);
        let timeline = plan(&board, 8.0, &[Some(1.6), Some(0.5)]).unwrap();
        let first = &timeline.shots[0];
        // 1.6 s + 0.25 s tail = 14.8 frames -> 15.
        assert_eq!((first.frames, first.extended_by, first.own_end), (15, 7, 15));
        let cue = first.cue.as_ref().unwrap();
        assert_eq!((cue.start, cue.end), (0.0, 1.6));
        let second = &timeline.shots[1];
        assert_eq!(second.extended_by, 0);
        assert_eq!(second.cue.as_ref().unwrap().start, 15.0 / 8.0);
        assert!(timeline.warnings.is_empty());
    }

    #[test]
    fn warn_keeps_the_length_and_cuts_the_narration() {
        let board = storyboard("narration_overflow: warn\n", &[(1.0, Some("hello"), "cut"), (1.0, None, "cut")]);
        let timeline = plan(&board, 8.0, &[Some(1.6), None]).unwrap();
        assert_eq!(timeline.shots[0].frames, 8);
        assert_eq!(timeline.shots[0].narration_seconds, Some(1.0));
        assert_eq!(timeline.shots[0].cue.as_ref().unwrap().end, 1.0);
        assert_eq!(timeline.warnings.len(), 1);
        assert!(timeline.warnings[0].contains("shot 1"), "{}", timeline.warnings[0]);
    }

    #[test]
    fn crossfades_longer_than_the_shot_are_refused() {
        let board = storyboard("", &[(1.0, None, "cut"), (0.5, None, "{crossfade: 0.5}")]);
        let error = plan(&board, 8.0, &[None, None]).unwrap_err().to_string();
        assert!(error.contains("shots[1].transition"), "{error}");
        let tiny = storyboard("", &[(0.01, None, "cut")]);
        let error = plan(&tiny, 8.0, &[None]).unwrap_err().to_string();
        assert!(error.contains("shots[0].duration") && error.contains("one frame"), "{error}");
    }
}
