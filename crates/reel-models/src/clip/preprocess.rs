//! CLIP's image preprocessing: transformers' `CLIPImageProcessor` (transformers 5.23) as the pinned reference
//! stack runs it. Without torchvision installed, transformers falls back to the processor's PIL backend:
//! resize with Pillow, centre crop (padding with black where the image is smaller), rescale, normalise.
//! Every step is reproduced exactly, so the pixel values equal transformers' bit for bit. (With torchvision
//! installed, transformers resizes with torchvision instead, whose results differ from Pillow's by a level
//! here and there.)

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::resample::{self, Filter};
use crate::weights::read_json;
use crate::{ModelError, Result};

/// The file diffusers' `image_processor/` folder (and transformers' `save_pretrained`) holds the settings in.
pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";

/// OpenAI CLIP's normalisation, `CLIPImageProcessor`'s default.
const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

fn yes() -> bool {
    true
}
fn default_size() -> SizeSpec {
    SizeSpec::Keys(BTreeMap::from([("shortest_edge".into(), 224)]))
}
fn default_resample() -> i64 {
    3
}
fn default_crop() -> SizeSpec {
    SizeSpec::Side(224)
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn default_mean() -> PerChannel {
    PerChannel::Each(CLIP_MEAN.to_vec())
}
fn default_std() -> PerChannel {
    PerChannel::Each(CLIP_STD.to_vec())
}

/// A size as transformers' `get_size_dict` accepts it: an int, a (height, width) pair, or named sides.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Side(usize),
    Pair([usize; 2]),
    Keys(BTreeMap<String, usize>),
}

/// A value for every channel, or one for all.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PerChannel {
    All(f64),
    Each(Vec<f64>),
}

/// `preprocessor_config.json` with `CLIPImageProcessor`'s field names and defaults. `do_convert_rgb` is not
/// read: the images given here are RGB already.
#[derive(Debug, Clone, Deserialize)]
struct Settings {
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default = "default_size")]
    size: SizeSpec,
    #[serde(default = "default_resample")]
    resample: i64,
    #[serde(default = "yes")]
    do_center_crop: bool,
    #[serde(default = "default_crop")]
    crop_size: SizeSpec,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "default_rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default = "default_mean")]
    image_mean: PerChannel,
    #[serde(default = "default_std")]
    image_std: PerChannel,
}

/// The size images are resized to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The shorter side becomes this long, the other keeps the aspect ratio (rounded down).
    ShortestEdge(usize),
    Exact { height: usize, width: usize },
}

impl Target {
    /// (height, width) for an image of `width` x `height`: transformers' `get_resize_output_image_size`
    /// with `default_to_square=False`. The long side is `int(edge * long / short)`, a correctly rounded
    /// quotient truncated, which f64 division reproduces.
    fn of(self, width: usize, height: usize) -> (usize, usize) {
        match self {
            Self::Exact { height, width } => (height, width),
            Self::ShortestEdge(edge) => {
                let (short, long) = (width.min(height), width.max(height));
                let long = ((edge * long) as f64 / short as f64) as usize;
                if width <= height { (long, edge) } else { (edge, long) }
            }
        }
    }
}

/// Turns 8-bit RGB images into the pixel values a CLIP vision encoder takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    resize: Option<(Target, Filter)>,
    /// (height, width).
    crop: Option<(usize, usize)>,
    rescale: Option<f64>,
    /// (mean, std) per channel, in f32 as transformers applies them.
    normalize: Option<([f32; 3], [f32; 3])>,
}

impl ClipImageProcessor {
    /// Reads `preprocessor_config.json` from `dir` (a diffusers `image_processor/` folder).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join(PREPROCESSOR_CONFIG);
        let settings: Settings = read_json(&path, "CLIP image processor config")?;
        Self::from_settings(&settings).map_err(|problem| ModelError::Unsupported(format!("{}: {problem}", path.display())))
    }

    fn from_settings(s: &Settings) -> std::result::Result<Self, String> {
        let resize = if s.do_resize {
            let filter = Filter::from_pil(s.resample).ok_or_else(|| {
                format!(
                    "resample {} is not supported: reel reproduces Pillow's filters 1 (lanczos), 2 (bilinear), \
                     3 (bicubic), 4 (box) and 5 (hamming)",
                    s.resample
                )
            })?;
            let target = match sides(&s.size, "size")? {
                Sides::Square(edge) | Sides::ShortestEdge(edge) => Target::ShortestEdge(edge),
                Sides::Exact { height, width } => Target::Exact { height, width },
            };
            Some((target, filter))
        } else {
            None
        };
        let crop = if s.do_center_crop {
            match sides(&s.crop_size, "crop_size")? {
                Sides::Square(side) => Some((side, side)),
                Sides::Exact { height, width } => Some((height, width)),
                Sides::ShortestEdge(_) => return Err("crop_size needs a height and a width".into()),
            }
        } else {
            None
        };
        let normalize = if s.do_normalize {
            Some((per_channel(&s.image_mean, "image_mean")?, per_channel(&s.image_std, "image_std")?))
        } else {
            None
        };
        Ok(Self { resize, crop, rescale: s.do_rescale.then_some(s.rescale_factor), normalize })
    }

    /// `rgb`: an 8-bit RGB image of `width` x `height`, row-major, 3 bytes a pixel -> its pixel values,
    /// (1, 3, height', width') f32 on `device`, equal to transformers' `CLIPImageProcessor` output.
    pub fn pixel_values(&self, rgb: &[u8], width: usize, height: usize, device: &Device) -> Result<Tensor> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(ModelError::InvalidInput(format!(
                "an 8-bit RGB image of {width}x{height} pixels has {} bytes (3 a pixel, row-major), found {}",
                width * height * 3,
                rgb.len()
            )));
        }
        let (mut pixels, mut w, mut h) = (rgb.to_vec(), width, height);
        if let Some((target, filter)) = self.resize {
            let (new_h, new_w) = target.of(w, h);
            pixels = resample::resize(&pixels, (w, h), 3, (new_w, new_h), filter);
            (w, h) = (new_w, new_h);
        }
        // transformers' `center_crop`: offsets rounded down, black (0) where the crop overhangs the image.
        let (out_h, out_w) = self.crop.unwrap_or((h, w));
        let top = (h as isize - out_h as isize).div_euclid(2);
        let left = (w as isize - out_w as isize).div_euclid(2);
        let mut values = Vec::with_capacity(3 * out_h * out_w);
        for channel in 0..3 {
            for y in 0..out_h as isize {
                for x in 0..out_w as isize {
                    let (sy, sx) = (y + top, x + left);
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    let byte = if inside { pixels[(sy as usize * w + sx as usize) * 3 + channel] } else { 0 };
                    values.push(self.value(byte, channel));
                }
            }
        }
        Ok(Tensor::from_vec(values, (1, 3, out_h, out_w), device)?)
    }

    /// transformers' `rescale` (a product in f64, stored as f32), then `normalize` (in f32).
    fn value(&self, byte: u8, channel: usize) -> f32 {
        let v = match self.rescale {
            Some(factor) => (f64::from(byte) * factor) as f32,
            None => f32::from(byte),
        };
        match &self.normalize {
            Some((mean, std)) => (v - mean[channel]) / std[channel],
            None => v,
        }
    }
}

/// A size setting, read as transformers' `get_size_dict` reads it.
enum Sides {
    /// A bare int: the shortest edge for `size` (CLIP's `default_to_square=False`), a square's side for
    /// `crop_size`.
    Square(usize),
    ShortestEdge(usize),
    Exact { height: usize, width: usize },
}

fn sides(spec: &SizeSpec, name: &str) -> std::result::Result<Sides, String> {
    let sides = match spec {
        SizeSpec::Side(side) => Sides::Square(*side),
        SizeSpec::Pair([height, width]) => Sides::Exact { height: *height, width: *width },
        SizeSpec::Keys(keys) => match (keys.len(), keys.get("shortest_edge"), keys.get("height"), keys.get("width")) {
            (1, Some(&edge), None, None) => Sides::ShortestEdge(edge),
            (2, None, Some(&height), Some(&width)) => Sides::Exact { height, width },
            _ => {
                let found: Vec<&String> = keys.keys().collect();
                return Err(format!(
                    "{name} with the keys {found:?} is not supported: expected {{\"shortest_edge\": N}} or \
                     {{\"height\": H, \"width\": W}}"
                ));
            }
        },
    };
    let positive = match sides {
        Sides::Square(n) | Sides::ShortestEdge(n) => n > 0,
        Sides::Exact { height, width } => height > 0 && width > 0,
    };
    if positive { Ok(sides) } else { Err(format!("{name} must be positive")) }
}

fn per_channel(values: &PerChannel, name: &str) -> std::result::Result<[f32; 3], String> {
    match values {
        PerChannel::All(v) => Ok([*v as f32; 3]),
        PerChannel::Each(v) if v.len() == 3 => Ok([v[0] as f32, v[1] as f32, v[2] as f32]),
        PerChannel::Each(v) => Err(format!("{name} has {} values, expected one per RGB channel (3)", v.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> std::result::Result<ClipImageProcessor, String> {
        ClipImageProcessor::from_settings(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn defaults_are_clip_image_processor_defaults() {
        let processor = settings("{}").unwrap();
        assert_eq!(processor.resize, Some((Target::ShortestEdge(224), Filter::Bicubic)));
        assert_eq!(processor.crop, Some((224, 224)));
        assert_eq!(processor.rescale, Some(1.0 / 255.0));
        assert_eq!(processor.normalize.unwrap().0[0], 0.48145466f32);
    }

    #[test]
    fn sizes_in_every_form_transformers_accepts() {
        let processor = settings(r#"{"size": 32, "crop_size": 24, "resample": 2}"#).unwrap();
        assert_eq!(processor.resize, Some((Target::ShortestEdge(32), Filter::Bilinear)));
        assert_eq!(processor.crop, Some((24, 24)));
        let processor = settings(r#"{"size": {"height": 20, "width": 30}, "crop_size": [10, 12]}"#).unwrap();
        assert_eq!(processor.resize.unwrap().0, Target::Exact { height: 20, width: 30 });
        assert_eq!(processor.crop, Some((10, 12)));
        let error = settings(r#"{"size": {"shortest_edge": 32, "longest_edge": 64}}"#).unwrap_err();
        assert!(error.contains("longest_edge"), "{error}");
        assert!(settings(r#"{"resample": 0}"#).unwrap_err().contains("resample 0"));
        assert!(settings(r#"{"image_std": [0.5, 0.5]}"#).unwrap_err().contains("image_std has 2 values"));
        // Disabled steps are not checked.
        assert_eq!(settings(r#"{"do_resize": false, "resample": 0, "do_center_crop": false}"#).unwrap().resize, None);
    }

    #[test]
    fn shortest_edge_keeps_the_aspect_ratio_rounding_down() {
        assert_eq!(Target::ShortestEdge(32).of(45, 61), (43, 32));
        assert_eq!(Target::ShortestEdge(32).of(61, 45), (32, 43));
        assert_eq!(Target::ShortestEdge(224).of(1280, 720), (224, 398));
        assert_eq!(Target::ShortestEdge(7).of(5, 5), (7, 7));
    }

    #[test]
    fn wrong_byte_counts_are_refused() {
        let processor = settings("{}").unwrap();
        let error = processor.pixel_values(&[0; 10], 2, 2, &Device::Cpu).unwrap_err().to_string();
        assert!(error.contains("has 12 bytes") && error.contains("found 10"), "{error}");
    }
}
