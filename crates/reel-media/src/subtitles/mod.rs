//! Subtitles: timed cues, written as SubRip (`.srt`) and WebVTT (`.vtt`), or burned into frames.

mod burn;

pub use burn::{burn_cues, burn_text, text_area, PixelBox, SubtitleStyle};

use std::path::Path;

use crate::{MediaError, Result};

/// One subtitle: text shown from `start` to `end` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

impl Cue {
    pub fn contains(&self, seconds: f64) -> bool {
        self.start <= seconds && seconds < self.end
    }
}

/// Checks that cues are non-empty, ordered and non-overlapping (players show overlapping cues
/// stacked, which is never what a narrated film wants).
pub fn check_cues(cues: &[Cue]) -> Result<()> {
    for (i, cue) in cues.iter().enumerate() {
        if !(cue.start.is_finite() && cue.end.is_finite() && cue.start >= 0.0 && cue.end > cue.start) {
            return Err(MediaError::InvalidInput(format!(
                "subtitle cue {} runs from {:.3} s to {:.3} s: it must start at 0 or later and end after it starts",
                i + 1,
                cue.start,
                cue.end
            )));
        }
        if let Some(previous) = i.checked_sub(1).map(|p| &cues[p]) {
            if cue.start < previous.end {
                return Err(MediaError::InvalidInput(format!(
                    "subtitle cue {} starts at {:.3} s, before cue {} ends at {:.3} s",
                    i + 1,
                    cue.start,
                    i,
                    previous.end
                )));
            }
        }
    }
    Ok(())
}

/// `HH:MM:SS<separator>mmm`.
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = (seconds * 1000.0).round() as u64;
    let (h, m, s, ms) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60, millis % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// SubRip text: numbered cues, comma before the milliseconds.
pub fn to_srt(cues: &[Cue]) -> Result<String> {
    check_cues(cues)?;
    let mut text = String::new();
    for (i, cue) in cues.iter().enumerate() {
        text.push_str(&format!("{}\n{} --> {}\n{}\n\n", i + 1, timestamp(cue.start, ','), timestamp(cue.end, ','), cue.text.trim()));
    }
    Ok(text)
}

/// WebVTT text: the header line, then cues with a dot before the milliseconds.
pub fn to_webvtt(cues: &[Cue]) -> Result<String> {
    check_cues(cues)?;
    let mut text = String::from("WEBVTT\n\n");
    for (i, cue) in cues.iter().enumerate() {
        // "-->" may not appear in a WebVTT cue's text.
        let body = cue.text.trim().replace("-->", "->");
        text.push_str(&format!("{}\n{} --> {}\n{}\n\n", i + 1, timestamp(cue.start, '.'), timestamp(cue.end, '.'), body));
    }
    Ok(text)
}

/// Writes `cues` as SubRip or WebVTT, by the path's extension.
pub fn write_subtitles(cues: &[Cue], path: &Path) -> Result<()> {
    let extension = path.extension().unwrap_or_default().to_string_lossy().to_lowercase();
    let text = match extension.as_str() {
        "srt" => to_srt(cues)?,
        "vtt" => to_webvtt(cues)?,
        other => {
            return Err(MediaError::InvalidInput(format!(
                "cannot write subtitles as '.{other}' ({}): use .srt or .vtt",
                path.display()
            )))
        }
    };
    std::fs::write(path, text).map_err(|source| MediaError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues() -> Vec<Cue> {
        vec![
            Cue { start: 0.25, end: 1.5, text: "A red square.".into() },
            Cue { start: 3661.0, end: 3662.0625, text: "An hour --> later".into() },
        ]
    }

    #[test]
    fn srt_and_webvtt_timestamps() {
        let srt = to_srt(&cues()).unwrap();
        assert_eq!(srt, "1\n00:00:00,250 --> 00:00:01,500\nA red square.\n\n2\n01:01:01,000 --> 01:01:02,063\nAn hour --> later\n\n");
        let vtt = to_webvtt(&cues()).unwrap();
        assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:00.250 --> 00:00:01.500\nA red square.\n"), "{vtt}");
        assert!(vtt.contains("01:01:01.000 --> 01:01:02.063\nAn hour -> later\n"), "{vtt}");
    }

    #[test]
    fn bad_cues_are_named() {
        let backwards = [Cue { start: 2.0, end: 1.0, text: "x".into() }];
        assert!(to_srt(&backwards).unwrap_err().to_string().contains("cue 1 runs from 2.000 s to 1.000 s"));
        let overlapping = [Cue { start: 0.0, end: 2.0, text: "a".into() }, Cue { start: 1.0, end: 3.0, text: "b".into() }];
        assert!(to_webvtt(&overlapping).unwrap_err().to_string().contains("cue 2 starts at 1.000 s, before cue 1 ends"));
        let err = write_subtitles(&cues(), Path::new("/tmp/x.ass")).unwrap_err().to_string();
        assert!(err.contains("use .srt or .vtt"), "{err}");
    }
}
