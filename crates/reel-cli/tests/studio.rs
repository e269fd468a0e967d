//! The studio as operators run it: `reel serve` and `reel worker` processes, the official openai
//! SDK, the web page in Chromium, PostgreSQL, and what happens when workers and servers die.
//!
//! Needs (installed by .ci/run): Python with `openai` (REEL_TEST_PYTHON, else python3), Node with
//! playwright-core in scripts/tests and Chromium, and a PostgreSQL server (REEL_TEST_POSTGRES_URL,
//! a superuser URL). Missing tools fail the tests that need them, with the reason.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn reel_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_reel"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `reel serve` process on a free port.
struct Server {
    child: Child,
    url: String,
    key: Option<String>,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(reel_binary())
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("REEL_CACHE_DIR", data_dir.join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reel serve starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut url = None;
        let mut wants_key = false;
        for line in stderr.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("reel studio on ") {
                url = Some(rest.split('/').take(3).collect::<Vec<_>>().join("/"));
            }
            if line.contains("created the first API key") {
                wants_key = true;
            }
            if line.starts_with("API:") {
                break;
            }
            assert!(!line.starts_with("error"), "reel serve failed: {line}");
        }
        let key = wants_key.then(|| {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            line.trim().to_string()
        });
        Server { child, url: url.expect("reel serve prints its address"), key }
    }

    fn api(&self) -> String {
        format!("{}/v1", self.url)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(data_dir: &Path, extra: &[&str]) -> Child {
    Command::new(reel_binary())
        .args(["worker", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("REEL_CACHE_DIR", data_dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("reel worker starts")
}

fn request(method: &str, url: &str, key: &str) -> ureq::Request {
    ureq::request(method, url).set("Authorization", &format!("Bearer {key}"))
}

/// Status and JSON body of a response, errors included.
fn call(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(status, r)) => (status, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("request failed: {e}"),
    }
}

fn create(server: &Server, key: &str, body: Value) -> Value {
    let (status, video) = call(request("POST", &format!("{}/videos", server.api()), key).send_json(body));
    assert_eq!(status, 200, "{video}");
    video
}

fn retrieve(server: &Server, key: &str, id: &str) -> Value {
    call(request("GET", &format!("{}/videos/{id}", server.api()), key).call()).1
}

fn wait_all_completed(server: &Server, key: &str, ids: &[String], timeout: Duration) {
    let start = Instant::now();
    loop {
        let states: Vec<String> = ids.iter().map(|id| retrieve(server, key, id)["status"].as_str().unwrap_or("?").to_string()).collect();
        if states.iter().all(|s| s == "completed") {
            return;
        }
        assert!(!states.iter().any(|s| s == "failed"), "a job failed: {states:?}");
        assert!(start.elapsed() < timeout, "jobs not done after {timeout:?}: {states:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn python() -> String {
    std::env::var("REEL_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn the_official_openai_sdk_works_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().expect("a first key");
    let out = Command::new(python())
        .arg(repo().join("scripts/tests/openai_sdk.py"))
        .arg(server.api())
        .arg(&key)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (set REEL_TEST_PYTHON to a Python with `openai`): {e}", python()));
    assert!(out.status.success(), "openai SDK test failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_page_generates_and_plays_a_video_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shot = dir.path().join("page.png");
    let scripts = repo().join("scripts/tests");
    assert!(scripts.join("node_modules/playwright-core").is_dir(), "run `npm install` in scripts/tests (.ci/run does)");
    let storyboard = dir.path().join("storyboard.yaml");
    std::fs::write(&storyboard, FILM.replace("Two shots", "Uploaded film")).unwrap();
    let out = Command::new("node")
        .arg(scripts.join("page.mjs"))
        .arg(&server.url)
        .arg(server.key.as_deref().unwrap())
        .arg(&shot)
        .arg(&storyboard)
        .output()
        .expect("node is installed");
    assert!(out.status.success(), "page test failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot is empty");
}

#[test]
fn bad_requests_get_the_right_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0", "--max-pending", "3", "--max-prompt-chars", "100", "--max-upload-bytes", "1000"]);
    let key = server.key.clone().unwrap();
    let videos = format!("{}/videos", server.api());
    let expect = |result, status: u16, needle: &str| {
        let (got, body) = call(result);
        assert_eq!(got, status, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "'{message}' lacks '{needle}'");
    };
    expect(ureq::post(&videos).send_json(json!({"prompt": "x"})), 401, "API key");
    expect(request("POST", &videos, "sk-reel-wrong").send_json(json!({"prompt": "x"})), 401, "API key");
    expect(request("POST", &videos, &key).set("Content-Type", "application/json").send_string("{\"prompt\": "), 400, "not valid JSON");
    expect(request("POST", &videos, &key).send_json(json!({"size": "64x64"})), 400, "'prompt' is required");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x".repeat(101)})), 400, "limit is 100");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x", "sizes": "1"})), 400, "unrecognized request argument supplied: sizes");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x", "seconds": "99"})), 400, "seconds");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x", "model": "nope"})), 400, "not served here");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x", "steps": "many"})), 400, "must be a number");
    // An upload above the limit, as multipart (the SDK's encoding).
    let boundary = "reelboundary";
    let body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n{}\r\n--{boundary}--\r\n", "x".repeat(2000));
    expect(request("POST", &videos, &key).set("Content-Type", &format!("multipart/form-data; boundary={boundary}")).send_string(&body), 413, "limit is 1000");
    expect(request("GET", &format!("{videos}/video_missing"), &key).call(), 404, "No video");
    expect(request("GET", &format!("{videos}?limit=0"), &key).call(), 400, "limit");
    expect(request("GET", &format!("{}/nowhere", server.url), &key).call(), 404, "Unknown request URL");
    // Extending a video that failed: refused as remixing it is.
    let failed = create(&server, &key, json!({"prompt": "a doomed square"}));
    let failed = failed["id"].as_str().unwrap();
    mark_failed(&dir.path().join("reel.db"), failed);
    let extensions = format!("{}/videos/extensions", server.api());
    expect(request("POST", &extensions, &key).send_json(json!({"prompt": "more", "seconds": "4", "video": {"id": failed}})), 409, "only completed videos can be extended");
    expect(request("POST", &extensions, &key).send_json(json!({"prompt": "more", "seconds": "3", "video": {"id": failed}})), 400, "4, 8, 12, 16, 20");
    expect(request("POST", &extensions, &key).send_json(json!({"prompt": "more", "seconds": "4", "video": {"id": "video_nope"}})), 404, "No video");
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x", "input_reference": {"image_url": "http://example.com/a.png"}})), 400, "does not fetch remote URLs");
    // (Gone, so that the newest video below is a queued one.)
    assert_eq!(call(request("DELETE", &format!("{videos}/{failed}"), &key).call()).0, 200);
    // The queue limit per key.
    for _ in 0..3 {
        create(&server, &key, json!({"prompt": "a red ring"}));
    }
    expect(request("POST", &videos, &key).send_json(json!({"prompt": "x"})), 429, "limit is 3");
    // Content of an unfinished video.
    let list = call(request("GET", &videos, &key).call()).1;
    let id = list["data"][0]["id"].as_str().unwrap();
    expect(request("GET", &format!("{videos}/{id}/content"), &key).call(), 409, "queued");
    // Another key sees none of these videos.
    let out = Command::new(reel_binary()).args(["keys", "create", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let other = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_string();
    let other = other.as_str();
    assert_eq!(call(request("GET", &videos, other).call()).1["data"].as_array().unwrap().len(), 0);
    expect(request("GET", &format!("{videos}/{id}"), other).call(), 404, "No video");
    // Estimates check the request as a real one and name the parameter.
    let estimates = format!("{}/estimates", server.api());
    let (status, estimate) = call(request("POST", &estimates, &key).send_json(json!({"seconds": "4", "gpu": "h100", "count": 2, "price_per_hour": 3.0})));
    assert_eq!(status, 200, "{estimate}");
    assert_eq!((estimate["object"].as_str(), estimate["video"]["frames"].as_u64()), (Some("estimate"), Some(33)));
    assert!(estimate["seconds"].as_f64().unwrap() > 0.0 && estimate["cost_usd"].as_f64().unwrap() > 0.0, "{estimate}");
    expect(request("POST", &estimates, &key).send_json(json!({"gpu": "tpu"})), 400, "unknown accelerator 'tpu'");
    expect(request("POST", &estimates, &key).send_json(json!({"seconds": "99"})), 400, "seconds");
    expect(request("POST", &estimates, &key).send_json(json!({"sizes": "1"})), 400, "unknown field `sizes`");
    // The API description covers every route.
    let doc: Value = ureq::get(&format!("{}/openapi.json", server.url)).call().unwrap().into_json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/videos/{video_id}/content"]["get"].is_object());
    assert!(doc["paths"]["/v1/videos/extensions"]["post"]["requestBody"].is_object());
}

#[test]
fn a_video_whose_prompt_was_cut_to_fit_the_text_encoder_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();
    // The demo model reads 32 tokens, a token a word and </s>.
    let long = format!("a red square moves right{}", " slowly".repeat(35));
    let ids: Vec<String> = ["a red square moves right", long.as_str()]
        .iter()
        .map(|prompt| create(&server, &key, json!({"prompt": prompt, "steps": 2}))["id"].as_str().unwrap().to_string())
        .collect();
    wait_all_completed(&server, &key, &ids, Duration::from_secs(120));
    let short = retrieve(&server, &key, &ids[0]);
    assert!(short.get("warning").is_none(), "{short}");
    let cut = retrieve(&server, &key, &ids[1]);
    let warning = cut["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("the last 9 tokens of the prompt were ignored"), "{cut}");
}

/// A two-shot storyboard for the demo model: one narrated shot, one crossfade.
const FILM: &str = "title: Two shots\nmodel: demo\nshots:\n  - prompt: a red square moves right over a black background\n    duration: 1\n    narration: A red square.\n  - prompt: a yellow circle bounces on a dark grey backdrop\n    duration: 1\n    transition: {crossfade: 0.25}\n";

fn post_film(server: &Server, key: &str, yaml: &str) -> (u16, Value) {
    call(request("POST", &format!("{}/films", server.api()), key).set("Content-Type", "application/yaml").send_string(yaml))
}

fn wait_for_film(server: &Server, key: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let film = call(request("GET", &format!("{}/films/{id}", server.api()), key).call()).1;
        match film["status"].as_str() {
            Some("completed") => return film,
            Some("failed") => panic!("the film failed: {film}"),
            _ => assert!(start.elapsed() < Duration::from_secs(300), "film not done: {film}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_storyboard_becomes_a_film_with_per_shot_status_and_reuses_unchanged_shots() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();

    // Bad storyboards name the field.
    let (status, body) = post_film(&server, &key, &FILM.replace("duration: 1\n    narration", "duration: -1\n    narration"));
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("shots[0].duration")), "{body}");
    let (status, body) = post_film(&server, &key, &FILM.replace("model: demo", "model: /etc"));
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("model")), "{body}");
    let (status, body) = post_film(&server, &key, "title: t\nmodel: demo\nshots: []\n");
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("shots")), "{body}");

    let (status, film) = post_film(&server, &key, FILM);
    assert_eq!(status, 200, "{film}");
    assert_eq!((film["object"].as_str(), film["title"].as_str()), (Some("film"), Some("Two shots")));
    let id = film["id"].as_str().unwrap().to_string();
    let film = wait_for_film(&server, &key, &id);
    let statuses: Vec<&str> = film["shots"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["completed", "completed"], "{film}");

    // The MP4 carries the narration; the subtitles come as variants.
    let content = format!("{}/videos/{id}/content", server.api());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut request("GET", &content, &key).call().unwrap().into_reader(), &mut bytes).unwrap();
    let path = dir.path().join("film.mp4");
    std::fs::write(&path, bytes).unwrap();
    let probe = Command::new("ffprobe").args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"]).arg(&path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).split_whitespace().collect::<Vec<_>>(), ["video", "audio"]);
    // The film's reported length is the real one (its narrated shot may have grown).
    let probe = Command::new("ffprobe").args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration", "-of", "csv=p=0"]).arg(&path).output().unwrap();
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap();
    let reported: f64 = film["seconds"].as_str().unwrap().parse().unwrap();
    assert!((duration - reported).abs() < 0.01, "reported {reported} s, the file lasts {duration} s");
    let vtt = request("GET", &format!("{content}?variant=subtitles"), &key).call().unwrap().into_string().unwrap();
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("A red square."), "{vtt}");
    let listed = call(request("GET", &format!("{}/videos", server.api()), &key).call()).1;
    assert_eq!(listed["data"][0]["shots"].as_array().map(Vec::len), Some(2), "{listed}");
    let (status, _) = call(request("POST", &format!("{}/videos/{id}/remix", server.api()), &key).send_json(json!({"prompt": "x"})));
    assert_eq!(status, 400, "films are remade from their storyboard, not remixed");

    assert!(film["shots"].as_array().unwrap().iter().all(|s| s.get("warning").is_none()), "{film}");

    // The same storyboard with one shot edited: the other shot comes from the cache. The edited
    // prompt is longer than the demo model's 32 tokens: its shot says so.
    let long_pink = format!("a pink circle{}", " slowly".repeat(30));
    let (_, again) = post_film(&server, &key, &FILM.replace("a yellow circle", &long_pink));
    let again = wait_for_film(&server, &key, again["id"].as_str().unwrap());
    let statuses: Vec<&str> = again["shots"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["cached", "completed"], "{again}");
    let warnings: Vec<Option<&str>> = again["shots"].as_array().unwrap().iter().map(|s| s["warning"].as_str()).collect();
    assert!(warnings[0].is_none(), "{again}");
    assert!(warnings[1].is_some_and(|w| w.contains("tokens of the prompt were ignored")), "{again}");
}

#[test]
fn a_job_whose_worker_dies_finishes_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0"]);
    let key = server.key.clone().unwrap();
    // Many steps: long enough to kill the worker in the middle.
    let video = create(&server, &key, json!({"prompt": "a green circle moves left", "steps": 60}));
    let id = video["id"].as_str().unwrap().to_string();
    let mut first = worker(dir.path(), &["--lease-seconds", "3"]);
    let start = Instant::now();
    loop {
        let v = retrieve(&server, &key, &id);
        if v["status"] == "in_progress" && v["progress"].as_i64().unwrap() > 5 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the first worker never started: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = Instant::now();
    let mut second = worker(dir.path(), &["--lease-seconds", "3"]);
    wait_all_completed(&server, &key, std::slice::from_ref(&id), Duration::from_secs(120));
    eprintln!("job finished {:.1} s after its worker was killed", killed_at.elapsed().as_secs_f64());
    second.kill().unwrap();
    let _ = second.wait();
    let mp4 = request("GET", &format!("{}/videos/{id}/content", server.api()), &key).call().unwrap();
    assert_eq!(mp4.header("Content-Type"), Some("video/mp4"));
}

#[test]
fn queued_jobs_survive_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0"]);
    let key = server.key.clone().unwrap();
    let ids: Vec<String> = (0..4)
        .map(|i| create(&server, &key, json!({"prompt": format!("a blue square moves right, take {i}"), "steps": 4}))["id"].as_str().unwrap().to_string())
        .collect();
    server.kill();
    let server = Server::start(dir.path(), &["--workers", "1"]);
    assert!(server.key.is_none(), "a restart must not create another first key");
    wait_all_completed(&server, &key, &ids, Duration::from_secs(120));
}

/// A 64x64 PNG: a red disc on a dark background.
fn disc_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 64, |x, y| {
        let (dx, dy) = (x as f64 - 31.5, y as f64 - 31.5);
        if dx * dx + dy * dy <= 19.2 * 19.2 { image::Rgb([230, 30, 30]) } else { image::Rgb([10, 12, 30]) }
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image).write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A multipart body as the SDKs send it: text fields, then one file.
fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "reeltestboundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    let (name, file_name, bytes) = file;
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn download(server: &Server, key: &str, id: &str, path: &Path) {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut request("GET", &format!("{}/videos/{id}/content", server.api()), key).call().unwrap().into_reader(), &mut bytes).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Frames of an MP4's video stream, counted by ffprobe.
fn frame_count(path: &Path) -> usize {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or_else(|_| panic!("ffprobe: {}", String::from_utf8_lossy(&probe.stderr)))
}

#[test]
fn queued_extensions_and_image_jobs_survive_a_restart_and_their_sources_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();
    let source = create(&server, &key, json!({"prompt": "a yellow square moves left", "steps": 4}));
    let source = source["id"].as_str().unwrap().to_string();
    wait_all_completed(&server, &key, std::slice::from_ref(&source), Duration::from_secs(120));
    let source_mp4 = dir.path().join("source.mp4");
    download(&server, &key, &source, &source_mp4);
    server.kill();

    // Queued while no worker runs: an extension of the source and a video from an image.
    let server = Server::start(dir.path(), &["--workers", "0"]);
    let api = server.api();
    let (status, extension) = call(request("POST", &format!("{api}/videos/extensions"), &key).send_json(json!({"prompt": "the square stops", "seconds": "4", "video": {"id": source}})));
    assert_eq!(status, 200, "{extension}");
    assert_eq!((extension["status"].as_str(), extension["seconds"].as_str()), (Some("queued"), Some("6")), "{extension}");
    let (content_type, body) = multipart(&[("prompt", "a red disc rises"), ("steps", "4")], ("input_reference", "disc.png", &disc_png()));
    let (status, image) = call(request("POST", &format!("{api}/videos"), &key).set("Content-Type", &content_type).send_bytes(&body));
    assert_eq!(status, 200, "{image}");
    // Jobs keep their inputs: the source may go.
    let (status, _) = call(request("DELETE", &format!("{api}/videos/{source}"), &key).call());
    assert_eq!(status, 200);
    server.kill();

    let server = Server::start(dir.path(), &["--workers", "1"]);
    let ids = [extension["id"].as_str().unwrap().to_string(), image["id"].as_str().unwrap().to_string()];
    wait_all_completed(&server, &key, &ids, Duration::from_secs(240));
    let extended = dir.path().join("extended.mp4");
    download(&server, &key, &ids[0], &extended);
    // The source's frames and 4 s more at the demo model's 8 fps.
    assert_eq!(frame_count(&extended), frame_count(&source_mp4) + 32);
    assert_eq!(retrieve(&server, &key, &ids[0])["extended_from_video_id"].as_str(), Some(source.as_str()));
}

#[test]
fn concurrent_clients_lose_and_duplicate_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0", "--max-pending", "100"]);
    let key = server.key.clone().unwrap();
    let api = server.api();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (api, key) = (api.clone(), key.clone());
            std::thread::spawn(move || {
                (0..4)
                    .map(|i| {
                        let (status, v) = call(request("POST", &format!("{api}/videos"), &key).send_json(json!({"prompt": format!("client {t} clip {i}"), "steps": 2})));
                        assert_eq!(status, 200, "{v}");
                        v["id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "some submissions were lost or merged");
    // Two worker processes share the queue; every job runs exactly once.
    let mut workers = vec![worker(dir.path(), &[]), worker(dir.path(), &[])];
    wait_all_completed(&server, &key, &ids, Duration::from_secs(240));
    for w in &mut workers {
        w.kill().unwrap();
        let _ = w.wait();
    }
    let listed: Vec<Value> = call(request("GET", &format!("{api}/videos?limit=100"), &key).call()).1["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 24);
    let attempts = claims_per_job(&dir.path().join("reel.db"));
    assert!(attempts.iter().all(|a| *a == 1), "jobs claimed more than once: {attempts:?}");
}

/// Marks a video failed in the SQLite queue, as a worker does when its generation fails.
fn mark_failed(db: &Path, id: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let done = sqlx::query("UPDATE videos SET status = 'failed', error_code = 'generation_failed', error_message = 'test' WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    });
}

/// How many times each job was claimed, read from the SQLite queue.
fn claims_per_job(db: &Path) -> Vec<i64> {
    let out = tokio::runtime::Runtime::new().unwrap().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let rows: Vec<(i32,)> = sqlx::query_as("SELECT attempts FROM videos").fetch_all(&pool).await.unwrap();
        rows.into_iter().map(|r| r.0 as i64).collect::<Vec<_>>()
    });
    out
}

#[test]
fn postgres_queue_serves_the_api_and_shares_work_between_workers() {
    let admin = std::env::var("REEL_TEST_POSTGRES_URL")
        .expect("REEL_TEST_POSTGRES_URL must name a PostgreSQL superuser URL (.ci/run starts a server and sets it)");
    // A fresh database for this run.
    let name = format!("reel_test_{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin).await.expect("PostgreSQL is reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&pool).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    });
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0", "--database", &url]);
    let key = server.key.clone().unwrap();
    let ids: Vec<String> = (0..6)
        .map(|i| create(&server, &key, json!({"prompt": format!("a purple triangle falls, take {i}"), "steps": 3}))["id"].as_str().unwrap().to_string())
        .collect();
    let mut workers = vec![worker(dir.path(), &["--database", &url]), worker(dir.path(), &["--database", &url])];
    wait_all_completed(&server, &key, &ids, Duration::from_secs(240));
    for w in &mut workers {
        w.kill().unwrap();
        let _ = w.wait();
    }
    let attempts: Vec<i32> = runtime.block_on(async {
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let rows: Vec<(i32,)> = sqlx::query_as("SELECT attempts FROM videos").fetch_all(&pool).await.unwrap();
        rows.into_iter().map(|r| r.0).collect()
    });
    assert_eq!(attempts, vec![1; 6], "every job runs exactly once");
}
