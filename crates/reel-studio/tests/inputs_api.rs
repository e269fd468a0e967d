//! Image-to-video inputs and extensions through the HTTP API, in-process (no worker runs): what is
//! accepted, what is refused and with which error, and what is stored for the worker.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use reel_media::{write_video, VideoFrames, VideoOptions};
use reel_studio::api::{router, AppState};
use reel_studio::catalog::Catalog;
use reel_studio::outputs::{Outputs, Variant};
use reel_studio::store::Store;
use reel_studio::Limits;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A 1x1 PNG (one opaque pixel).
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

struct Studio {
    app: Router,
    store: Store,
    outputs: Outputs,
    key: String,
    key_id: String,
    _dir: tempfile::TempDir,
}

async fn studio_with(catalog: Catalog) -> Studio {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("reel.db").display())).await.unwrap();
    let (key_id, key) = store.create_key("test").await.unwrap();
    let outputs = Outputs::new(dir.path()).unwrap();
    let state = Arc::new(AppState::new(store.clone(), Arc::new(catalog), outputs.clone(), Limits::default()));
    Studio { app: router(state), store, outputs, key, key_id, _dir: dir }
}

/// The bundled demo model, taken as able to start from given frames (no worker runs here, so only
/// the API's checks matter; whether the model can is `ServedModel::given_frames`).
async fn studio() -> Studio {
    let mut catalog = reel_studio::catalog(&[]).expect("the bundled demo model");
    catalog.models[0].given_frames = true;
    studio_with(catalog).await
}

impl Studio {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// A multipart form as the SDKs send it: text fields, then files (name, file name, bytes).
    async fn multipart(&self, path: &str, fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (StatusCode, Value) {
        let boundary = "reel-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        for (name, file_name, bytes) in files {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            );
            body.extend(*bytes);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").as_bytes());
        let request = Request::post(path)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// A completed video whose MP4 is `frames` frames of 64x64 at 8 fps, as a worker leaves it.
    async fn completed_video(&self, frames: usize) -> String {
        let (status, video) = self.json("/v1/videos", json!({"prompt": "a grey square"})).await;
        assert_eq!(status, StatusCode::OK, "{video}");
        let id = video["id"].as_str().unwrap().to_string();
        let job = self.store.claim("test-worker", 60, 3).await.unwrap().expect("the job is queued");
        assert_eq!(job.id, id);
        let clip: Vec<Vec<u8>> = (0..frames).map(|i| vec![(i * 10 % 250) as u8; 64 * 64 * 3]).collect();
        std::fs::create_dir_all(self.outputs.dir(&id)).unwrap();
        write_video(&VideoFrames::new(64, 64, 8.0, clip).unwrap(), None, &self.outputs.file(&id, Variant::Video), VideoOptions::default()).unwrap();
        assert!(self.store.complete(&id, "test-worker", 3600, None).await.unwrap());
        id
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, param: Option<&str>, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["param"].as_str(), param, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "'{message}' lacks '{needle}'");
}

#[tokio::test]
async fn reference_images_in_every_spelling_are_checked_and_kept() {
    let s = studio().await;
    // A malformed data URL, as JSON and as the SDK's multipart field.
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"image_url": "data:image/png;base64"}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "not a valid data URL");
    let (status, body) = s.multipart("/v1/videos", &[("prompt", "x"), ("input_reference[image_url]", "data:image/png;base64,%%%")], &[]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "not valid base64");
    // Remote URLs and file ids.
    let (status, body) = s.multipart("/v1/videos", &[("prompt", "x"), ("input_reference[image_url]", "https://example.com/cat.png")], &[]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "does not fetch remote URLs");
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"file_id": "file-abc"}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "Files API");
    // Bytes that are no image, as an upload and as a data URL.
    let (status, body) = s.multipart("/v1/videos", &[("prompt", "x")], &[("input_reference", "cat.png", b"GIF89a but not really")]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "not a readable image");
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"image_url": "data:image/png;base64,aGVsbG8="}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "not a readable image");
    // A fit that does not exist, or without an image.
    let png = format!("data:image/png;base64,{PNG_1X1}");
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"image_url": png}, "input_reference_fit": "squash"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference_fit"), "crop, pad or stretch");
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference_fit": "pad"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference_fit"), "only with an input_reference");
    // Nothing was queued by the refusals.
    assert_eq!(s.store.pending_count(&s.key_id).await.unwrap(), 0);

    // Accepted: an upload, a data URL (with a fit), and the JSON object form.
    let png_bytes = base64_decode(PNG_1X1);
    let (status, upload) = s.multipart("/v1/videos", &[("prompt", "a red disc")], &[("input_reference", "disc.png", &png_bytes)]).await;
    assert_eq!(status, StatusCode::OK, "{upload}");
    let (status, url) = s.multipart("/v1/videos", &[("prompt", "a red disc"), ("input_reference[image_url]", &png), ("input_reference_fit", "pad")], &[]).await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let (status, object) = s.json("/v1/videos", json!({"prompt": "a red disc", "input_reference": {"image_url": png}})).await;
    assert_eq!(status, StatusCode::OK, "{object}");
    for (video, fit) in [(&upload, "crop"), (&url, "pad"), (&object, "crop")] {
        let id = video["id"].as_str().unwrap();
        assert_eq!(video["status"], "queued");
        let stored = s.store.video(id, &s.key_id).await.unwrap().unwrap();
        assert_eq!(stored.request.input_reference.as_ref().map(|r| r.fit.as_str()), Some(fit));
        assert_eq!(std::fs::read(s.outputs.reference_file(id)).unwrap(), png_bytes, "the image is kept as sent");
    }
    // A remix starts from the same image, its own copy of it.
    let id = upload["id"].as_str().unwrap();
    // (Jobs made in the same second are claimed in any order.)
    while s.store.claim("w", 60, 3).await.unwrap().expect("the job is queued").id != id {}
    assert!(s.store.complete(id, "w", 3600, None).await.unwrap());
    let (status, remix) = s.json(&format!("/v1/videos/{id}/remix"), json!({"prompt": "a blue disc"})).await;
    assert_eq!(status, StatusCode::OK, "{remix}");
    let remix_id = remix["id"].as_str().unwrap();
    let stored = s.store.video(remix_id, &s.key_id).await.unwrap().unwrap();
    assert_eq!(stored.request.input_reference.as_ref().map(|r| r.fit.as_str()), Some("crop"));
    // Deleting the video deletes its inputs; the remix keeps its copy.
    let request = Request::delete(format!("/v1/videos/{id}")).header("Authorization", format!("Bearer {}", s.key)).body(Body::empty()).unwrap();
    assert_eq!(s.send(request).await.0, StatusCode::OK);
    assert!(!s.outputs.inputs_dir(id).exists());
    assert_eq!(std::fs::read(s.outputs.reference_file(remix_id)).unwrap(), png_bytes);
}

#[tokio::test]
async fn models_that_cannot_start_from_an_image_refuse_it_at_create_time() {
    let mut catalog = reel_studio::catalog(&[]).unwrap();
    catalog.models[0].given_frames = false;
    let s = studio_with(catalog).await;
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"image_url": format!("data:image/png;base64,{PNG_1X1}")}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "text-to-video model");
}

#[tokio::test]
async fn image_to_video_models_ask_for_their_image_at_create_time() {
    let mut catalog = reel_studio::catalog(&[]).unwrap();
    (catalog.models[0].given_frames, catalog.models[0].needs_image) = (true, true);
    let s = studio_with(catalog).await;
    let (status, body) = s.json("/v1/videos", json!({"prompt": "x"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("input_reference"), "image-to-video model");
    let (status, _) = s.json("/v1/videos", json!({"prompt": "x", "input_reference": {"image_url": format!("data:image/png;base64,{PNG_1X1}")}})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn extensions_check_their_source_and_length() {
    let s = studio().await;
    let queued = s.json("/v1/videos", json!({"prompt": "a blue square"})).await.1["id"].as_str().unwrap().to_string();
    // Lengths the SDK does not allow, and no length.
    for seconds in ["5", "0", "-4", "four", "24"] {
        let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("seconds", seconds), ("video[id]", &queued)], &[]).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, Some("seconds"), "4, 8, 12, 16, 20");
    }
    let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("video[id]", &queued)], &[]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("seconds"), "'seconds' is required");
    let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("seconds", "4")], &[]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("video"), "'video' is required");
    let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("seconds", "4"), ("video[id]", &queued), ("colour", "red")], &[]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("colour"), "unrecognized request argument");
    // A queued video, an unknown one, a failed one.
    let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("seconds", "4"), ("video[id]", &queued)], &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("is queued; only completed videos can be extended"), "{body}");
    let (status, body) = s.json("/v1/videos/extensions", json!({"prompt": "more", "seconds": "4", "video": {"id": "video_nope"}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
    let job = s.store.claim("w", 60, 3).await.unwrap().unwrap();
    assert!(s.store.fail(&job.id, "w", "generation_failed", "boom").await.unwrap());
    let (status, body) = s.json("/v1/videos/extensions", json!({"prompt": "more", "seconds": "4", "video": {"id": queued}})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("is failed"), "{body}");
    // An upload that is no MP4.
    let (status, body) = s.multipart("/v1/videos/extensions", &[("prompt", "more"), ("seconds", "4")], &[("video", "clip.mp4", b"not a video")]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, Some("video"), "cannot be read");
    assert_eq!(s.store.pending_count(&s.key_id).await.unwrap(), 0);
}

#[tokio::test]
async fn an_extension_is_queued_with_its_source_copied_and_the_stitched_length() {
    let s = studio().await;
    let source = s.completed_video(17).await;
    let (status, video) = s.multipart("/v1/videos/extensions", &[("prompt", "it keeps going"), ("seconds", "4"), ("video[id]", &source)], &[]).await;
    assert_eq!(status, StatusCode::OK, "{video}");
    // The source reports 2 s (17 frames at 8 fps, as the catalog counts them); 4 more make 6.
    assert_eq!((video["status"].as_str(), video["seconds"].as_str(), video["size"].as_str()), (Some("queued"), Some("6"), Some("64x64")), "{video}");
    assert_eq!(video["extended_from_video_id"].as_str(), Some(source.as_str()));
    assert_eq!(video["remixed_from_video_id"], Value::Null);
    let id = video["id"].as_str().unwrap();
    let stored = s.store.video(id, &s.key_id).await.unwrap().unwrap();
    let extension = stored.request.extension.clone().expect("an extension job");
    assert_eq!((extension.source_frames, extension.new_frames, stored.request.frames), (17, 32, 49));
    assert_eq!(stored.extended_from.as_deref(), Some(source.as_str()));
    // The job keeps its own copy of the source: deleting the source leaves it intact.
    let request = Request::delete(format!("/v1/videos/{source}")).header("Authorization", format!("Bearer {}", s.key)).body(Body::empty()).unwrap();
    assert_eq!(s.send(request).await.0, StatusCode::OK);
    assert_eq!(reel_media::read_mp4_info(&s.outputs.source_file(id)).unwrap().frames, 17);

    // A remix of the extension extends the same source again with its new prompt.
    let job = s.store.claim("w", 60, 3).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert!(s.store.complete(id, "w", 3600, None).await.unwrap());
    let (status, remix) = s.json(&format!("/v1/videos/{id}/remix"), json!({"prompt": "it stops"})).await;
    assert_eq!(status, StatusCode::OK, "{remix}");
    assert_eq!((remix["seconds"].as_str(), remix["remixed_from_video_id"].as_str()), (Some("6"), Some(id)), "{remix}");
    assert_eq!(remix["extended_from_video_id"].as_str(), Some(source.as_str()));
    let stored_remix = s.store.video(remix["id"].as_str().unwrap(), &s.key_id).await.unwrap().unwrap();
    assert_eq!((stored_remix.request.prompt.as_str(), stored_remix.request.extension.as_ref()), ("it stops", Some(&extension)));
    assert_eq!(stored_remix.request.seed, stored.request.seed);
    assert!(s.outputs.source_file(remix["id"].as_str().unwrap()).is_file());

    // An uploaded MP4 is extended the same way.
    let upload = std::fs::read(s.outputs.source_file(id)).unwrap();
    let (status, video) = s.multipart("/v1/videos/extensions", &[("prompt", "on and on"), ("seconds", "8")], &[("video", "clip.mp4", &upload)]).await;
    assert_eq!(status, StatusCode::OK, "{video}");
    assert_eq!((video["seconds"].as_str(), video["extended_from_video_id"].as_str()), (Some("10.125"), None), "{video}");
    let stored = s.store.video(video["id"].as_str().unwrap(), &s.key_id).await.unwrap().unwrap();
    assert_eq!(stored.request.frames, 17 + 64);
}

fn base64_decode(text: &str) -> Vec<u8> {
    reel_studio::inputs::decode_data_url(&format!("data:image/png;base64,{text}")).unwrap()
}
