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

    /// Samples as 16-bit PCM, clipped.
    pub fn to_i16(&self) -> Vec<i16> {
        self.samples.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16).collect()
    }
}
