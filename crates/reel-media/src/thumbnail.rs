//! Stills made from a video: a thumbnail (one frame) and a spritesheet (evenly spaced frames in a
//! grid, one image), as the OpenAI-compatible Videos API serves them.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{ImageFormat, RgbImage};

use crate::{webp, MediaError, Result, VideoFrames};

/// Which frame a thumbnail shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThumbnailFrame {
    First,
    /// The middle frame: usually more representative than the first.
    #[default]
    Middle,
}

/// Image formats for stills, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StillFormat {
    Jpeg,
    Webp,
    Png,
}

impl StillFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        match extension.as_str() {
            "jpg" | "jpeg" => Ok(Self::Jpeg),
            "webp" => Ok(Self::Webp),
            "png" => Ok(Self::Png),
            other => Err(MediaError::InvalidInput(format!(
                "cannot write a still image as '.{other}' ({}): use .jpg, .webp or .png",
                path.display()
            ))),
        }
    }

    pub fn mime(&self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Png => "image/png",
        }
    }
}

/// JPEG quality (0-100) of stills.
const JPEG_QUALITY: u8 = 90;

fn frame_image(video: &VideoFrames, index: usize) -> RgbImage {
    RgbImage::from_raw(video.width, video.height, video.frames[index].clone()).expect("sizes checked by VideoFrames")
}

/// Encodes an RGB image in `format`.
pub fn encode_still(image: &RgbImage, format: StillFormat) -> Result<Vec<u8>> {
    let failed = |e: image::ImageError| MediaError::InvalidInput(format!("cannot encode a still image: {e}"));
    match format {
        StillFormat::Webp => webp::encode_still(image.as_raw(), image.width(), image.height(), webp::DEFAULT_QUALITY),
        StillFormat::Jpeg => {
            let mut bytes = Vec::new();
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
            image.write_with_encoder(encoder).map_err(failed)?;
            Ok(bytes)
        }
        StillFormat::Png => {
            let mut bytes = std::io::Cursor::new(Vec::new());
            image.write_to(&mut bytes, ImageFormat::Png).map_err(failed)?;
            Ok(bytes.into_inner())
        }
    }
}

/// The thumbnail frame, full size.
pub fn thumbnail(video: &VideoFrames, which: ThumbnailFrame) -> RgbImage {
    let index = match which {
        ThumbnailFrame::First => 0,
        ThumbnailFrame::Middle => video.len() / 2,
    };
    frame_image(video, index)
}

/// A grid of `columns` x `rows` frames spaced evenly from the first to the last, each scaled to
/// `tile_width` pixels wide (keeping the aspect ratio). Fewer frames than cells leave the grid
/// shorter: every frame appears once.
pub fn spritesheet(video: &VideoFrames, columns: u32, rows: u32, tile_width: u32) -> Result<RgbImage> {
    if columns == 0 || rows == 0 || tile_width == 0 {
        return Err(MediaError::InvalidInput("a spritesheet needs at least one column, one row and a tile width".into()));
    }
    let cells = (columns * rows) as usize;
    let count = cells.min(video.len());
    let tile_height = ((tile_width as f64 * video.height as f64 / video.width as f64).round() as u32).max(1);
    let used_rows = count.div_ceil(columns as usize) as u32;
    let mut sheet = RgbImage::new(columns * tile_width, used_rows * tile_height);
    for k in 0..count {
        // Evenly spaced from the first frame to the last.
        let index = if count == 1 { 0 } else { k * (video.len() - 1) / (count - 1) };
        let tile = imageops::resize(&frame_image(video, index), tile_width, tile_height, FilterType::Triangle);
        let (col, row) = (k as u32 % columns, k as u32 / columns);
        imageops::replace(&mut sheet, &tile, (col * tile_width) as i64, (row * tile_height) as i64);
    }
    Ok(sheet)
}

/// Writes a still to `path` in the format its extension names.
pub fn write_still(image: &RgbImage, path: &Path) -> Result<()> {
    let bytes = encode_still(image, StillFormat::from_path(path)?)?;
    std::fs::write(path, bytes).map_err(|source| MediaError::Write { path: path.to_path_buf(), source })
}
