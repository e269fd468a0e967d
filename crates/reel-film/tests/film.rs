//! Whole films made with a stand-in renderer (fast, and it counts its renders); the real model's
//! films are tested through the CLI. Needs espeak-ng and ffprobe (installed by .ci/run).

use std::path::Path;

use reel_film::assemble::picture;
use reel_film::cache::ShotCache;
use candle_core::{DType, Device};
use reel_film::render::{PipelineRenderer, ShotRenderer, ShotRequest};
use reel_film::timeline::plan;
use reel_film::{make_film, FilmEvent, FilmOptions, FilmReport, Storyboard};
use reel_models::device::DtypeChoice;
use reel_models::hub::HubSettings;
use reel_media::subtitles::{text_area, SubtitleStyle};
use reel_media::wav::read_wav;
use reel_sampling::checkpoint::GenerationDefaults;
use reel_sampling::progress::OnProgress;

/// Textured frames that depend on the whole request, in frame counts of 4k+1 like Wan's.
struct CountingRenderer {
    defaults: GenerationDefaults,
    renders: Vec<String>,
}

impl CountingRenderer {
    fn new() -> Self {
        let defaults = GenerationDefaults { width: Some(64), height: Some(48), fps: Some(8.0), steps: Some(3), ..Default::default() };
        Self { defaults, renders: Vec::new() }
    }
}

impl ShotRenderer for CountingRenderer {
    fn fingerprint(&self) -> &str {
        "counting-renderer"
    }
    fn defaults(&self) -> &GenerationDefaults {
        &self.defaults
    }
    fn frames_at_least(&self, frames: usize) -> usize {
        1 + frames.saturating_sub(1).div_ceil(4) * 4
    }
    /// Warns, as a text encoder of eight tokens would, of prompts longer than eight words.
    fn check(&self, request: &ShotRequest) -> reel_film::Result<Option<String>> {
        let words = request.prompt.split_whitespace().count();
        Ok((words > 8).then(|| format!("{} words past the eighth are not read", words - 8)))
    }
    fn render(&mut self, request: &ShotRequest, _: OnProgress) -> reel_film::Result<Vec<Vec<u8>>> {
        self.renders.push(request.prompt.clone());
        let mut state = request.seed as u32 ^ request.prompt.len() as u32 ^ 0x9e37_79b9;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        Ok((0..request.frames).map(|_| (0..request.width * request.height * 3).map(|_| next() / 2 + 40).collect()).collect())
    }
}

const STORYBOARD: &str = r#"
title: Three shapes
model: demo
defaults:
  steps: 2
shots:
  - prompt: a red square moving right
    duration: 1.5
    narration: A red square sets off.
  - prompt: a blue circle
    duration: 1.0
    camera: zoom_in
  - prompt: two green triangles
    duration: 1.0
    subtitle: The end
    transition: {crossfade: 0.25}
"#;

struct Made {
    report: FilmReport,
    _dir: tempfile::TempDir,
    output: std::path::PathBuf,
}

fn make(storyboard: &str, renderer: &mut CountingRenderer, cache: &Path) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("film.mp4");
    let options = FilmOptions { output: output.clone(), cache: Some(ShotCache::new(cache)), mp4_quality: 20 };
    let report = make_film(&Storyboard::from_yaml(storyboard).unwrap(), renderer, &options, &mut |_| {}).unwrap();
    Made { report, _dir: dir, output }
}

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,duration,nb_frames:format=duration", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by .ci/run");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_film_has_one_video_and_one_audio_track_of_the_planned_length() {
    let cache = tempfile::tempdir().unwrap();
    let made = make(STORYBOARD, &mut CountingRenderer::new(), cache.path());
    let timeline = &made.report.timeline;
    let info = ffprobe(&made.output);
    let streams = info["streams"].as_array().unwrap();
    let kinds: Vec<&str> = streams.iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["video", "audio"], "{info}");
    assert_eq!(streams[0]["nb_frames"].as_str().unwrap().parse::<usize>().unwrap(), timeline.total_frames);
    let seconds = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert!((seconds(&streams[0]["duration"]) - timeline.duration()).abs() < 1e-3, "{info}");
    // AAC pads to whole 1024-sample frames.
    assert!((seconds(&streams[1]["duration"]) - timeline.duration()).abs() < 0.03, "{info}");
    // 1.5 s (or longer to fit the narration) + 1.0 + 1.0 - 0.25 of crossfade.
    assert!(timeline.duration() >= 3.25, "{}", timeline.duration());
    assert_eq!(made.report.files.len(), 3, "film, .srt and .vtt");
}

#[test]
fn each_cue_lies_inside_its_shot_and_follows_the_narration() {
    let cache = tempfile::tempdir().unwrap();
    let made = make(STORYBOARD, &mut CountingRenderer::new(), cache.path());
    let timeline = &made.report.timeline;
    for (i, shot) in timeline.shots.iter().enumerate() {
        if let Some(cue) = &shot.cue {
            assert!(cue.start >= timeline.seconds(shot.start) && cue.end <= timeline.seconds(shot.own_end), "shot {i}: {cue:?} {shot:?}");
        }
    }
    let narrated = timeline.shots[0].cue.as_ref().unwrap();
    assert_eq!(narrated.text, "A red square sets off.");
    assert!((narrated.end - narrated.start - timeline.shots[0].narration_seconds.unwrap()).abs() < 1e-9);
    assert!(timeline.shots[1].cue.is_none());
    assert_eq!(timeline.shots[2].cue.as_ref().unwrap().text, "The end");

    let srt = std::fs::read_to_string(made.output.with_extension("srt")).unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> ") && srt.contains("A red square sets off.") && srt.contains("2\n"), "{srt}");
    let vtt = std::fs::read_to_string(made.output.with_extension("vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("The end"), "{vtt}");
}

/// The film's soundtrack, decoded by ffmpeg.
fn soundtrack_of(film: &Path) -> reel_media::Audio {
    let wav = film.with_extension("wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(film)
        .args(["-map", "0:a", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .status()
        .expect("ffmpeg is installed by .ci/run");
    assert!(status.success());
    read_wav(&wav).unwrap()
}

#[test]
fn the_soundtrack_speaks_where_the_narration_is_and_is_silent_elsewhere() {
    let cache = tempfile::tempdir().unwrap();
    let made = make(STORYBOARD, &mut CountingRenderer::new(), cache.path());
    let timeline = &made.report.timeline;
    let audio = soundtrack_of(&made.output);
    let spoken = timeline.shots[0].narration_seconds.unwrap();
    let speech = audio.rms(0.1, spoken - 0.1);
    let after = audio.rms(spoken + 0.1, timeline.duration() - 0.05);
    assert!(speech > 0.02, "speech rms {speech}");
    assert!(after < 0.002, "rms {after} after the narration (speech {speech})");
}

#[test]
fn burned_subtitles_change_only_the_subtitle_area_while_their_cue_is_shown() {
    let board = Storyboard::from_yaml(&STORYBOARD.replace("title: Three shapes", "title: t\nburn_subtitles: true\nupscale: 2")).unwrap();
    let mut renderer = CountingRenderer::new();
    let speech = [Some(1.2), None, None];
    let timeline = plan(&board, 8.0, &speech).unwrap();
    let shots: Vec<Vec<Vec<u8>>> = timeline
        .shots
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let request = ShotRequest { prompt: format!("shot {i}"), negative_prompt: String::new(), width: 64, height: 48, frames: renderer.frames_at_least(t.frames), steps: 1, guidance: 1.0, seed: i as u64 };
            renderer.render(&request, &mut |_| {}).unwrap()
        })
        .collect();
    let burned = picture(&board, &timeline, 64, 48, &shots).unwrap();
    let plain_board = Storyboard { burn_subtitles: false, ..board.clone() };
    let plain = picture(&plain_board, &timeline, 64, 48, &shots).unwrap();
    assert_eq!((burned.width, burned.height), (128, 96));

    for (i, (b, p)) in burned.frames.iter().zip(&plain.frames).enumerate() {
        let cue = timeline.cues().into_iter().find(|c| c.contains(i as f64 / timeline.fps));
        let changed: Vec<(u32, u32)> = (0..96u32)
            .flat_map(|y| (0..128u32).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let at = ((y * 128 + x) * 3) as usize;
                b[at..at + 3] != p[at..at + 3]
            })
            .collect();
        match cue {
            None => assert!(changed.is_empty(), "frame {i} has no cue but {} pixels changed", changed.len()),
            Some(cue) => {
                let area = text_area(128, 96, &cue.text, &SubtitleStyle::default()).unwrap();
                assert!(changed.len() > 50, "frame {i}: only {} pixels show '{}'", changed.len(), cue.text);
                let outside = changed.iter().filter(|&&(x, y)| x < area.x0 || x >= area.x1 || y < area.y0 || y >= area.y1).count();
                assert_eq!(outside, 0, "frame {i}: {outside} changed pixels outside {area:?}");
                assert!(area.y0 >= 48, "subtitles sit in the lower half: {area:?}");
            }
        }
    }
}

#[test]
fn the_cache_rerenders_only_the_edited_shot() {
    let cache = tempfile::tempdir().unwrap();
    let mut first = CountingRenderer::new();
    let made = make(STORYBOARD, &mut first, cache.path());
    assert_eq!((made.report.rendered, made.report.reused, first.renders.len()), (3, 0, 3));

    let mut again = CountingRenderer::new();
    let made = make(STORYBOARD, &mut again, cache.path());
    assert_eq!((made.report.rendered, made.report.reused), (0, 3));
    assert!(again.renders.is_empty());

    let mut edited = CountingRenderer::new();
    let made = make(&STORYBOARD.replace("a blue circle", "a yellow circle"), &mut edited, cache.path());
    assert_eq!((made.report.rendered, made.report.reused), (1, 2));
    assert_eq!(edited.renders, ["a yellow circle, the camera zooms in"]);
}

#[test]
fn a_shot_the_model_would_not_make_as_written_is_warned_of_before_any_rendering() {
    let storyboard = STORYBOARD.replace("a blue circle", "a blue circle that floats over a calm sea");
    let dir = tempfile::tempdir().unwrap();
    let options = FilmOptions { output: dir.path().join("film.mp4"), cache: None, mp4_quality: 20 };
    let mut events = Vec::new();
    make_film(&Storyboard::from_yaml(&storyboard).unwrap(), &mut CountingRenderer::new(), &options, &mut |event| match event {
        FilmEvent::Rendering { .. } => {}
        event => events.push(event),
    })
    .unwrap();
    assert_eq!(events.iter().filter(|e| matches!(e, FilmEvent::ShotWarning { .. })).count(), 1, "{events:?}");
    let first_render = events.iter().position(|e| matches!(e, FilmEvent::ShotStarted { .. })).unwrap();
    // "a blue circle that floats over a calm sea, the camera zooms in": 13 words.
    let expected = FilmEvent::ShotWarning { shot: 1, message: "5 words past the eighth are not read".into() };
    assert!(events[..first_render].contains(&expected), "{events:?}");
}

#[test]
fn the_pipeline_renderer_warns_of_a_prompt_longer_than_its_text_encoder_reads() {
    let renderer = PipelineRenderer::open("demo", DtypeChoice::Fixed(DType::F32), &Device::Cpu, &HubSettings::from_env()).unwrap();
    let length = renderer.defaults().max_sequence_length.expect("the demo model's reel.json sets its prompt length");
    let request = |words: usize| ShotRequest {
        prompt: vec!["red"; words].join(" "),
        negative_prompt: String::new(),
        width: 64,
        height: 64,
        frames: 17,
        steps: 2,
        guidance: 4.0,
        seed: 0,
    };
    // The demo tokenizer reads a token a word and ends with </s>.
    assert_eq!(renderer.check(&request(length - 1)).unwrap(), None);
    let warning = renderer.check(&request(length + 9)).unwrap().expect("a warning");
    assert!(warning.contains("the last 10 tokens of the prompt were ignored"), "{warning}");
}

#[test]
fn schema_in_the_docs_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/storyboard.schema.json"))
        .expect("docs/storyboard.schema.json is committed");
    let current = serde_json::to_string_pretty(&Storyboard::json_schema()).unwrap() + "\n";
    if committed != current {
        if std::env::var_os("REEL_UPDATE_SCHEMA").is_some() {
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/storyboard.schema.json"), &current).unwrap();
        }
        panic!("docs/storyboard.schema.json is out of date: rerun with REEL_UPDATE_SCHEMA=1 to rewrite it, then commit it");
    }
}
