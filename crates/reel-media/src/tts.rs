//! Offline speech synthesis with espeak-ng. Its command is run (text on stdin, a WAV file out)
//! rather than linked: that keeps its GPL code out of reel's binary, and Debian, Ubuntu, Fedora
//! and Homebrew all package it. Set `REEL_ESPEAK` to use a binary that is not on the PATH.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::wav::read_wav;
use crate::{Audio, MediaError, Result};

/// Which voice speaks, and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    /// An espeak-ng voice name (`espeak-ng --voices` lists them), such as `en-us` or `en-gb+f3`.
    pub name: String,
    /// Speaking rate in words per minute (espeak-ng accepts 80 to 450).
    pub words_per_minute: u32,
}

impl Default for Voice {
    fn default() -> Self {
        Self { name: "en-us".into(), words_per_minute: 160 }
    }
}

fn espeak_binary() -> PathBuf {
    std::env::var_os("REEL_ESPEAK").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("espeak-ng"))
}

/// Checks that espeak-ng runs and knows `voice` (it would otherwise fall back to its default voice
/// without a word).
pub fn check(voice: &Voice) -> Result<()> {
    check_voice(&espeak_binary(), &voice.name)
}

/// Speaks `text`; the audio is espeak-ng's own (22.05 kHz mono).
pub fn speak(text: &str, voice: &Voice) -> Result<Audio> {
    if text.trim().is_empty() {
        return Err(MediaError::InvalidInput("there is no text to speak".into()));
    }
    if !(80..=450).contains(&voice.words_per_minute) {
        return Err(MediaError::InvalidInput(format!(
            "speaking rate {} words per minute is outside espeak-ng's 80 to 450",
            voice.words_per_minute
        )));
    }
    let binary = espeak_binary();
    check_voice(&binary, &voice.name)?;
    let out = tempfile_path();
    let mut child = Command::new(&binary)
        .args(["-v", &voice.name, "-s", &voice.words_per_minute.to_string(), "-w"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| not_runnable(&binary, e))?;
    // Text goes through stdin so that it is never mistaken for an option.
    let written = child.stdin.take().expect("stdin is piped").write_all(text.as_bytes());
    let output = child.wait_with_output().map_err(|e| MediaError::InvalidInput(format!("{} failed: {e}", binary.display())))?;
    let result = match (written, output.status.success()) {
        (Ok(()), true) => read_wav(&out),
        _ => Err(MediaError::InvalidInput(format!(
            "espeak-ng could not speak with voice '{}': {}",
            voice.name,
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    };
    let _ = std::fs::remove_file(&out);
    result
}

fn not_runnable(binary: &Path, e: std::io::Error) -> MediaError {
    if e.kind() == std::io::ErrorKind::NotFound {
        MediaError::InvalidInput(format!(
            "narration needs espeak-ng, and '{}' was not found: install it (Debian/Ubuntu: apt-get install \
             espeak-ng; Fedora: dnf install espeak-ng; macOS: brew install espeak-ng) or set REEL_ESPEAK to its path",
            binary.display()
        ))
    } else {
        MediaError::InvalidInput(format!("cannot run {}: {e}", binary.display()))
    }
}

/// The names espeak-ng answers to in one `--voices` listing: languages, voice names and files.
fn voice_names(binary: &Path, listing: &str) -> Result<Vec<String>> {
    let output = Command::new(binary).arg(listing).output().map_err(|e| not_runnable(binary, e))?;
    let mut names = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if let [_, language, _, name, file, ..] = columns[..] {
            let file_name = file.rsplit('/').next().unwrap_or(file);
            names.extend([language, name, file, file_name].map(str::to_lowercase));
        }
    }
    Ok(names)
}

/// espeak-ng falls back to its default voice for a name it does not know; reel refuses instead,
/// so that a typo in a storyboard is not heard as the wrong accent.
fn check_voice(binary: &Path, name: &str) -> Result<()> {
    let (language, variant) = match name.split_once('+') {
        Some((language, variant)) => (language, Some(variant)),
        None => (name, None),
    };
    let unknown = |what: &str, listing: &str| {
        MediaError::InvalidInput(format!("espeak-ng has no {what} '{name}': list them with `espeak-ng {listing}`"))
    };
    if !voice_names(binary, "--voices")?.contains(&language.to_lowercase()) {
        return Err(unknown("voice", "--voices"));
    }
    if let Some(variant) = variant {
        if !voice_names(binary, "--voices=variant")?.contains(&variant.to_lowercase()) {
            return Err(unknown("voice variant in", "--voices=variant"));
        }
    }
    Ok(())
}

/// A fresh file name in the temporary folder.
fn tempfile_path() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("reel-tts-{}-{n}.wav", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_english_for_about_the_expected_time() {
        let words = "The red square crosses the frame from left to right.";
        let audio = speak(words, &Voice::default()).unwrap();
        // Ten words at 160 words per minute: about four seconds, with pauses.
        assert!((2.0..6.0).contains(&audio.duration()), "{} s", audio.duration());
        let rms = (audio.samples.iter().map(|s| s * s).sum::<f32>() / audio.samples.len() as f32).sqrt();
        assert!(rms > 0.02, "speech is near silent: rms {rms}");
        let faster = speak(words, &Voice { words_per_minute: 320, ..Voice::default() }).unwrap();
        assert!(faster.duration() < audio.duration() * 0.75);
    }

    #[test]
    fn bad_voices_and_rates_are_explained() {
        let err = speak("hello", &Voice { name: "no-such-voice".into(), ..Voice::default() }).unwrap_err().to_string();
        assert!(err.contains("no voice 'no-such-voice'") && err.contains("--voices"), "{err}");
        let err = speak("hello", &Voice { name: "en-us+nobody".into(), ..Voice::default() }).unwrap_err().to_string();
        assert!(err.contains("--voices=variant"), "{err}");
        assert!(speak("hello", &Voice { name: "en-gb+klatt".into(), ..Voice::default() }).is_ok());
        let err = speak("hello", &Voice { words_per_minute: 20, ..Voice::default() }).unwrap_err().to_string();
        assert!(err.contains("80 to 450"), "{err}");
        assert!(speak("  ", &Voice::default()).is_err());
    }
}
