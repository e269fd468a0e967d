//! Still images given as a video's first frame (image-to-video): read from PNG, JPEG, WebP or GIF
//! bytes and brought to the video's size the way the user chooses.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

use crate::{MediaError, Result};

/// How an image of another size or shape becomes a frame of the video's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFit {
    /// Scale to cover the frame, keeping the aspect ratio, and cut the overflow equally from both
    /// sides (nothing is distorted, the edges may be lost). The default.
    #[default]
    Crop,
    /// Scale to fit inside the frame, keeping the aspect ratio, and fill the rest with black bars.
    Pad,
    /// Scale each axis to the frame's size (the image is distorted when the shapes differ), as
    /// diffusers' image processor does.
    Stretch,
}

impl std::str::FromStr for ImageFit {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "crop" => Ok(Self::Crop),
            "pad" => Ok(Self::Pad),
            "stretch" => Ok(Self::Stretch),
            other => Err(format!("unknown image fit '{other}': use crop, pad or stretch")),
        }
    }
}

/// Reads an image file as 8-bit RGB of `width` x `height`, fitted as `fit` says.
pub fn read_image(path: &Path, width: usize, height: usize, fit: ImageFit) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| MediaError::Read { path: path.to_path_buf(), message: e.to_string() })?;
    decode_image(&bytes, width, height, fit).map_err(|message| MediaError::Read { path: path.to_path_buf(), message })
}

/// Decodes image bytes (PNG, JPEG, WebP, GIF) as 8-bit RGB of `width` x `height`, fitted as `fit` says.
pub fn decode_image(bytes: &[u8], width: usize, height: usize, fit: ImageFit) -> std::result::Result<Vec<u8>, String> {
    if width == 0 || height == 0 {
        return Err(format!("the frame size {width}x{height} is empty"));
    }
    let image = image::load_from_memory(bytes)
        .map_err(|e| format!("not a readable image ({e}); give a PNG, JPEG, WebP or GIF file"))?
        .to_rgb8();
    if image.width() == 0 || image.height() == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(fitted(image, width as u32, height as u32, fit).into_raw())
}

fn fitted(image: RgbImage, width: u32, height: u32, fit: ImageFit) -> RgbImage {
    if (image.width(), image.height()) == (width, height) {
        return image;
    }
    let image = DynamicImage::ImageRgb8(image);
    let filter = FilterType::CatmullRom;
    match fit {
        ImageFit::Stretch => image.resize_exact(width, height, filter).to_rgb8(),
        ImageFit::Crop => image.resize_to_fill(width, height, filter).to_rgb8(),
        ImageFit::Pad => {
            let inner = image.resize(width, height, filter).to_rgb8();
            let mut frame = RgbImage::new(width, height);
            let (x, y) = ((width - inner.width()) / 2, (height - inner.height()) / 2);
            image::imageops::replace(&mut frame, &inner, x as i64, y as i64);
            frame
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40x20 PNG: left half red, right half blue.
    fn two_halves() -> Vec<u8> {
        let image = RgbImage::from_fn(40, 20, |x, _| if x < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    fn pixel(rgb: &[u8], width: usize, x: usize, y: usize) -> [u8; 3] {
        let i = (y * width + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    #[test]
    fn each_fit_brings_the_image_to_the_frame_size() {
        let bytes = two_halves();
        // Into a square: crop keeps the middle (both halves, cut at the sides), pad adds bars above
        // and below, stretch squeezes.
        let crop = decode_image(&bytes, 16, 16, ImageFit::Crop).unwrap();
        assert_eq!(crop.len(), 16 * 16 * 3);
        assert_eq!(pixel(&crop, 16, 0, 8), [255, 0, 0]);
        assert_eq!(pixel(&crop, 16, 15, 8), [0, 0, 255]);
        assert_eq!(pixel(&crop, 16, 0, 0), [255, 0, 0], "crop fills the frame");

        let pad = decode_image(&bytes, 16, 16, ImageFit::Pad).unwrap();
        assert_eq!(pixel(&pad, 16, 2, 0), [0, 0, 0], "pad leaves a black bar on top");
        assert_eq!(pixel(&pad, 16, 2, 8), [255, 0, 0]);
        assert_eq!(pixel(&pad, 16, 13, 15), [0, 0, 0], "and one at the bottom");

        let stretch = decode_image(&bytes, 16, 16, ImageFit::Stretch).unwrap();
        assert_eq!(pixel(&stretch, 16, 0, 0), [255, 0, 0]);
        assert_eq!(pixel(&stretch, 16, 15, 15), [0, 0, 255]);
    }

    #[test]
    fn bad_images_are_named() {
        let error = decode_image(b"not an image at all", 16, 16, ImageFit::Crop).unwrap_err();
        assert!(error.contains("not a readable image"), "{error}");
        let missing = read_image(Path::new("/nonexistent/still.png"), 16, 16, ImageFit::Crop).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/still.png"), "{missing}");
        assert!("squash".parse::<ImageFit>().unwrap_err().contains("crop, pad or stretch"));
    }
}
