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

    /// The frames enlarged `factor` times in each direction, bilinearly (pixel centres aligned, as
    /// image editors and ffmpeg's bilinear scaler align them).
    pub fn upscaled(&self, factor: u32) -> Result<Self> {
        if factor == 0 {
            return Err(MediaError::InvalidInput("an upscale factor must be 1 or more".into()));
        }
        if factor == 1 {
            return Ok(self.clone());
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (out_w, out_h) = (w * factor as usize, h * factor as usize);
        // For each output coordinate: the two source indices and the weight of the second.
        let taps = |out: usize, size: usize| -> Vec<(usize, usize, f32)> {
            (0..out)
                .map(|o| {
                    let x = ((o as f32 + 0.5) / factor as f32 - 0.5).clamp(0.0, (size - 1) as f32);
                    let x0 = x.floor() as usize;
                    (x0, (x0 + 1).min(size - 1), x - x0 as f32)
                })
                .collect()
        };
        let (columns, rows) = (taps(out_w, w), taps(out_h, h));
        let frames = self
            .frames
            .iter()
            .map(|frame| {
                let mut out = vec![0u8; out_w * out_h * 3];
                for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
                    for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
                        for c in 0..3 {
                            let at = |yy: usize, xx: usize| frame[(yy * w + xx) * 3 + c] as f32;
                            let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
                            let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
                            out[(y * out_w + x) * 3 + c] = (top + (bottom - top) * fy).round() as u8;
                        }
                    }
                }
                out
            })
            .collect();
        Self::new(out_w as u32, out_h as u32, self.fps, frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscaling_keeps_flat_areas_and_interpolates_edges() {
        // Two columns: black, white.
        let video = VideoFrames::new(2, 1, 8.0, vec![vec![0, 0, 0, 200, 200, 200]]).unwrap();
        let big = video.upscaled(4).unwrap();
        assert_eq!((big.width, big.height, big.len()), (8, 4, 1));
        let row: Vec<u8> = big.frames[0][..24].iter().step_by(3).copied().collect();
        assert_eq!(row, [0, 0, 25, 75, 125, 175, 200, 200]);
        assert_eq!(&big.frames[0][..24], &big.frames[0][72..96], "every row alike");
        assert!(video.upscaled(0).is_err());
    }

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
