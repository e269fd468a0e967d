//! Animated GIF for chats and previews: a palette per frame (NeuQuant), looping forever, frame
//! delays rounded to GIF's centiseconds so that the total duration stays right.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};

use crate::{MediaError, Result, VideoFrames};

/// NeuQuant speed (1 best .. 30 fastest): 10 is the gif crate's balance of palette and time.
const QUANTIZE_SPEED: i32 = 10;

/// Display time of frame `i` in centiseconds, so that frame starts land on the nearest centisecond.
pub fn delay_centiseconds(i: usize, fps: f64) -> u32 {
    let start = (i as f64 * 100.0 / fps).round();
    let end = ((i + 1) as f64 * 100.0 / fps).round();
    (end - start).max(1.0) as u32
}

pub fn write_gif(video: &VideoFrames, path: &Path) -> Result<()> {
    let failed = |e: image::ImageError| match e {
        image::ImageError::IoError(source) => MediaError::Write { path: path.to_path_buf(), source },
        other => MediaError::Encode { path: path.to_path_buf(), message: other.to_string() },
    };
    let file = File::create(path).map_err(|source| MediaError::Write { path: path.to_path_buf(), source })?;
    let mut encoder = GifEncoder::new_with_speed(BufWriter::new(file), QUANTIZE_SPEED);
    encoder.set_repeat(Repeat::Infinite).map_err(failed)?;
    for (i, rgb) in video.frames.iter().enumerate() {
        let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        let image = RgbaImage::from_raw(video.width, video.height, rgba).expect("sizes checked by VideoFrames");
        let delay = Delay::from_numer_denom_ms(delay_centiseconds(i, video.fps) * 10, 1);
        encoder.encode_frame(Frame::from_parts(image, 0, 0, delay)).map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::delay_centiseconds;

    #[test]
    fn delays_add_up_to_the_duration() {
        let total: u32 = (0..81).map(|i| delay_centiseconds(i, 16.0)).sum();
        assert_eq!(total, 506); // 81 frames at 16 fps = 5.0625 s
        assert_eq!((0..4).map(|i| delay_centiseconds(i, 16.0)).collect::<Vec<_>>(), vec![6, 7, 6, 6]);
    }
}
