//! The models a studio serves, by API name: the bundled demo model (the default) and any
//! checkpoint folders the operator adds. Requests are checked here against what each model can
//! make (sizes, lengths) and turned into jobs.

use std::path::PathBuf;

use reel_sampling::checkpoint::{FrameConditioning, WanCheckpoint};

use crate::store::JobRequest;

/// Tools written for OpenAI's Videos API name these models; they map to the default model.
pub const OPENAI_ALIASES: [&str; 2] = ["sora-2", "sora-2-pro"];

pub const DEMO_MODEL: &str = "reel-demo";

#[derive(Debug, Clone)]
pub struct ServedModel {
    pub name: String,
    pub checkpoint: PathBuf,
    pub default_width: usize,
    pub default_height: usize,
    pub fps: f64,
    pub default_seconds: f64,
    pub max_seconds: f64,
    pub steps: usize,
    pub guidance: f64,
    /// Frames 4k+1 (`temporal` = 4) and sizes multiples of `size_multiple`.
    pub temporal: usize,
    pub size_multiple: usize,
    /// Largest frame the studio accepts for this model, in pixels.
    pub max_pixels: usize,
    /// Frames of one generation (the model's own length): longer videos are made window by window
    /// when the model can start from given frames.
    pub window_frames: usize,
    /// Whether the model can start from given frames: image-to-video, extensions and long videos
    /// made in windows.
    pub given_frames: bool,
    /// Whether it makes videos from an image only (Wan2.1-I2V, Wan2.2-I2V-A14B).
    pub needs_image: bool,
    pub max_sequence_length: usize,
}

impl ServedModel {
    /// A model from a checkpoint folder, with its `reel.json` defaults (else Wan's).
    pub fn from_checkpoint(name: &str, dir: PathBuf) -> Result<Self, String> {
        let checkpoint = WanCheckpoint::open(&dir).map_err(|e| e.to_string())?;
        let defaults = checkpoint.generation_defaults().map_err(|e| e.to_string())?.resolved();
        let geometry = checkpoint.geometry().map_err(|e| e.to_string())?;
        let conditioning = checkpoint.frame_conditioning().map_err(|e| e.to_string())?;
        let (fps, frames, width, height) = (defaults.fps, defaults.frames, defaults.width, defaults.height);
        Ok(Self {
            name: name.to_string(),
            checkpoint: dir,
            default_width: width,
            default_height: height,
            fps,
            default_seconds: (frames - 1) as f64 / fps,
            max_seconds: 4.0 * (frames - 1) as f64 / fps,
            steps: defaults.steps,
            guidance: defaults.guidance,
            temporal: geometry.temporal,
            size_multiple: geometry.size_multiple(),
            max_pixels: 4 * width * height,
            window_frames: frames,
            given_frames: conditioning != FrameConditioning::None,
            needs_image: matches!(conditioning, FrameConditioning::Channels { .. }),
            max_sequence_length: defaults.max_sequence_length,
        })
    }

    /// The longest video a create request may ask for: `max_seconds` (four of the model's
    /// generations in one), or at least 20 s (the longest the SDK's `seconds` allows for
    /// extensions) when the model makes long videos window by window, whose memory does not grow
    /// with the length.
    pub fn max_video_seconds(&self) -> f64 {
        if self.given_frames {
            self.max_seconds.max(20.0)
        } else {
            self.max_seconds
        }
    }

    /// Why this model cannot start from given frames (an image, or a video to continue), if it cannot.
    pub fn check_given_frames(&self, what: &str) -> Result<(), String> {
        if self.given_frames {
            return Ok(());
        }
        Err(format!(
            "model {} cannot {what}: it is a text-to-video model; image-to-video models (Wan2.1-I2V, Wan2.2-I2V-A14B), \
             Wan2.2-TI2V-5B and the demo model can: choose another model (GET /v1/models)",
            self.name
        ))
    }

    /// Checks that the model makes videos of `width` x `height`.
    pub fn check_size(&self, width: usize, height: usize) -> Result<(), String> {
        let m = self.size_multiple;
        if width % m != 0 || height % m != 0 || width * height > self.max_pixels {
            return Err(format!(
                "size {width}x{height} is not available for model {}: width and height must be multiples of {m} and at most {} pixels \
                 in all (the model's own size is {})",
                self.name,
                self.max_pixels,
                self.default_size()
            ));
        }
        Ok(())
    }

    pub fn default_size(&self) -> String {
        format!("{}x{}", self.default_width, self.default_height)
    }

    pub fn default_seconds(&self) -> String {
        seconds_text(self.default_seconds)
    }
}

/// Seconds as the API writes them: "4", or "2.125".
pub fn seconds_text(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{}", seconds as i64)
    } else {
        format!("{seconds}")
    }
}

/// What a create request asks for, before checking.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub prompt: String,
    pub model: Option<String>,
    pub size: Option<String>,
    pub seconds: Option<String>,
    pub negative_prompt: Option<String>,
    pub seed: Option<u64>,
    pub steps: Option<usize>,
    pub guidance: Option<f64>,
    pub fps: Option<f64>,
}

/// A request problem, naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub param: &'static str,
    pub message: String,
}

fn invalid(param: &'static str, message: String) -> Invalid {
    Invalid { param, message }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub models: Vec<ServedModel>,
}

impl Catalog {
    pub fn default_model(&self) -> &ServedModel {
        &self.models[0]
    }

    pub fn find(&self, name: Option<&str>) -> Result<&ServedModel, Invalid> {
        match name {
            None => Ok(self.default_model()),
            Some(alias) if OPENAI_ALIASES.contains(&alias) => Ok(self.default_model()),
            Some(name) => self.models.iter().find(|m| m.name == name).ok_or_else(|| {
                let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                invalid("model", format!("model '{name}' is not served here: choose one of {}", names.join(", ")))
            }),
        }
    }

    /// Checks a request against its model and turns it into a job, with (size, seconds) as the
    /// API reports them.
    pub fn job(&self, request: &CreateRequest, seed: u64) -> Result<(JobRequest, String, String), Invalid> {
        let model = self.find(request.model.as_deref())?;
        let size = request.size.clone().unwrap_or_else(|| model.default_size());
        let (width, height) = parse_size(&size)
            .ok_or_else(|| invalid("size", format!("size '{size}' is not WIDTHxHEIGHT (for example {})", model.default_size())))?;
        model.check_size(width, height).map_err(|message| invalid("size", message))?;
        let fps = request.fps.unwrap_or(model.fps);
        if !(fps.is_finite() && (1.0..=60.0).contains(&fps)) {
            return Err(invalid("fps", format!("fps must lie between 1 and 60, found {fps}")));
        }
        let seconds_given = request.seconds.clone().unwrap_or_else(|| model.default_seconds());
        let seconds: f64 = seconds_given
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= model.max_video_seconds())
            .ok_or_else(|| {
                invalid("seconds", format!("seconds '{seconds_given}' must be a number above 0 and at most {} for model {}",
                    seconds_text(model.max_video_seconds()), model.name))
            })?;
        // The nearest frame count the model can make (4k+1), and the length it plays for.
        let t = model.temporal as f64;
        let frames = ((seconds * fps / t).round().max(1.0) * t) as usize + 1;
        let steps = request.steps.unwrap_or(model.steps);
        if !(1..=200).contains(&steps) {
            return Err(invalid("steps", format!("steps must lie between 1 and 200, found {steps}")));
        }
        let guidance = request.guidance.unwrap_or(model.guidance);
        if !(guidance.is_finite() && (0.0..=30.0).contains(&guidance)) {
            return Err(invalid("guidance", format!("guidance must lie between 0 and 30, found {guidance}")));
        }
        let job = JobRequest {
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone().unwrap_or_default(),
            model: model.name.clone(),
            width,
            height,
            frames,
            fps,
            steps,
            guidance,
            seed: request.seed.unwrap_or(seed),
            storyboard: None,
            input_reference: None,
            extension: None,
        };
        Ok((job, format!("{width}x{height}"), seconds_text(((frames - 1) as f64 / fps * 1000.0).round() / 1000.0)))
    }
}

fn parse_size(size: &str) -> Option<(usize, usize)> {
    let (w, h) = size.split_once('x')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Catalog {
        Catalog {
            models: vec![ServedModel {
                name: DEMO_MODEL.into(),
                checkpoint: PathBuf::new(),
                default_width: 64,
                default_height: 64,
                fps: 8.0,
                default_seconds: 2.0,
                max_seconds: 8.0,
                steps: 20,
                guidance: 4.0,
                temporal: 4,
                size_multiple: 8,
                max_pixels: 4 * 64 * 64,
                window_frames: 17,
                given_frames: true,
                needs_image: false,
                max_sequence_length: 16,
            }],
        }
    }

    #[test]
    fn defaults_aliases_and_frame_counts() {
        let catalog = demo();
        let request = CreateRequest { prompt: "a red ball".into(), model: Some("sora-2".into()), ..Default::default() };
        let (job, size, seconds) = catalog.job(&request, 7).unwrap();
        assert_eq!((job.model.as_str(), job.frames, job.seed, size.as_str(), seconds.as_str()), (DEMO_MODEL, 17, 7, "64x64", "2"));
        let request = CreateRequest { prompt: "x".into(), seconds: Some("4".into()), ..Default::default() };
        assert_eq!(catalog.job(&request, 0).unwrap().0.frames, 33);
        // Longer than four generations: made window by window, up to 20 s.
        let request = CreateRequest { prompt: "x".into(), seconds: Some("12".into()), ..Default::default() };
        assert_eq!(catalog.job(&request, 0).unwrap().0.frames, 97);
        let mut one_piece = catalog.clone();
        one_piece.models[0].given_frames = false;
        assert_eq!(one_piece.job(&request, 0).unwrap_err().param, "seconds");
    }

    #[test]
    fn impossible_requests_name_the_parameter() {
        let catalog = demo();
        let ask = |f: &dyn Fn(&mut CreateRequest)| {
            let mut request = CreateRequest { prompt: "x".into(), ..Default::default() };
            f(&mut request);
            catalog.job(&request, 0).unwrap_err()
        };
        assert_eq!(ask(&|r| r.size = Some("1280x720".into())).param, "size");
        assert_eq!(ask(&|r| r.size = Some("big".into())).param, "size");
        assert_eq!(ask(&|r| r.seconds = Some("60".into())).param, "seconds");
        assert_eq!(ask(&|r| r.model = Some("wan-99".into())).param, "model");
        assert_eq!(ask(&|r| r.steps = Some(0)).param, "steps");
    }

    #[test]
    fn what_each_kind_of_checkpoint_starts_from() {
        let served = |name: &str| ServedModel::from_checkpoint(name, reel_models::testing::fixture(name)).unwrap();
        let text_only = served("tiny-wan2.1");
        assert!(!text_only.given_frames && !text_only.needs_image);
        assert!(text_only.check_given_frames("start from an image").unwrap_err().contains("text-to-video model"));
        // Image-to-video by input channels: images required, clips continued.
        for name in ["tiny-wan2.1-i2v", "tiny-wan2.2-i2v-a14b"] {
            let model = served(name);
            assert!(model.given_frames && model.needs_image, "{name}");
        }
        let per_token = served("tiny-wan2.2-ti2v");
        assert!(per_token.given_frames && !per_token.needs_image);
    }
}
