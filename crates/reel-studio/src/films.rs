//! Films: a storyboard queued as one job (a reel extension of the Videos API). A film is a video
//! whose job carries the storyboard; `POST /v1/films` queues it, `GET /v1/films/{id}` reports it
//! with each shot's status, and the usual `/v1/videos/{id}/content` serves the MP4 (and its
//! subtitles as the `subtitles` and `subtitles_srt` variants).

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use reel_film::{FilmError, Storyboard};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{authenticate, random_seed, video_json, AppState};
use crate::catalog::{seconds_text, Catalog, DEMO_MODEL};
use crate::error::ApiError;
use crate::ids::video_id;
use crate::store::{JobRequest, Lineage, VideoRecord};

/// One shot's state, stored as JSON with the film and updated by the worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotStatus {
    /// `queued`, `rendering`, `cached` (taken unchanged from an earlier render) or `completed`.
    pub status: String,
    /// Percent of the shot's rendering done.
    pub progress: i64,
    /// Why the shot will not be made quite as written (its prompt is too long for the model's
    /// text encoder, say), known before rendering starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl ShotStatus {
    pub fn queued() -> Self {
        Self { status: "queued".into(), progress: 0, warning: None }
    }
}

/// The longest film the studio accepts, in seconds of shots.
const MAX_FILM_SECONDS: f64 = 600.0;

/// Reads a storyboard sent as JSON, as YAML (`application/yaml`, `text/yaml`, `text/plain`), or
/// as the file field `storyboard` of a multipart form.
async fn read_storyboard(state: &AppState, request: Request) -> Result<Storyboard, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (text, is_json) = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))?;
        let mut found = None;
        while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))? {
            if field.name() == Some("storyboard") {
                let is_json = field.file_name().is_some_and(|n| n.to_ascii_lowercase().ends_with(".json"));
                let text = field.text().await.map_err(|e| ApiError::invalid(Some("storyboard"), format!("the storyboard is not UTF-8 text: {e}")))?;
                found = Some((text, is_json));
            }
        }
        found.ok_or_else(|| ApiError::invalid(Some("storyboard"), "the form has no file field 'storyboard'"))?
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), state.limits.max_body_bytes)
            .await
            .map_err(|_| ApiError::too_large(format!("the request body exceeds {} bytes", state.limits.max_body_bytes)))?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid(None, "the storyboard is not UTF-8 text"))?;
        (text, content_type.is_empty() || content_type.starts_with("application/json"))
    };
    let parsed = if is_json { Storyboard::from_json(&text) } else { Storyboard::from_yaml(&text) };
    parsed.map_err(storyboard_error)
}

/// A storyboard error as a 400 whose `param` is the field (`shots[2].duration`).
fn storyboard_error(error: FilmError) -> ApiError {
    let message = match error {
        FilmError::Storyboard(message) => message,
        other => other.to_string(),
    };
    let param = message.split_once(": ").map(|(field, _)| field).filter(|f| !f.contains(' ') && !f.is_empty());
    ApiError::invalid(param, format!("storyboard: {message}"))
}

/// Checks a storyboard against the served model it names and turns it into a job, with
/// (size, seconds) as the API reports them.
fn film_job(catalog: &Catalog, storyboard: &Storyboard) -> Result<(JobRequest, String, String), ApiError> {
    // Storyboards name the bundled model `demo`; other names are served models, never paths on
    // the server.
    let name = if storyboard.model == reel_film::render::BUNDLED_MODEL { DEMO_MODEL } else { storyboard.model.as_str() };
    let model = catalog.find(Some(name)).map_err(|e| ApiError::invalid(Some("model"), format!("storyboard: model: {}", e.message)))?;
    let (width, height) = (storyboard.width.unwrap_or(model.default_width), storyboard.height.unwrap_or(model.default_height));
    let m = model.size_multiple;
    if width % m != 0 || height % m != 0 || width * height > model.max_pixels {
        return Err(ApiError::invalid(
            Some("width"),
            format!("storyboard: {width}x{height} is not available for model {}: width and height must be multiples of {m} and at most {} pixels in all", model.name, model.max_pixels),
        ));
    }
    for (i, shot) in storyboard.shots.iter().enumerate() {
        if shot.duration > model.max_seconds {
            return Err(ApiError::invalid(
                Some(&format!("shots[{i}].duration")),
                format!("storyboard: shots[{i}].duration: {} s is longer than model {} makes in one shot ({} s): split the shot", shot.duration, model.name, seconds_text(model.max_seconds)),
            ));
        }
    }
    let seconds: f64 = storyboard.shots.iter().map(|s| s.duration).sum();
    if seconds > MAX_FILM_SECONDS {
        return Err(ApiError::invalid(Some("shots"), format!("storyboard: the shots last {seconds} s; a film may last at most {MAX_FILM_SECONDS} s")));
    }
    let fps = storyboard.fps.unwrap_or(model.fps);
    let mut board = storyboard.clone();
    board.model = model.checkpoint.to_string_lossy().into_owned();
    let job = JobRequest {
        prompt: storyboard.title.clone(),
        negative_prompt: storyboard.defaults.negative_prompt.clone().unwrap_or_default(),
        model: model.name.clone(),
        width,
        height,
        frames: (seconds * fps).round() as usize,
        fps,
        steps: storyboard.defaults.steps.unwrap_or(model.steps),
        guidance: storyboard.defaults.guidance.unwrap_or(model.guidance),
        seed: random_seed(),
        storyboard: Some(board),
        input_reference: None,
        extension: None,
    };
    let scale = storyboard.upscale as usize;
    Ok((job, format!("{}x{}", width * scale, height * scale), seconds_text((seconds * 1000.0).round() / 1000.0)))
}

/// A film's shots with their state.
pub fn shots_json(video: &VideoRecord) -> Value {
    let statuses: Vec<ShotStatus> = video.shots.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let shots: Vec<Value> = video
        .request
        .storyboard
        .iter()
        .flat_map(|board| &board.shots)
        .enumerate()
        .map(|(i, shot)| {
            let status = statuses.get(i).cloned().unwrap_or_else(ShotStatus::queued);
            let mut value = json!({"index": i, "prompt": shot.prompt, "duration": shot.duration, "status": status.status, "progress": status.progress});
            if let Some(warning) = status.warning {
                value["warning"] = json!(warning);
            }
            value
        })
        .collect();
    json!(shots)
}

/// A film as the API reports it: the video's fields (its shots included) and its title.
pub fn film_json(video: &VideoRecord) -> Value {
    let mut value = video_json(video);
    value["object"] = json!("film");
    value["title"] = json!(video.prompt);
    value
}

pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, request.headers()).await?;
    let storyboard = read_storyboard(&state, request).await?;
    let (job, size, seconds) = film_job(&state.catalog, &storyboard)?;
    crate::api::check_pending(&state, &key).await?;
    let shots = serde_json::to_string(&vec![ShotStatus::queued(); storyboard.shots.len()]).expect("JSON");
    let video = state.store.insert_video(&video_id(), &key, &size, &seconds, &job, Lineage::default(), Some(&shots)).await?;
    Ok(Json(film_json(&video)))
}

pub async fn retrieve(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let video = state.store.video(&id, &key).await?.ok_or_else(|| ApiError::not_found("film", &id))?;
    if video.request.storyboard.is_none() {
        return Err(ApiError::not_found("film", &id));
    }
    Ok(Json(film_json(&video)))
}
