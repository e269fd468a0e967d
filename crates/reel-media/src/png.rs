//! PNG frame sequences: `00000.png`, `00001.png`, ... in a folder, for frame-by-frame comparison.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Rgb};

use crate::{MediaError, Result, VideoFrames};

/// Writes every frame as `NNNNN.png` into `dir` (created if needed); returns the files in order.
pub fn write_png_sequence(video: &VideoFrames, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| MediaError::Write { path: dir.to_path_buf(), source })?;
    video
        .frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let path = dir.join(format!("{i:05}.png"));
            write_png(frame, video.width, video.height, &path)?;
            Ok(path)
        })
        .collect()
}

/// One RGB frame as a PNG file.
pub fn write_png(frame: &[u8], width: u32, height: u32, path: &Path) -> Result<()> {
    let image: ImageBuffer<Rgb<u8>, &[u8]> = ImageBuffer::from_raw(width, height, frame).ok_or_else(|| {
        MediaError::InvalidInput(format!("a {width}x{height} RGB frame needs {} bytes, got {}", width * height * 3, frame.len()))
    })?;
    image.save(path).map_err(|e| match e {
        image::ImageError::IoError(source) => MediaError::Write { path: path.to_path_buf(), source },
        other => MediaError::Encode { path: path.to_path_buf(), message: other.to_string() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_png() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| (0..4 * 3 * 3).map(|p| (p as u8).wrapping_mul(17).wrapping_add(i * 50)).collect()).collect();
        let video = VideoFrames::new(4, 3, 8.0, frames.clone()).unwrap();
        let files = write_png_sequence(&video, &dir.path().join("out")).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[2].ends_with("00002.png"));
        for (file, frame) in files.iter().zip(&frames) {
            let read = image::open(file).unwrap().to_rgb8();
            assert_eq!(read.dimensions(), (4, 3));
            assert_eq!(read.as_raw(), frame);
        }
    }
}
