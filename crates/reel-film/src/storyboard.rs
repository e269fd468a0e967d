//! The storyboard file: a film's shots with their prompts, timing, narration and subtitles, read
//! from YAML or JSON. Its JSON Schema is docs/storyboard.schema.json (generated from these types).

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{FilmError, Result};

/// A whole film.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storyboard {
    /// The film's title (written into the subtitle files' metadata and the studio's listing).
    pub title: String,
    /// `demo` for the bundled demo model, a checkpoint folder in the diffusers layout, or a hub
    /// repository id such as `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`.
    pub model: String,
    /// Frame width the model renders at [default: the model's own].
    #[serde(default)]
    pub width: Option<usize>,
    /// Frame height the model renders at [default: the model's own].
    #[serde(default)]
    pub height: Option<usize>,
    /// Frames per second [default: the model's own].
    #[serde(default)]
    pub fps: Option<f64>,
    /// Whole-number factor (1 to 8) by which rendered frames are enlarged before subtitles are
    /// burned in and the film is encoded.
    #[serde(default = "one")]
    pub upscale: u32,
    /// The narrator's voice.
    #[serde(default)]
    pub voice: VoiceSpec,
    /// What happens when a shot's narration lasts longer than the shot.
    #[serde(default)]
    pub narration_overflow: NarrationOverflow,
    /// Draw the subtitles into the frames (they are always written as .srt and .vtt files too).
    #[serde(default)]
    pub burn_subtitles: bool,
    /// Settings every shot takes unless it sets its own.
    #[serde(default)]
    pub defaults: ShotDefaults,
    /// The shots, in order.
    pub shots: Vec<Shot>,
}

fn one() -> u32 {
    1
}

/// espeak-ng's voice and speaking rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceSpec {
    /// An espeak-ng voice (`espeak-ng --voices` lists them), optionally with a variant: `en-us`,
    /// `en-gb+f3`.
    #[serde(default = "default_voice")]
    pub name: String,
    /// Speaking rate, 80 to 450 words per minute.
    #[serde(default = "default_words_per_minute")]
    pub words_per_minute: u32,
}

fn default_voice() -> String {
    reel_media::tts::Voice::default().name
}

fn default_words_per_minute() -> u32 {
    reel_media::tts::Voice::default().words_per_minute
}

impl Default for VoiceSpec {
    fn default() -> Self {
        Self { name: default_voice(), words_per_minute: default_words_per_minute() }
    }
}

/// The choice when narration outlasts its shot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NarrationOverflow {
    /// Lengthen the shot so that its narration ends a quarter second before the next shot.
    #[default]
    Extend,
    /// Keep the shot's duration, cut the narration at the shot's end and print a warning.
    Warn,
}

/// Film-wide shot settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShotDefaults {
    /// What shots should not show.
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// Denoising steps [default: the model's own].
    #[serde(default)]
    pub steps: Option<usize>,
    /// Classifier-free guidance scale [default: the model's own].
    #[serde(default)]
    pub guidance: Option<f64>,
    /// How each shot begins [default: cut].
    #[serde(default)]
    pub transition: Option<Transition>,
}

/// One shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shot {
    /// What the shot shows.
    pub prompt: String,
    /// Length in seconds (before any extension for narration).
    pub duration: f64,
    /// Seed of the shot's noise [default: the shot's position, counting from 0].
    #[serde(default)]
    pub seed: Option<u64>,
    /// How the camera moves; appended to the prompt as the model's captions phrase it.
    #[serde(default)]
    pub camera: Camera,
    /// Spoken over the shot, from its start.
    #[serde(default)]
    pub narration: Option<String>,
    /// On-screen text [default: the narration].
    #[serde(default)]
    pub subtitle: Option<String>,
    /// What the shot should not show [default: the defaults' negative prompt].
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// Denoising steps [default: the defaults', else the model's].
    #[serde(default)]
    pub steps: Option<usize>,
    /// Classifier-free guidance scale [default: the defaults', else the model's].
    #[serde(default)]
    pub guidance: Option<f64>,
    /// How this shot begins; ignored for the first shot [default: the defaults' transition].
    #[serde(default)]
    pub transition: Option<Transition>,
}

/// A camera hint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Camera {
    #[default]
    Static,
    PanLeft,
    PanRight,
    ZoomIn,
    ZoomOut,
}

impl Camera {
    /// The phrase added to the prompt (the wording the demo model was trained on, and plain
    /// English for other models).
    pub fn phrase(self) -> Option<&'static str> {
        match self {
            Camera::Static => None,
            Camera::PanLeft => Some("the camera pans left"),
            Camera::PanRight => Some("the camera pans right"),
            Camera::ZoomIn => Some("the camera zooms in"),
            Camera::ZoomOut => Some("the camera zooms out"),
        }
    }
}

/// How a shot joins the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Transition {
    /// A hard cut.
    Cut,
    /// The shots overlap by this many seconds, the new one fading in over the old.
    Crossfade(f64),
}

/// The longest upscale factor accepted.
const MAX_UPSCALE: u32 = 8;

impl Storyboard {
    /// Reads a `.yaml`/`.yml` or `.json` storyboard.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FilmError::Storyboard(format!("cannot read storyboard {}: {e}", path.display())))?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let storyboard = if is_json { Self::from_json(&text) } else { Self::from_yaml(&text) };
        let mut storyboard = storyboard.map_err(|e| match e {
            FilmError::Storyboard(message) => FilmError::Storyboard(format!("{}: {message}", path.display())),
            other => other,
        })?;
        // A relative checkpoint folder is found beside the storyboard, wherever reel runs from.
        let beside = path.parent().map(|dir| dir.join(&storyboard.model));
        let is_folder_name = storyboard.model != crate::render::BUNDLED_MODEL && Path::new(&storyboard.model).is_relative();
        if let Some(folder) = beside.filter(|f| is_folder_name && f.is_dir()) {
            storyboard.model = folder.to_string_lossy().into_owned();
        }
        Ok(storyboard)
    }

    pub fn from_yaml(text: &str) -> Result<Self> {
        // Transitions read as `{crossfade: 0.5}` in YAML as in JSON, not as YAML tags.
        let mut track = serde_path_to_error::Track::new();
        let deserializer = serde_path_to_error::Deserializer::new(serde_yaml_ng::Deserializer::from_str(text), &mut track);
        let storyboard: Self = serde_yaml_ng::with::singleton_map_recursive::deserialize(deserializer)
            .map_err(|e| field_error(&track.path(), &e))?;
        storyboard.validate()?;
        Ok(storyboard)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let storyboard: Self = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| field_error(e.path(), e.inner()))?;
        storyboard.validate()?;
        Ok(storyboard)
    }

    /// The JSON Schema of the storyboard format.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Storyboard)).expect("a schema is JSON")
    }

    /// Checks what the types cannot: ranges, and that there is something to render.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: String, problem: String| Err(FilmError::Storyboard(format!("{field}: {problem}")));
        if self.model.trim().is_empty() {
            return invalid("model".into(), "is empty: name `demo`, a checkpoint folder or a hub id".into());
        }
        if self.shots.is_empty() {
            return invalid("shots".into(), "the list is empty: a film needs at least one shot".into());
        }
        if !(1..=MAX_UPSCALE).contains(&self.upscale) {
            return invalid("upscale".into(), format!("{} is outside 1 to {MAX_UPSCALE}", self.upscale));
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= 120.0) {
                return invalid("fps".into(), format!("{fps} is outside (0, 120]"));
            }
        }
        if !(80..=450).contains(&self.voice.words_per_minute) {
            return invalid("voice.words_per_minute".into(), format!("{} is outside 80 to 450", self.voice.words_per_minute));
        }
        check_shot_settings("defaults", self.defaults.steps, self.defaults.guidance, self.defaults.transition)?;
        for (i, shot) in self.shots.iter().enumerate() {
            let at = |field: &str| format!("shots[{i}].{field}");
            if shot.prompt.trim().is_empty() {
                return invalid(at("prompt"), "is empty: say what the shot shows".into());
            }
            if !(shot.duration.is_finite() && shot.duration > 0.0) {
                return invalid(at("duration"), format!("{} seconds: a shot must last longer than 0 seconds", shot.duration));
            }
            for (field, text) in [("narration", &shot.narration), ("subtitle", &shot.subtitle)] {
                if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                    return invalid(at(field), "is empty: leave it out instead".into());
                }
            }
            check_shot_settings(&format!("shots[{i}]"), shot.steps, shot.guidance, shot.transition)?;
        }
        Ok(())
    }

    /// The transition into shot `index` (the first shot always starts with a cut).
    pub fn transition_into(&self, index: usize) -> Transition {
        if index == 0 {
            return Transition::Cut;
        }
        self.shots[index].transition.or(self.defaults.transition).unwrap_or(Transition::Cut)
    }
}

fn check_shot_settings(owner: &str, steps: Option<usize>, guidance: Option<f64>, transition: Option<Transition>) -> Result<()> {
    let invalid = |field: &str, problem: String| Err(FilmError::Storyboard(format!("{owner}.{field}: {problem}")));
    if steps == Some(0) {
        return invalid("steps", "0: at least one denoising step is needed".into());
    }
    if let Some(g) = guidance {
        if !(g.is_finite() && g >= 0.0) {
            return invalid("guidance", format!("{g} must be 0 or more"));
        }
    }
    if let Some(Transition::Crossfade(seconds)) = transition {
        if !(seconds.is_finite() && seconds > 0.0) {
            return invalid("transition.crossfade", format!("{seconds} seconds: a crossfade lasts longer than 0 seconds"));
        }
    }
    Ok(())
}

/// "shots[2].duration: invalid type ..." from a deserializer's path and message.
fn field_error(path: &serde_path_to_error::Path, error: &impl std::fmt::Display) -> FilmError {
    let (path, message) = (path.to_string(), error.to_string());
    // The YAML reader names the field itself; the JSON reader does not.
    if path == "." || message.starts_with(&path) {
        return FilmError::Storyboard(message);
    }
    FilmError::Storyboard(format!("{path}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "title: t\nmodel: demo\nshots:\n  - prompt: a red square\n    duration: 1.5\n";

    fn error_of(text: &str) -> String {
        Storyboard::from_yaml(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_storyboard_takes_the_defaults() {
        let storyboard = Storyboard::from_yaml(MINIMAL).unwrap();
        assert_eq!(storyboard.upscale, 1);
        assert_eq!(storyboard.voice, VoiceSpec::default());
        assert_eq!(storyboard.narration_overflow, NarrationOverflow::Extend);
        assert_eq!(storyboard.shots[0].camera, Camera::Static);
        assert_eq!(storyboard.transition_into(0), Transition::Cut);
    }

    #[test]
    fn yaml_and_json_read_the_same() {
        let yaml = format!("{MINIMAL}    camera: pan_left\n    transition: {{crossfade: 0.5}}\n");
        let json = r#"{"title":"t","model":"demo","shots":[{"prompt":"a red square","duration":1.5,"camera":"pan_left","transition":{"crossfade":0.5}}]}"#;
        let (a, b) = (Storyboard::from_yaml(&yaml).unwrap(), Storyboard::from_json(json).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.shots[0].transition, Some(Transition::Crossfade(0.5)));
    }

    #[test]
    fn errors_name_the_shot_and_the_field() {
        let unknown = error_of(&format!("{MINIMAL}    durration: 2\n"));
        assert!(unknown.contains("shots[0]") && unknown.contains("durration"), "{unknown}");
        let negative = error_of(&MINIMAL.replace("1.5", "-2"));
        assert!(negative.contains("shots[0].duration") && negative.contains("-2"), "{negative}");
        let wrong_type = error_of(&MINIMAL.replace("1.5", "long"));
        assert!(wrong_type.contains("shots[0].duration"), "{wrong_type}");
        let camera = error_of(&format!("{MINIMAL}    camera: dolly\n"));
        assert!(camera.contains("shots[0].camera") && camera.contains("dolly"), "{camera}");
        let fade = error_of(&format!("{MINIMAL}    transition: {{crossfade: 0}}\n"));
        assert!(fade.contains("shots[0].transition.crossfade"), "{fade}");
    }

    #[test]
    fn an_empty_film_or_a_missing_model_is_refused() {
        let empty = error_of("title: t\nmodel: demo\nshots: []\n");
        assert!(empty.contains("shots") && empty.contains("at least one shot"), "{empty}");
        let missing = error_of("title: t\nshots:\n  - prompt: a\n    duration: 1\n");
        assert!(missing.contains("model"), "{missing}");
        let unknown_top = error_of(&format!("{MINIMAL}colour: red\n"));
        assert!(unknown_top.contains("colour"), "{unknown_top}");
    }
}
