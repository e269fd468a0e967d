//! The `reel` binary as users run it.

use std::path::Path;

use assert_cmd::Command;
use candle_core::{DType, Device};
use reel_models::testing::{fixture, load_tensors, take};

fn reel() -> Command {
    Command::cargo_bin("reel").unwrap()
}

/// ffprobe's view of a file's first stream (ffprobe is installed by .ci/run).
fn first_stream(path: &Path) -> serde_json::Value {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by .ci/run");
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    info["streams"][0].clone()
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn help_lists_every_planned_command() {
    let out = reel().arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for command in ["generate", "film", "serve", "worker", "estimate", "models", "bench", "train", "eval"] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
    }
}

#[test]
fn generate_without_a_model_uses_the_bundled_demo_model() {
    // README's first command, offline: the bundled model writes out.mp4 in the working folder.
    let dir = tempfile::tempdir().unwrap();
    reel()
        .current_dir(dir.path())
        .env("REEL_CACHE_DIR", dir.path().join("cache"))
        .args(["generate", "a red square moving right", "--quiet"])
        .assert()
        .success();
    let stream = first_stream(&dir.path().join("out.mp4"));
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!((stream["width"].as_u64(), stream["height"].as_u64(), stream["nb_read_frames"].as_str()), (Some(64), Some(64), Some("17")));
}

#[test]
fn generate_warns_when_the_prompt_is_cut_to_fit_the_text_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let run = |max_length: &str| {
        let out = reel()
            .current_dir(dir.path())
            .env("REEL_CACHE_DIR", dir.path().join("cache"))
            .args(["generate", "a red square moving right", "--steps", "2", "--max-sequence-length", max_length, "--quiet"])
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stderr).unwrap()
    };
    // The demo tokenizer reads one token a word, then </s>: six tokens, of which four fit.
    let cut = run("4");
    assert!(cut.contains("warning: the last 2 tokens of the prompt were ignored") && cut.contains("reads 4 tokens"), "{cut}");
    let whole = run("6");
    assert!(!whole.contains("warning"), "{whole}");
}

#[test]
fn generate_rejects_invalid_sizes_with_the_nearest_valid_value() {
    let model = fixture("tiny-wan2.1");
    let err = stderr_of(reel().args(["generate", "x", "--frames", "10", "--height", "32", "--width", "48", "--model"]).arg(&model));
    assert!(err.contains("4k+1") && err.contains("9 and 13"), "{err}");
    let err = stderr_of(reel().args(["generate", "x", "--frames", "9", "--height", "40", "--width", "48", "--model"]).arg(&model));
    assert!(err.contains("height 40") && err.contains("multiple of 16"), "{err}");
}

#[test]
fn generate_refuses_an_output_it_could_not_write_before_loading_any_model() {
    let dir = tempfile::tempdir().unwrap();
    // The model does not exist either: the output is what is checked first, so that a long
    // generation never ends in a file that cannot be written.
    let missing_model = dir.path().join("no-model");
    let err = stderr_of(reel().args(["generate", "x", "-o"]).arg(dir.path().join("renders/out.mp4")).arg("--model").arg(&missing_model));
    assert!(err.contains("renders") && err.contains("does not exist") && !err.contains("no-model"), "{err}");
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let err = stderr_of(reel().args(["generate", "x", "--thumbnail"]).arg(dir.path().join("file/thumb.png")).arg("--model").arg(&missing_model));
    assert!(err.contains("thumb.png") && !err.contains("no-model"), "{err}");
    // An error that names its cause says it once.
    let err = stderr_of(reel().args(["generate", "x", "-o"]).arg(dir.path().join("file/frames/")));
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
}

#[test]
fn generate_rejects_init_latents_of_the_wrong_shape_or_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latents.safetensors");
    let wrong = candle_core::Tensor::zeros((1, 4, 2, 4, 6), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&[("latents".to_string(), wrong.clone())].into_iter().collect(), &file).unwrap();
    let model = fixture("tiny-wan2.1");
    let args = ["generate", "x", "--frames", "9", "--height", "32", "--width", "48", "--init-latents"];
    let err = stderr_of(reel().args(args).arg(&file).arg("--model").arg(&model));
    assert!(err.contains("[1, 4, 2, 4, 6]") && err.contains("[1, 4, 3, 4, 6]"), "{err}");
    candle_core::safetensors::save(&[("noise".to_string(), wrong)].into_iter().collect(), &file).unwrap();
    let err = stderr_of(reel().args(args).arg(&file).arg("--model").arg(&model));
    assert!(err.contains("no tensor named 'latents'") && err.contains("noise"), "{err}");
}

/// Reads PNG frames as one flat vector of bytes.
fn read_frames(dir: &Path, count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| image::open(dir.join(format!("{i:05}.png"))).unwrap().to_rgb8().into_raw())
        .collect()
}

#[test]
fn generate_reproduces_the_reference_pipeline_frame_by_frame() {
    // The same run as diffusers' WanPipeline in scripts/fixtures/pipeline.py, from its initial latents.
    let tensors = load_tensors("parity/pipeline_wan2.1_unipc.safetensors");
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("parity/pipeline_wan2.1_unipc.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let latents_file = dir.path().join("latents.safetensors");
    candle_core::safetensors::save(&[("latents".to_string(), take(&tensors, "latents"))].into_iter().collect(), &latents_file)
        .unwrap();
    let out = dir.path().join("frames/");
    reel()
        .arg("generate")
        .arg(settings["prompt"].as_str().unwrap())
        .args(["--negative-prompt", settings["negative_prompt"].as_str().unwrap()])
        .args(["--frames", "9", "--height", "32", "--width", "48", "--steps", "3", "--guidance", "5"])
        .args(["--dtype", "f32", "--vae-tiling", "off", "--quiet"])
        .arg("--model")
        .arg(fixture("tiny-wan2.1"))
        .arg("--init-latents")
        .arg(&latents_file)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();

    let frames = read_frames(&out, 9);
    let expected: Vec<u8> = (take(&tensors, "frames") * 255.0).unwrap().round().unwrap().to_dtype(DType::U8).unwrap()
        .flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(frames.len(), expected.len());
    let off_by_more_than_one = frames.iter().zip(&expected).filter(|(a, b)| a.abs_diff(**b) > 1).count();
    let exact = frames.iter().zip(&expected).filter(|(a, b)| a == b).count();
    assert_eq!(off_by_more_than_one, 0);
    assert!(exact as f64 >= 0.99 * expected.len() as f64, "only {exact} of {} bytes equal", expected.len());
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("video.json")).unwrap()).unwrap();
    assert_eq!(manifest["frames"], 9);
}

/// Five PNG frames of 32x32 in two steps of the tiny Wan2.1 checkpoint, written to the folder `out`.
fn generate_tiny(prompt: &str, out: &Path, extra: &[&str]) {
    reel()
        .args(["generate", prompt, "--frames", "5", "--height", "32", "--width", "32", "--steps", "2", "--quiet"])
        .args(extra)
        .arg("--model")
        .arg(fixture("tiny-wan2.1"))
        .arg("-o")
        .arg(out)
        .assert()
        .success();
}

#[test]
fn the_same_seed_gives_the_same_video_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        generate_tiny("a blue square", &out, &["--seed", seed]);
        read_frames(&out, 5)
    };
    let first = run("7", "a");
    assert_eq!(first, run("7", "b"));
    assert_ne!(first, run("8", "c"));
}

#[test]
fn generate_dtype_auto_runs_a_concrete_dtype_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |dtype: &str| {
        let out = dir.path().join(format!("{dtype}/"));
        generate_tiny("a green ring", &out, &["--dtype", dtype]);
        let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("video.json")).unwrap()).unwrap();
        (read_frames(&out, 5), manifest["dtype"].as_str().unwrap().to_string())
    };
    let (auto_frames, resolved) = run("auto");
    // A model this small fits any machine's memory in f32, so auto runs f32 unless the CPU computes
    // bf16 itself.
    let expected = if reel_models::kernels::bf16_gemm::available() { "bf16" } else { "f32" };
    assert_eq!(resolved, expected);
    let (fixed_frames, fixed) = run(expected);
    assert_eq!(fixed, expected);
    assert_eq!(auto_frames, fixed_frames, "auto must run exactly as --dtype {expected}");
    let other = if expected == "f32" { "bf16" } else { "f32" };
    assert_ne!(auto_frames, run(other).0, "f32 and bf16 should not give the same bytes");
    let err = stderr_of(reel().args(["generate", "x", "--dtype", "f8", "--model"]).arg(fixture("tiny-wan2.1")));
    assert!(err.contains("f8") && err.contains("auto, f32, bf16 or f16"), "{err}");
}

#[test]
fn generate_writes_the_format_the_extension_asks_for_and_a_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["clip.mp4", "clip.gif", "clip.webp"] {
        let out = dir.path().join(name);
        let thumb = dir.path().join(format!("{name}.thumb.webp"));
        reel()
            .args(["generate", "a green ring", "--frames", "9", "--height", "32", "--width", "48", "--steps", "2", "--quiet"])
            .arg("--model")
            .arg(fixture("tiny-wan2.1"))
            .arg("-o")
            .arg(&out)
            .arg("--thumbnail")
            .arg(&thumb)
            .assert()
            .success();
        let stream = first_stream(&out);
        let expected_codec = match name { "clip.mp4" => "h264", "clip.gif" => "gif", _ => "webp" };
        assert_eq!(stream["codec_name"], expected_codec, "{name}: {stream}");
        if name == "clip.webp" {
            // ffmpeg does not decode animated WebP: the image crate does.
            use image::AnimationDecoder;
            let file = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
            let frames = image::codecs::webp::WebPDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
            assert_eq!(frames.len(), 9);
            assert_eq!(frames[0].buffer().dimensions(), (48, 32));
        } else {
            assert_eq!((stream["width"].as_u64(), stream["height"].as_u64()), (Some(48), Some(32)), "{name}");
            assert_eq!(stream["nb_read_frames"], "9", "{name}");
        }
        assert_eq!(image::open(&thumb).unwrap().to_rgb8().dimensions(), (48, 32));
    }
}

#[test]
fn generate_refuses_unknown_formats_before_running_the_model() {
    let err = stderr_of(reel().args(["generate", "x", "-o", "clip.avi", "--model"]).arg(fixture("tiny-wan2.1")));
    assert!(err.contains(".avi") && err.contains(".mp4"), "{err}");
    let err = stderr_of(reel().args(["generate", "x", "--thumbnail", "t.bmp", "--model"]).arg(fixture("tiny-wan2.1")));
    assert!(err.contains(".bmp"), "{err}");
}

/// The streams of a file as ffprobe lists them: (codec type, width, height, duration).
fn streams(path: &Path) -> Vec<(String, Option<u64>, Option<u64>, f64)> {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,width,height,duration", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by .ci/run");
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    info["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let duration = s["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(f64::NAN);
            (s["codec_type"].as_str().unwrap().to_string(), s["width"].as_u64(), s["height"].as_u64(), duration)
        })
        .collect()
}

#[test]
fn the_readme_storyboard_renders_with_the_bundled_model_and_reuses_its_shots() {
    let dir = tempfile::tempdir().unwrap();
    let storyboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storyboard.yaml");
    let film = dir.path().join("film.mp4");
    let run = || {
        let out = reel()
            .env("REEL_CACHE_DIR", dir.path().join("cache"))
            .arg("film")
            .arg(&storyboard)
            .arg("-o")
            .arg(&film)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stderr).unwrap()
    };
    let first = run();
    assert!(first.contains("(3 rendered, 0 from the cache)"), "{first}");
    let found = streams(&film);
    assert_eq!(found.len(), 2, "{found:?}");
    let (video, audio) = (&found[0], &found[1]);
    assert_eq!((video.0.as_str(), video.1, video.2), ("video", Some(256), Some(256)));
    assert_eq!(audio.0, "audio");
    // Three 2 s shots, one 0.5 s crossfade, possibly lengthened for narration.
    assert!(video.3 >= 5.5 - 1e-6 && (audio.3 - video.3).abs() < 0.03, "{found:?}");
    let srt = std::fs::read_to_string(film.with_extension("srt")).unwrap();
    assert_eq!(srt.matches(" --> ").count(), 3, "{srt}");
    assert!(srt.contains("A red square sets out.") && srt.contains("The end"), "{srt}");

    let again = run();
    assert!(again.contains("(0 rendered, 3 from the cache)"), "{again}");
}

#[test]
fn film_rejects_a_bad_storyboard_naming_the_shot_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "title: t\nmodel: demo\nshots:\n  - prompt: a\n    duration: 1\n  - prompt: b\n    duration: -2\n").unwrap();
    let err = stderr_of(reel().arg("film").arg(&path));
    assert!(err.contains("shots[1].duration") && err.contains("-2"), "{err}");
    std::fs::write(&path, "title: t\nmodel: demo\nshots:\n  - prompt: a\n    duration: 1\n    narration: hi\n").unwrap();
    let err = stderr_of(reel().arg("film").arg(&path).args(["-o", "film.gif"]));
    assert!(err.contains(".mp4"), "{err}");
    let err = stderr_of(reel().arg("film").arg(&path).arg("-o").arg(dir.path().join("missing/film.mp4")));
    assert!(err.contains("missing") && err.contains("does not exist"), "{err}");
    std::fs::write(&path, "title: t\nmodel: demo\nvoice: {name: xx-nope}\nshots:\n  - prompt: a\n    duration: 1\n    narration: hi\n").unwrap();
    let err = stderr_of(reel().arg("film").arg(&path).arg("-o").arg(dir.path().join("film.mp4")));
    assert!(err.contains("voice.name") && err.contains("xx-nope"), "{err}");
}

fn estimate_json(args: &[&str]) -> serde_json::Value {
    let out = reel().arg("estimate").args(args).arg("--json").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn estimate_reports_work_time_cost_energy_and_memory() {
    let base = ["--model", "wan2.1-t2v-14b", "--size", "1280x720", "--seconds", "5", "--fps", "16", "--gpu", "h800", "--price-per-hour", "2"];
    let eight = estimate_json(&[&base[..], &["--count", "8"]].concat());
    let stages: Vec<&str> = eight["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["text encoder", "transformer", "vae decode"]);
    let flops: f64 = eight["stages"].as_array().unwrap().iter().map(|s| s["flops"].as_f64().unwrap()).sum();
    assert!((flops / eight["total_flops"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(eight["video"]["frames"], 81);
    assert_eq!(eight["tokens"], 21 * 45 * 80);
    let seconds = eight["seconds"].as_f64().unwrap();
    assert!((eight["cost_usd"].as_f64().unwrap() - 8.0 * 2.0 * seconds / 3600.0).abs() < 1e-9);
    assert!((eight["energy_kwh"].as_f64().unwrap() - 8.0 * 0.7 * seconds / 3600.0).abs() < 1e-9);
    assert_eq!(eight["fits"], true);

    // One device: the work is the same, the time 8 x 0.9 times longer.
    let one = estimate_json(&[&base[..], &["--count", "1"]].concat());
    assert_eq!(one["total_flops"], eight["total_flops"]);
    assert!((one["seconds"].as_f64().unwrap() / seconds - 7.2).abs() < 1e-6);
    // Without guidance the transformer runs once per step instead of twice.
    let unguided = estimate_json(&[&base[..], &["--guidance", "1"]].concat());
    let transformer = |e: &serde_json::Value| e["stages"][1]["flops"].as_f64().unwrap();
    assert!((transformer(&unguided) * 2.0 / transformer(&one) - 1.0).abs() < 1e-12);
    // A 14B model in bf16 does not fit a 24 GB card.
    let small_card = estimate_json(&["--model", "wan2.1-t2v-14b", "--gpu", "rtx4090"]);
    assert_eq!(small_card["fits"], false);
}

#[test]
fn estimate_rejects_what_it_cannot_estimate() {
    let err = stderr_of(reel().args(["estimate", "--model", "wan2.1-t2v-14b", "--gpu", "tpu"]));
    assert!(err.contains("tpu") && err.contains("h800"), "{err}");
    let err = stderr_of(reel().args(["estimate", "--model", "wan2.1-t2v-14b", "--frames", "80"]));
    assert!(err.contains("4k+1") && err.contains("77") && err.contains("81"), "{err}");
    let err = stderr_of(reel().args(["estimate", "--model", "wan9"]));
    assert!(err.contains("wan9") && err.contains("wan2.1-t2v-1.3b"), "{err}");
    let err = stderr_of(reel().args(["estimate", "--model", "wan2.1-t2v-14b", "--size", "1280x721"]));
    assert!(err.contains("multiple of 16") && err.contains("nearest valid height is 720"), "{err}");
    // A hub id names the same published configuration as its `reel models` name.
    let by_id = reel().args(["estimate", "--model", "Wan-AI/Wan2.1-T2V-14B-Diffusers", "--json"]).assert().success().get_output().stdout.clone();
    let by_name = reel().args(["estimate", "--model", "wan2.1-t2v-14b", "--json"]).assert().success().get_output().stdout.clone();
    let flops = |out: &[u8]| serde_json::from_slice::<serde_json::Value>(out).unwrap()["total_flops"].clone();
    assert!(flops(&by_id).is_number() && flops(&by_id) == flops(&by_name), "{}", String::from_utf8_lossy(&by_id));
}

#[test]
fn bench_compare_refuses_an_interpreter_without_the_reference_before_measuring() {
    // Runs from the repository root, where scripts/bench lives.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let err = stderr_of(reel().current_dir(&root).args(["bench", "transformer", "--compare", "diffusers", "--python", "/nonexistent/python3"]));
    assert!(err.contains("/nonexistent/python3") && err.contains("--python"), "{err}");
    let err = stderr_of(reel().args(["bench", "transformer", "--compare", "pytorch"]));
    assert!(err.contains("diffusers"), "{err}");
}

#[test]
fn generate_takes_a_gguf_transformer_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny-wan2.1");
    let gguf = fixture("tiny-wan2.1-gguf/transformer.gguf");
    let out = dir.path().join("gguf.mp4");
    let base = ["generate", "a lighthouse", "--frames", "5", "--height", "32", "--width", "32", "--steps", "2", "--quiet"];
    reel().args(base).arg("--model").arg(&model).arg("--transformer").arg(&gguf).arg("-o").arg(&out).assert().success();
    assert_eq!(first_stream(&out)["nb_read_frames"], "5");

    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"not a gguf file at all").unwrap();
    let err = stderr_of(reel().args(base).arg("--model").arg(&model).arg("--transformer").arg(&corrupt).arg("-o").arg(&out));
    assert!(err.contains("corrupt.gguf") && err.contains("not a readable GGUF"), "{err}");
    let err = stderr_of(reel().args(base).arg("--model").arg(&model).arg("--transformer").arg(dir.path().join("missing.gguf")).arg("-o").arg(&out));
    assert!(err.contains("missing.gguf"), "{err}");
}

#[test]
fn generate_step_cache_reuses_steps_and_refuses_a_bad_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let out = reel()
        .current_dir(dir.path())
        .env("REEL_CACHE_DIR", dir.path().join("cache"))
        .args(["generate", "a red square moving right", "--step-cache", "0.4", "-o", "cached.mp4"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let reused: usize = stderr
        .split("step cache: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step-cache report in:\n{stderr}"));
    assert!(reused > 0 && stderr.contains("of 20 steps reused"), "{stderr}");
    let err = stderr_of(reel().current_dir(dir.path()).env("REEL_CACHE_DIR", dir.path().join("cache")).args(["generate", "x", "--step-cache", "0", "-o", "zero.mp4"]));
    assert!(err.contains("step-cache threshold 0") && err.contains("positive"), "{err}");
}

#[test]
fn generate_quantizes_to_int8_on_request_and_names_the_formats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.mp4");
    reel()
        .args(["generate", "a lighthouse", "--frames", "5", "--height", "32", "--width", "32", "--steps", "2", "--quantize", "q8", "--quiet", "--model"])
        .arg(fixture("tiny-wan2.1"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(first_stream(&out)["nb_read_frames"], "5");
    let err = stderr_of(reel().args(["generate", "x", "--quantize", "q4"]));
    assert!(err.contains("q4") && err.contains("q8"), "{err}");
}

/// Decoded RGB frames of a video, by ffmpeg.
fn ffmpeg_frames(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg is installed by .ci/run");
    out.stdout.chunks(width * height * 3).map(|f| f.to_vec()).collect()
}

fn mean_abs_difference(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64
}

#[test]
fn generate_starts_from_an_image_fitted_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    // A 96x64 image (wider than the demo's 64x64): a yellow square left of centre on dark blue, fresh each run.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 16;
    let image = image::RgbImage::from_fn(96, 64, |x, y| {
        let (cx, cy) = (40 + seed, 32);
        if x.abs_diff(cx) < 10 && y.abs_diff(cy) < 10 { image::Rgb([240, 220, 30]) } else { image::Rgb([10, 20, 80]) }
    });
    let still = dir.path().join("still.png");
    image.save(&still).unwrap();
    let cache = dir.path().join("cache");
    for fit in ["crop", "pad", "stretch"] {
        let out = dir.path().join(format!("{fit}.mp4"));
        reel().env("REEL_CACHE_DIR", &cache).args(["generate", "a yellow square drifts to the right", "--quiet", "--image"]).arg(&still).args(["--image-fit", fit, "-o"]).arg(&out).assert().success();
        let frames = ffmpeg_frames(&out, 64, 64);
        assert_eq!(frames.len(), 17);
        // The first frame is the image, fitted: compare it with the image crate's own fitting.
        let expected = reel_media::read_image(&still, 64, 64, fit.parse().unwrap()).unwrap();
        let difference = mean_abs_difference(&frames[0], &expected);
        assert!(difference < 12.0, "{fit}: the first frame differs from the fitted image by {difference:.1} on average");
    }
    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["generate", "x", "--image", "/nonexistent/still.png"]));
    assert!(err.contains("/nonexistent/still.png"), "{err}");
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["generate", "x", "--image"]).arg(&text));
    assert!(err.contains("not a readable image"), "{err}");
    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["generate", "x", "--image"]).arg(&still).args(["--image-fit", "squash"]));
    assert!(err.contains("crop, pad or stretch"), "{err}");
}

#[test]
fn long_videos_are_made_in_windows_and_extend_continues_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let long = dir.path().join("long.mp4");
    // 5 seconds at 8 fps: 40 frames, three 17-frame windows sharing 5 frames.
    let out = reel().env("REEL_CACHE_DIR", &cache).args(["generate", "a red circle moves to the right", "--seconds", "5", "-o"]).arg(&long).assert().success().get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("40 frames of 64x64") && stderr.contains("in 3 windows"), "{stderr}");
    assert_eq!(first_stream(&long)["nb_read_frames"], "40");

    // Extension: the source's frames come first (all but the cross-faded last five unchanged), then 4 s more.
    let extended = dir.path().join("extended.mp4");
    reel().env("REEL_CACHE_DIR", &cache).args(["extend"]).arg(&long).args(["the red circle keeps moving", "--seconds", "4", "--quiet", "-o"]).arg(&extended).assert().success();
    let (source, result) = (ffmpeg_frames(&long, 64, 64), ffmpeg_frames(&extended, 64, 64));
    assert_eq!(result.len(), 40 + 32);
    for i in [0, 17, 34] {
        let difference = mean_abs_difference(&source[i], &result[i]);
        assert!(difference < 3.0, "frame {i} of the source changed by {difference:.1} (re-encoding only should be ~1)");
    }

    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["extend", "/nonexistent/clip.mp4", "more"]));
    assert!(err.contains("/nonexistent/clip.mp4"), "{err}");
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, b"\0\0\0\x18ftypisom, then nothing").unwrap();
    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["extend"]).arg(&broken).arg("more"));
    assert!(err.contains("broken.mp4"), "{err}");
    let err = stderr_of(reel().env("REEL_CACHE_DIR", &cache).args(["generate", "x", "--seconds", "5", "--overlap", "3", "-o"]).arg(dir.path().join("bad.mp4")));
    assert!(err.contains("1 + 4k"), "{err}");
}

#[test]
fn a_wan21_i2v_checkpoint_starts_from_an_image_and_continues_its_windows() {
    // The tiny Wan2.1-I2V checkpoint (CLIP encoder, image branch, mask and image channels): 13-frame
    // windows, so 3 s at 8 fps are three windows that each start from the last 5 frames before them.
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny-wan2.1-i2v");
    let still = dir.path().join("still.png");
    image::RgbImage::from_fn(60, 40, |x, y| image::Rgb([(x * 4) as u8, (y * 6) as u8, 90])).save(&still).unwrap();
    let out = dir.path().join("i2v.mp4");
    let size = ["--width", "48", "--height", "32", "--frames", "13", "--fps", "8", "--steps", "2", "--dtype", "f32"];
    let run = reel().args(["generate", "a red circle drifts", "--model"]).arg(&model).args(size).args(["--seconds", "3", "--image"]).arg(&still).arg("-o").arg(&out).assert().success();
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("in 3 windows"), "{stderr}");
    assert_eq!(first_stream(&out)["nb_read_frames"], "24");
    let err = stderr_of(reel().args(["generate", "a red circle drifts", "--model"]).arg(&model).args(size).arg("-o").arg(dir.path().join("none.mp4")));
    assert!(err.contains("starts from an image") && err.contains("--image"), "{err}");
}
