//! Audio in memory: interleaved f32 samples in [-1, 1].

use crate::{MediaError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Interleaved samples, `channels` per frame.
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn new(sample_rate: u32, channels: u16, samples: Vec<f32>) -> Result<Self> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::InvalidInput(format!("audio must be mono or stereo, found {channels} channels")));
        }
        if sample_rate == 0 {
            return Err(MediaError::InvalidInput("audio sample rate must be positive".into()));
        }
        if samples.len() % channels as usize != 0 {
            return Err(MediaError::InvalidInput(format!(
                "{} interleaved samples do not divide into {channels} channels",
                samples.len()
            )));
        }
        Ok(Self { sample_rate, channels, samples })
    }

    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels as usize
    }

    pub fn duration(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }

    /// `seconds` of silence.
    pub fn silence(sample_rate: u32, channels: u16, seconds: f64) -> Result<Self> {
        let frames = (seconds.max(0.0) * sample_rate as f64).round() as usize;
        Self::new(sample_rate, channels, vec![0.0; frames * channels as usize])
    }

    /// The same sound at another sample rate (band-limited: a Lanczos-windowed sinc, 16 lobes).
    pub fn resample(&self, sample_rate: u32) -> Result<Self> {
        if sample_rate == self.sample_rate {
            return Ok(self.clone());
        }
        const LOBES: f64 = 16.0;
        let ratio = sample_rate as f64 / self.sample_rate as f64;
        // Downsampling lowers the cut-off to the new Nyquist frequency.
        let cutoff = ratio.min(1.0);
        let half_width = LOBES / cutoff;
        let channels = self.channels as usize;
        let (input_frames, output_frames) = (self.frames(), (self.frames() as f64 * ratio).round() as usize);
        let mut samples = vec![0f32; output_frames * channels];
        for out in 0..output_frames {
            let centre = out as f64 / ratio;
            let first = (centre - half_width).ceil().max(0.0) as usize;
            let last = ((centre + half_width).floor() as usize).min(input_frames.saturating_sub(1));
            for input in first..=last {
                let x = (input as f64 - centre) * cutoff;
                let weight = (cutoff * sinc(x) * sinc(x / LOBES)) as f32;
                for c in 0..channels {
                    samples[out * channels + c] += weight * self.samples[input * channels + c];
                }
            }
        }
        Self::new(sample_rate, self.channels, samples)
    }

    /// Adds `other` (same rate and channels) starting at `start` seconds, growing `self` if it
    /// runs past the end.
    pub fn mix_at(&mut self, other: &Audio, start: f64) -> Result<()> {
        if other.sample_rate != self.sample_rate || other.channels != self.channels {
            return Err(MediaError::InvalidInput(format!(
                "cannot mix {} Hz x{} audio into {} Hz x{}: resample it first",
                other.sample_rate, other.channels, self.sample_rate, self.channels
            )));
        }
        let offset = (start.max(0.0) * self.sample_rate as f64).round() as usize * self.channels as usize;
        if self.samples.len() < offset + other.samples.len() {
            self.samples.resize(offset + other.samples.len(), 0.0);
        }
        for (target, sample) in self.samples[offset..].iter_mut().zip(&other.samples) {
            *target += sample;
        }
        Ok(())
    }

    /// Root-mean-square level of the samples from `start` to `end` seconds (0 where there are none).
    pub fn rms(&self, start: f64, end: f64) -> f32 {
        let channels = self.channels as usize;
        let at = |t: f64| ((t.max(0.0) * self.sample_rate as f64).round() as usize * channels).min(self.samples.len());
        let window = &self.samples[at(start)..at(end).max(at(start))];
        if window.is_empty() {
            return 0.0;
        }
        (window.iter().map(|s| s * s).sum::<f32>() / window.len() as f32).sqrt()
    }

    /// The sound without the silence before and after it (samples below `threshold` in magnitude),
    /// keeping `margin` seconds of each so that onsets and decays stay natural.
    pub fn trimmed(&self, threshold: f32, margin: f64) -> Result<Self> {
        let channels = self.channels as usize;
        let loud = |frame: &[f32]| frame.iter().any(|s| s.abs() > threshold);
        let frames: Vec<&[f32]> = self.samples.chunks_exact(channels).collect();
        let Some(first) = frames.iter().position(|f| loud(f)) else {
            return Self::new(self.sample_rate, self.channels, Vec::new());
        };
        let last = frames.iter().rposition(|f| loud(f)).expect("a loud frame exists");
        let keep = (margin.max(0.0) * self.sample_rate as f64).round() as usize;
        let (start, end) = (first.saturating_sub(keep), (last + 1 + keep).min(frames.len()));
        Self::new(self.sample_rate, self.channels, self.samples[start * channels..end * channels].to_vec())
    }

    /// Samples as 16-bit PCM, clipped.
    pub fn to_i16(&self) -> Vec<i16> {
        self.samples.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16).collect()
    }
}

/// sin(pi x) / (pi x).
fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_drops_the_silence_around_the_sound() {
        let mut samples = vec![0.0f32; 100];
        samples.extend((0..50).map(|i| if i % 2 == 0 { 0.5 } else { -0.5 }));
        samples.extend(vec![0.001f32; 200]);
        let audio = Audio::new(1000, 1, samples).unwrap();
        let trimmed = audio.trimmed(0.01, 0.01).unwrap();
        // 50 loud samples and 10 ms (10 samples) of margin each side.
        assert_eq!(trimmed.frames(), 70);
        assert_eq!(trimmed.samples[10], 0.5);
        assert_eq!(Audio::silence(1000, 2, 1.0).unwrap().trimmed(0.01, 0.01).unwrap().frames(), 0);
    }

    fn tone(rate: u32, hz: f64, seconds: f64) -> Audio {
        let n = (rate as f64 * seconds) as usize;
        Audio::new(rate, 1, (0..n).map(|i| (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as f32).collect()).unwrap()
    }

    #[test]
    fn resampling_keeps_a_tone() {
        let up = tone(22_050, 440.0, 1.0).resample(48_000).unwrap();
        assert_eq!(up.frames(), 48_000);
        let expected = tone(48_000, 440.0, 1.0);
        // Away from the edges the resampled tone equals the tone made at the new rate.
        let error: f32 = up.samples[1000..47_000].iter().zip(&expected.samples[1000..47_000]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(error < 5e-3, "max error {error}");
        let down = expected.resample(16_000).unwrap();
        assert_eq!(down.frames(), 16_000);
        assert!((down.rms(0.1, 0.9) - 0.5 / 2f32.sqrt()).abs() < 5e-3);
    }

    #[test]
    fn mixing_places_sound_at_its_time() {
        let mut track = Audio::silence(8000, 1, 2.0).unwrap();
        track.mix_at(&tone(8000, 300.0, 0.5), 1.0).unwrap();
        assert!(track.rms(0.0, 0.99) == 0.0);
        assert!(track.rms(1.0, 1.5) > 0.3);
        assert!(track.rms(1.51, 2.0) == 0.0);
        track.mix_at(&tone(8000, 300.0, 1.0), 1.5).unwrap();
        assert!((track.duration() - 2.5).abs() < 1e-9);
        let err = track.mix_at(&tone(16_000, 300.0, 0.1), 0.0).unwrap_err().to_string();
        assert!(err.contains("resample"), "{err}");
    }
}
