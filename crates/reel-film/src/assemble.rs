//! Putting a film together from rendered shots: the picture (cuts and crossfades), and the
//! soundtrack (each shot's narration at its start, silence elsewhere).

use reel_media::subtitles::{burn_cues, SubtitleStyle};
use reel_media::{Audio, VideoFrames};

use crate::storyboard::Storyboard;
use crate::timeline::Timeline;
use crate::Result;

/// The soundtrack's sample rate: AAC's usual rate for video.
pub const FILM_SAMPLE_RATE: u32 = 48_000;

/// Fade applied where `warn` cuts a narration short, so the cut does not click.
const CUT_FADE_SECONDS: f64 = 0.02;

/// The film's picture: the shots joined, enlarged by the storyboard's `upscale`, with the subtitles
/// burned in when it asks for them.
pub fn picture(storyboard: &Storyboard, timeline: &Timeline, width: u32, height: u32, shots: &[Vec<Vec<u8>>]) -> Result<VideoFrames> {
    let mut video = join_shots(timeline, width, height, shots)?.upscaled(storyboard.upscale)?;
    if storyboard.burn_subtitles {
        burn_cues(&mut video, &timeline.cues(), &SubtitleStyle::default());
    }
    Ok(video)
}

/// Lays the shots' frames on the timeline. `shots[i]` holds at least `timeline.shots[i].frames`
/// frames (models generate in steps of their temporal compression; the excess is dropped).
pub fn join_shots(timeline: &Timeline, width: u32, height: u32, shots: &[Vec<Vec<u8>>]) -> Result<VideoFrames> {
    let mut film: Vec<Vec<u8>> = Vec::with_capacity(timeline.total_frames);
    for (timing, frames) in timeline.shots.iter().zip(shots) {
        for (j, frame) in frames[..timing.frames].iter().enumerate() {
            let at = timing.start + j;
            if j < timing.fade_in {
                // The new shot's weight rises linearly over the overlap, never 0 or 1 inside it.
                let alpha = (j + 1) as f32 / (timing.fade_in + 1) as f32;
                for (old, new) in film[at].iter_mut().zip(frame) {
                    *old = (*old as f32 + (*new as f32 - *old as f32) * alpha).round() as u8;
                }
            } else {
                debug_assert_eq!(at, film.len(), "shots follow each other without gaps");
                film.push(frame.clone());
            }
        }
    }
    Ok(VideoFrames::new(width, height, timeline.fps, film)?)
}

/// The film's soundtrack: mono at [`FILM_SAMPLE_RATE`], exactly as long as the picture, with each
/// shot's narration placed at the shot's first frame.
pub fn soundtrack(timeline: &Timeline, narrations: &[Option<Audio>]) -> Result<Audio> {
    let mut track = Audio::silence(FILM_SAMPLE_RATE, 1, timeline.duration())?;
    let length = track.samples.len();
    for (timing, narration) in timeline.shots.iter().zip(narrations) {
        let (Some(narration), Some(seconds)) = (narration, timing.narration_seconds) else { continue };
        let mut voice = mono(&narration.resample(FILM_SAMPLE_RATE)?)?;
        let keep = (seconds * FILM_SAMPLE_RATE as f64).round() as usize;
        if keep < voice.samples.len() {
            voice.samples.truncate(keep);
            fade_out(&mut voice.samples, (CUT_FADE_SECONDS * FILM_SAMPLE_RATE as f64) as usize);
        }
        track.mix_at(&voice, timeline.seconds(timing.start))?;
    }
    track.samples.truncate(length);
    Ok(track)
}

fn mono(audio: &Audio) -> Result<Audio> {
    if audio.channels == 1 {
        return Ok(audio.clone());
    }
    let samples = audio.samples.chunks_exact(2).map(|lr| (lr[0] + lr[1]) / 2.0).collect();
    Ok(Audio::new(audio.sample_rate, 1, samples)?)
}

fn fade_out(samples: &mut [f32], length: usize) {
    let length = length.min(samples.len());
    let start = samples.len() - length;
    for (i, sample) in samples[start..].iter_mut().enumerate() {
        *sample *= 1.0 - (i + 1) as f32 / length as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storyboard::Storyboard;
    use crate::timeline::plan;

    fn timeline(yaml_shots: &str, narration: &[Option<f64>]) -> Timeline {
        let board = Storyboard::from_yaml(&format!("title: t\nmodel: demo\nnarration_overflow: warn\nshots:\n{yaml_shots}")).unwrap();
        plan(&board, 4.0, narration).unwrap()
    }

    fn flat(value: u8, count: usize) -> Vec<Vec<u8>> {
        vec![vec![value; 3]; count]
    }

    #[test]
    fn cuts_concatenate_and_extra_frames_are_dropped() {
        let t = timeline("  - {prompt: a, duration: 1}\n  - {prompt: b, duration: 0.5}\n", &[None, None]);
        let video = join_shots(&t, 1, 1, &[flat(10, 5), flat(200, 5)]).unwrap();
        let values: Vec<u8> = video.frames.iter().map(|f| f[0]).collect();
        assert_eq!(values, [10, 10, 10, 10, 200, 200]);
    }

    #[test]
    fn a_crossfade_blends_the_overlap() {
        let t = timeline("  - {prompt: a, duration: 1}\n  - {prompt: b, duration: 1, transition: {crossfade: 0.5}}\n", &[None, None]);
        let video = join_shots(&t, 1, 1, &[flat(0, 5), flat(240, 5)]).unwrap();
        let values: Vec<u8> = video.frames.iter().map(|f| f[0]).collect();
        assert_eq!(values, [0, 0, 80, 160, 240, 240]);
    }

    #[test]
    fn narration_sits_at_its_shot_and_is_cut_under_warn() {
        let t = timeline(
            "  - {prompt: a, duration: 1, narration: hi}\n  - {prompt: b, duration: 1}\n  - {prompt: c, duration: 1, narration: long}\n",
            &[Some(0.5), None, Some(3.0)],
        );
        let tone = |seconds: f64| {
            let n = (seconds * 16_000.0) as usize;
            Audio::new(16_000, 1, (0..n).map(|i| 0.5 * (i as f32 * 0.2).sin()).collect()).unwrap()
        };
        let track = soundtrack(&t, &[Some(tone(0.5)), None, Some(tone(3.0))]).unwrap();
        assert_eq!(track.sample_rate, FILM_SAMPLE_RATE);
        assert_eq!(track.frames(), 3 * FILM_SAMPLE_RATE as usize);
        assert!(track.rms(0.05, 0.45) > 0.2);
        assert!(track.rms(0.55, 2.0) < 1e-3, "silence between narrations");
        assert!(track.rms(2.05, 2.9) > 0.2);
    }
}
