//! Making a film: narration first (its length sets the timing), then the shots, then assembly.

use std::path::{Path, PathBuf};

use reel_media::subtitles::write_subtitles;
use reel_media::tts::{speak, Voice};
use reel_media::{write_video, Audio, VideoFormat, VideoFrames, VideoOptions};
use reel_sampling::pipeline::{GenerationRequest, DEFAULT_FPS};
use reel_sampling::progress::Progress;

use crate::assemble::{picture, soundtrack};
use crate::cache::ShotCache;
use crate::render::{ShotRenderer, ShotRequest};
use crate::storyboard::Storyboard;
use crate::timeline::{plan, Timeline};
use crate::{FilmError, Result};

/// Where the film goes and how it is made.
pub struct FilmOptions {
    /// The film: an `.mp4` path. Subtitles go beside it as `.srt` and `.vtt`.
    pub output: PathBuf,
    /// Reuse and store rendered shots; `None` renders every shot.
    pub cache: Option<ShotCache>,
    pub mp4_quality: u8,
}

/// What is happening, for progress bars and the studio's per-shot status.
#[derive(Debug, Clone, PartialEq)]
pub enum FilmEvent {
    /// Before any rendering: shot `shot` will not be made quite as written (its prompt is too
    /// long for the text encoder, say).
    ShotWarning { shot: usize, message: String },
    /// Speaking shot `shot`'s narration.
    Narrating { shot: usize, shots: usize },
    /// Shot `shot` begins; `cached` when its frames come from the cache.
    ShotStarted { shot: usize, shots: usize, cached: bool },
    /// Progress inside the shot being rendered.
    Rendering { shot: usize, progress: Progress },
    ShotFinished { shot: usize, shots: usize },
    /// Joining, mixing and encoding.
    Assembling,
}

/// What was made.
#[derive(Debug, Clone)]
pub struct FilmReport {
    pub timeline: Timeline,
    pub width: u32,
    pub height: u32,
    /// Shots rendered by the model in this run.
    pub rendered: usize,
    /// Shots taken from the cache.
    pub reused: usize,
    /// The film and its subtitle files.
    pub files: Vec<PathBuf>,
    /// The film's frames as encoded (for thumbnails).
    pub video: VideoFrames,
}

/// Samples quieter than this (about -50 dBFS) count as silence around a spoken line.
const SILENCE_THRESHOLD: f32 = 0.003;
/// Silence kept around a spoken line.
const SPEECH_MARGIN_SECONDS: f64 = 0.02;

pub fn make_film(
    storyboard: &Storyboard,
    renderer: &mut dyn ShotRenderer,
    options: &FilmOptions,
    on_event: &mut dyn FnMut(FilmEvent),
) -> Result<FilmReport> {
    if VideoFormat::from_path(&options.output)? != VideoFormat::Mp4 {
        return Err(FilmError::Io(format!(
            "{}: a film is written as .mp4 (the only format here that carries its soundtrack)",
            options.output.display()
        )));
    }
    // Refuse what would fail only after every shot is rendered.
    reel_media::check_writable(&options.output)?;
    storyboard.validate()?;
    let shots = storyboard.shots.len();
    let defaults = renderer.defaults().clone();
    let fps = storyboard.fps.or(defaults.fps).unwrap_or(DEFAULT_FPS);

    let voice = Voice { name: storyboard.voice.name.clone(), words_per_minute: storyboard.voice.words_per_minute };
    if storyboard.shots.iter().any(|s| s.narration.is_some()) {
        reel_media::tts::check(&voice).map_err(|e| FilmError::Storyboard(format!("voice.name: {e}")))?;
    }
    let mut narrations: Vec<Option<Audio>> = Vec::with_capacity(shots);
    for (i, shot) in storyboard.shots.iter().enumerate() {
        let Some(text) = &shot.narration else {
            narrations.push(None);
            continue;
        };
        on_event(FilmEvent::Narrating { shot: i, shots });
        let audio = speak(text, &voice).map_err(|e| FilmError::Storyboard(format!("shots[{i}].narration: {e}")))?;
        // espeak-ng ends each line with about 0.3 s of silence: the cue follows the words.
        let audio = audio.trimmed(SILENCE_THRESHOLD, SPEECH_MARGIN_SECONDS)?;
        if audio.frames() == 0 {
            return Err(FilmError::Storyboard(format!("shots[{i}].narration: '{text}' gives no audible speech: write words to be spoken")));
        }
        narrations.push(Some(audio));
    }
    let spoken: Vec<Option<f64>> = narrations.iter().map(|n| n.as_ref().map(Audio::duration)).collect();
    let timeline = plan(storyboard, fps, &spoken)?;

    let requests = shot_requests(storyboard, &timeline, renderer, on_event)?;
    let mut rendered_shots = Vec::with_capacity(shots);
    let (mut rendered, mut reused) = (0, 0);
    for (i, request) in requests.iter().enumerate() {
        let key = ShotCache::key(renderer.fingerprint(), request);
        let cached = options.cache.as_ref().and_then(|cache| cache.get(&key, request));
        on_event(FilmEvent::ShotStarted { shot: i, shots, cached: cached.is_some() });
        let frames = match cached {
            Some(frames) => {
                reused += 1;
                frames
            }
            None => {
                let frames = renderer.render(request, &mut |progress| on_event(FilmEvent::Rendering { shot: i, progress }))?;
                rendered += 1;
                if let Some(cache) = &options.cache {
                    cache.put(&key, request, &frames)?;
                }
                frames
            }
        };
        on_event(FilmEvent::ShotFinished { shot: i, shots });
        rendered_shots.push(frames);
    }

    on_event(FilmEvent::Assembling);
    let first = &requests[0];
    let video = picture(storyboard, &timeline, first.width as u32, first.height as u32, &rendered_shots)?;
    drop(rendered_shots);
    let cues = timeline.cues();
    let audio = soundtrack(&timeline, &narrations)?;
    let mut files = write_video(&video, Some(&audio), &options.output, VideoOptions { mp4_quality: options.mp4_quality, ..VideoOptions::default() })?;
    if !cues.is_empty() {
        for extension in ["srt", "vtt"] {
            let path = sibling(&options.output, extension);
            write_subtitles(&cues, &path)?;
            files.push(path);
        }
    }
    Ok(FilmReport { timeline, width: video.width, height: video.height, rendered, reused, files, video })
}

/// Each shot's render settings: the shot's own, else the storyboard's defaults, else the model's.
fn shot_requests(
    storyboard: &Storyboard,
    timeline: &Timeline,
    renderer: &dyn ShotRenderer,
    on_event: &mut dyn FnMut(FilmEvent),
) -> Result<Vec<ShotRequest>> {
    let model = renderer.defaults();
    let pipeline_defaults = GenerationRequest::new("");
    let film_defaults = &storyboard.defaults;
    let mut requests = Vec::with_capacity(storyboard.shots.len());
    for (i, (shot, timing)) in storyboard.shots.iter().zip(&timeline.shots).enumerate() {
        let prompt = match shot.camera.phrase() {
            Some(phrase) => format!("{}, {phrase}", shot.prompt.trim().trim_end_matches(['.', ','])),
            None => shot.prompt.trim().to_string(),
        };
        let request = ShotRequest {
            prompt,
            negative_prompt: shot.negative_prompt.clone().or_else(|| film_defaults.negative_prompt.clone()).unwrap_or_default(),
            width: storyboard.width.or(model.width).unwrap_or(pipeline_defaults.width),
            height: storyboard.height.or(model.height).unwrap_or(pipeline_defaults.height),
            frames: renderer.frames_at_least(timing.frames),
            steps: shot.steps.or(film_defaults.steps).or(model.steps).unwrap_or(pipeline_defaults.steps),
            guidance: shot.guidance.or(film_defaults.guidance).or(model.guidance).unwrap_or(pipeline_defaults.guidance),
            seed: shot.seed.unwrap_or(i as u64),
        };
        // Fail before any rendering: a size the model cannot make is a storyboard error.
        let warning = renderer.check(&request).map_err(|e| FilmError::Storyboard(format!("shots[{i}]: {e}")))?;
        if let Some(message) = warning {
            on_event(FilmEvent::ShotWarning { shot: i, message });
        }
        requests.push(request);
    }
    Ok(requests)
}

/// `film.mp4` -> `film.<extension>`.
fn sibling(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}
