//! Video frames in memory: 8-bit RGB, row-major, all of one size.

use crate::{MediaError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrames {
    pub width: u32,
    pub height: u32,
    /// Frames per second of playback.
    pub fps: f64,
    /// One `width * height * 3` RGB buffer per frame.
    pub frames: Vec<Vec<u8>>,
}

impl VideoFrames {
    /// Checks sizes: at least one frame, every frame `width * height * 3` bytes, a positive fps.
    pub fn new(width: u32, height: u32, fps: f64, frames: Vec<Vec<u8>>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(MediaError::InvalidInput(format!("frame size {width}x{height} is empty")));
        }
        if frames.is_empty() {
            return Err(MediaError::InvalidInput("there are no frames to write".into()));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(MediaError::InvalidInput(format!("fps must be a positive number, found {fps}")));
        }
        let expected = width as usize * height as usize * 3;
        if let Some((i, frame)) = frames.iter().enumerate().find(|(_, f)| f.len() != expected) {
            return Err(MediaError::InvalidInput(format!(
                "frame {i} holds {} bytes, but {width}x{height} RGB frames hold {expected}: all frames \
                 must have the same size",
                frame.len()
            )));
        }
        Ok(Self { width, height, fps, frames })
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Playback length in seconds.
    pub fn duration(&self) -> f64 {
        self.frames.len() as f64 / self.fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert!(VideoFrames::new(2, 2, 16.0, vec![vec![0; 12]; 3]).is_ok());
        let err = VideoFrames::new(2, 2, 16.0, vec![]).unwrap_err().to_string();
        assert!(err.contains("no frames"), "{err}");
        let err = VideoFrames::new(2, 2, 16.0, vec![vec![0; 12], vec![0; 11]]).unwrap_err().to_string();
        assert!(err.contains("frame 1 holds 11 bytes"), "{err}");
        assert!(VideoFrames::new(2, 2, 0.0, vec![vec![0; 12]]).is_err());
        assert!(VideoFrames::new(0, 2, 8.0, vec![vec![]]).is_err());
    }
}
