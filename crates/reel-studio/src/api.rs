//! The HTTP API: OpenAI's Videos API under `/v1` (what the official SDKs send and expect), the
//! web page at `/` and the API description at `/openapi.json`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::RwLock;

use crate::catalog::{Catalog, CreateRequest};
use crate::error::ApiError;
use crate::ids::{now, video_id};
use crate::inputs::{fit_name, read_form, take_reference, Reference, REFERENCE};
use crate::outputs::{Outputs, Variant};
use crate::store::{ImageReference, JobRequest, Lineage, Store, VideoRecord};


/// Request limits, each answered with a clear 4xx.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_prompt_chars: usize,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub max_pending_per_key: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_prompt_chars: 4000, max_body_bytes: 32 << 20, max_upload_bytes: 20 << 20, max_pending_per_key: 32 }
    }
}

pub struct AppState {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub outputs: Outputs,
    pub limits: Limits,
    /// Key hash -> key id, so that most requests do not ask the database.
    keys: RwLock<HashMap<String, String>>,
}

impl AppState {
    pub fn new(store: Store, catalog: Arc<Catalog>, outputs: Outputs, limits: Limits) -> Self {
        Self { store, catalog, outputs, limits, keys: RwLock::new(HashMap::new()) }
    }
}

type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/v1/models", get(models))
        .route("/v1/videos", post(create).get(list))
        .route("/v1/videos/{id}", get(retrieve).delete(delete))
        .route("/v1/videos/{id}/content", get(content))
        .route("/v1/videos/{id}/remix", post(remix))
        .route("/v1/films", post(crate::films::create))
        .route("/v1/films/{id}", get(crate::films::retrieve))
        .route("/v1/estimates", post(crate::estimates::create))
        .route("/v1/videos/edits", post(|| async { ApiError::unsupported("videos.edit") }))
        .route("/v1/videos/extensions", post(crate::extensions::create))
        .route("/v1/videos/characters", post(|| async { ApiError::unsupported("videos.create_character") }))
        .route("/v1/videos/characters/{id}", get(|| async { ApiError::unsupported("videos.get_character") }))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .fallback(|| async { ApiError { status: StatusCode::NOT_FOUND, kind: "invalid_request_error", code: Some("unknown_url"), param: None, message: "Unknown request URL".into() } })
        .with_state(state)
}

/// The key id of a request's bearer key.
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let hash = crate::ids::key_hash(key);
    if let Some(id) = state.keys.read().await.get(&hash) {
        return Ok(id.clone());
    }
    let id = state.store.authenticate(key).await?.ok_or_else(ApiError::unauthorized)?;
    state.keys.write().await.insert(hash, id.clone());
    Ok(id)
}

pub fn video_json(v: &VideoRecord) -> Value {
    let error = match (&v.error_code, &v.error_message) {
        (Some(code), Some(message)) => json!({"code": code, "message": message}),
        _ => Value::Null,
    };
    let mut value = json!({
        "id": v.id,
        "object": "video",
        "created_at": v.created_at,
        "completed_at": v.completed_at,
        "expires_at": v.expires_at,
        "error": error,
        "model": v.model,
        "progress": v.progress,
        "prompt": v.prompt,
        "remixed_from_video_id": v.remixed_from,
        // A reel extension: the video an extension continues (OpenAI's Video has no such field).
        "extended_from_video_id": v.extended_from,
        "seconds": v.seconds,
        "size": v.size,
        "status": v.status,
        "seed": v.request.seed,
    });
    if v.request.storyboard.is_some() {
        // A reel extension: films report their shots (SDKs keep unknown fields).
        value["shots"] = crate::films::shots_json(v);
    }
    if let Some(warning) = &v.warning {
        // A reel extension: how the video differs from its request.
        value["warning"] = json!(warning);
    }
    value
}

fn parse_create(mut fields: HashMap<String, String>) -> Result<CreateRequest, ApiError> {
    fn number<T: std::str::FromStr>(fields: &mut HashMap<String, String>, name: &str) -> Result<Option<T>, ApiError> {
        fields
            .remove(name)
            .map(|v| v.trim().parse::<T>().map_err(|_| ApiError::invalid(Some(name), format!("'{name}' must be a number, found '{v}'"))))
            .transpose()
    }
    let prompt = fields.remove("prompt").ok_or_else(|| ApiError::invalid(Some("prompt"), "'prompt' is required"))?;
    let request = CreateRequest {
        prompt,
        model: fields.remove("model"),
        size: fields.remove("size"),
        seconds: fields.remove("seconds"),
        negative_prompt: fields.remove("negative_prompt"),
        seed: number(&mut fields, "seed")?,
        steps: number(&mut fields, "steps")?,
        guidance: number(&mut fields, "guidance")?,
        fps: number(&mut fields, "fps")?,
    };
    if let Some(unknown) = fields.keys().min() {
        return Err(ApiError::invalid(Some(unknown), format!("unrecognized request argument supplied: {unknown}")));
    }
    Ok(request)
}

pub(crate) fn random_seed() -> u64 {
    let mut buf = [0u8; 4];
    getrandom::fill(&mut buf).expect("the operating system's random generator is available");
    u32::from_le_bytes(buf) as u64
}

/// Checks a prompt against the limits.
pub(crate) fn check_prompt(state: &AppState, prompt: &str) -> Result<(), ApiError> {
    let prompt_chars = prompt.chars().count();
    if prompt.trim().is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "'prompt' must not be empty"));
    }
    if prompt_chars > state.limits.max_prompt_chars {
        return Err(ApiError::invalid(Some("prompt"), format!("the prompt has {prompt_chars} characters; the limit is {}", state.limits.max_prompt_chars)));
    }
    Ok(())
}

/// Checks a request against its model: the job, with (size, seconds) as the API reports them.
fn plan(state: &AppState, request: &CreateRequest) -> Result<(JobRequest, String, String), ApiError> {
    check_prompt(state, &request.prompt)?;
    state.catalog.job(request, random_seed()).map_err(|e| ApiError::invalid(Some(e.param), e.message))
}

/// Queues video `id` of `key`, whose inputs (if any) are in place; they are removed if it cannot be queued.
pub(crate) async fn insert(state: &AppState, key: &str, id: &str, size: &str, seconds: &str, job: &JobRequest, lineage: Lineage<'_>) -> Result<VideoRecord, ApiError> {
    let inserted = state.store.insert_video(id, key, size, seconds, job, lineage, None).await;
    if inserted.is_err() {
        let _ = state.outputs.remove(id);
    }
    Ok(inserted?)
}

/// Checks a reference image (it must decode as an image) and keeps it as the input of job `id`.
async fn keep_reference(state: &AppState, id: &str, job: &mut JobRequest, reference: Reference) -> Result<(), ApiError> {
    let model = state.catalog.find(Some(&job.model)).map_err(|e| ApiError::invalid(Some(e.param), e.message))?;
    model.check_given_frames("start from an image").map_err(|message| ApiError::invalid(Some(REFERENCE), message))?;
    let (width, height, fit) = (job.width, job.height, reference.fit);
    let bytes = tokio::task::spawn_blocking(move || reel_media::decode_image(&reference.bytes, width, height, fit).map(|_| reference.bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|message| ApiError::invalid(Some(REFERENCE), format!("input_reference: {message}")))?;
    let path = state.outputs.reference_file(id);
    let written = async {
        tokio::fs::create_dir_all(path.parent().expect("a folder")).await?;
        tokio::fs::write(&path, bytes).await
    };
    written.await.map_err(|e| ApiError::internal(format!("cannot store the input_reference image: {e}")))?;
    job.input_reference = Some(ImageReference { fit: fit_name(fit).into() });
    Ok(())
}

/// Refuses new work from a key with too many unfinished jobs.
pub(crate) async fn check_pending(state: &AppState, key: &str) -> Result<(), ApiError> {
    let pending = state.store.pending_count(key).await?;
    if pending >= state.limits.max_pending_per_key {
        return Err(ApiError::rate_limited(format!(
            "this key already has {pending} videos queued or in progress (the limit is {}); wait for some to finish",
            state.limits.max_pending_per_key
        )));
    }
    Ok(())
}

async fn create(State(state): State<Shared>, request: Request) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, request.headers()).await?;
    let mut form = read_form(&state.limits, request, &[REFERENCE]).await?;
    let reference = take_reference(&mut form, &state.limits)?;
    let (mut job, size, seconds) = plan(&state, &parse_create(form.fields)?)?;
    check_pending(&state, &key).await?;
    let id = video_id();
    match reference {
        Some(reference) => keep_reference(&state, &id, &mut job, reference).await?,
        None => {
            let model = state.catalog.find(Some(&job.model)).map_err(|e| ApiError::invalid(Some(e.param), e.message))?;
            if model.needs_image {
                return Err(ApiError::invalid(Some(REFERENCE), format!("model {} is an image-to-video model: give the image the video starts from as input_reference", model.name)));
            }
        }
    }
    Ok(Json(video_json(&insert(&state, &key, &id, &size, &seconds, &job, Lineage::default()).await?)))
}

async fn retrieve(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let video = state.store.video(&id, &key).await?.ok_or_else(|| ApiError::not_found("video", &id))?;
    let mut response = Json(video_json(&video)).into_response();
    if matches!(video.status.as_str(), "queued" | "in_progress") {
        // The SDK's poll helper waits this long between looks.
        response.headers_mut().insert("openai-poll-after-ms", HeaderValue::from_static("500"));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
}

async fn list(State(state): State<Shared>, headers: HeaderMap, Query(query): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let limit: i64 = match &query.limit {
        None => 20,
        Some(l) => l.parse().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| ApiError::invalid(Some("limit"), "limit must be between 1 and 100"))?,
    };
    let ascending = match query.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => return Err(ApiError::invalid(Some("order"), format!("order must be asc or desc, found '{other}'"))),
    };
    let mut videos = state.store.list_videos(&key, query.after.as_deref(), limit + 1, ascending).await?;
    let has_more = videos.len() as i64 > limit;
    videos.truncate(limit as usize);
    Ok(Json(json!({
        "object": "list",
        "data": videos.iter().map(video_json).collect::<Vec<_>>(),
        "first_id": videos.first().map(|v| v.id.clone()),
        "last_id": videos.last().map(|v| v.id.clone()),
        "has_more": has_more,
    })))
}

async fn delete(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, &headers).await?;
    if !state.store.delete_video(&id, &key).await? {
        return Err(ApiError::not_found("video", &id));
    }
    state.outputs.remove(&id).map_err(ApiError::internal)?;
    Ok(Json(json!({"id": id, "object": "video.deleted", "deleted": true})))
}

#[derive(Deserialize)]
struct ContentQuery {
    variant: Option<String>,
}

async fn content(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(query): Query<ContentQuery>) -> Result<Response, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let name = query.variant.as_deref().unwrap_or("video");
    let variant = Variant::parse(name)
        .ok_or_else(|| ApiError::invalid(Some("variant"), format!("variant must be video, thumbnail, spritesheet, subtitles or subtitles_srt, found '{name}'")))?;
    let video = state.store.video(&id, &key).await?.ok_or_else(|| ApiError::not_found("video", &id))?;
    if video.status != "completed" {
        return Err(ApiError::conflict(format!("video {id} is {}; its content is available once it is completed", video.status)));
    }
    if video.expires_at.is_some_and(|t| t < now()) {
        return Err(ApiError::gone(format!("the files of video {id} have expired")));
    }
    if variant.is_subtitles() && video.request.storyboard.is_none() {
        return Err(ApiError::invalid(Some("variant"), format!("video {id} has no subtitles: only films (POST /v1/films) have them")));
    }
    let path = state.outputs.file(&id, variant);
    let bytes = match tokio::fs::read(&path).await {
        // A film whose shots carry no narration or subtitle text has no subtitle files.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && variant.is_subtitles() => {
            return Err(ApiError::not_found_message(format!("film {id} has no subtitles: none of its shots has narration or subtitle text")));
        }
        result => result.map_err(|e| ApiError::internal(format!("the files of video {id} cannot be read: {e}")))?,
    };
    Ok(([(header::CONTENT_TYPE, variant.content_type())], Body::from(bytes)).into_response())
}

async fn remix(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    let prompt = value["prompt"].as_str().ok_or_else(|| ApiError::invalid(Some("prompt"), "'prompt' is required"))?;
    let source = state.store.video(&id, &key).await?.ok_or_else(|| ApiError::not_found("video", &id))?;
    if source.status != "completed" {
        return Err(ApiError::conflict(format!("video {id} is {}; only completed videos can be remixed", source.status)));
    }
    if source.request.storyboard.is_some() {
        return Err(ApiError::invalid(
            None,
            format!("{id} is a film: edit its storyboard and send it to POST /v1/films again (unchanged shots are reused)"),
        ));
    }
    let r = &source.request;
    let (job, size, seconds) = if r.extension.is_some() {
        // An extension is made again from the same source video with the new prompt: same
        // length, settings and seed.
        check_prompt(&state, prompt)?;
        state.catalog.find(Some(&r.model)).map_err(|e| ApiError::invalid(Some("model"), e.message))?;
        (JobRequest { prompt: prompt.to_string(), ..r.clone() }, source.size.clone(), source.seconds.clone())
    } else {
        // The same settings, seed and reference image as the source, with the new prompt.
        let request = CreateRequest {
            prompt: prompt.to_string(),
            model: Some(r.model.clone()),
            size: Some(source.size.clone()),
            seconds: Some(source.seconds.clone()),
            negative_prompt: Some(r.negative_prompt.clone()),
            seed: Some(r.seed),
            steps: Some(r.steps),
            guidance: Some(r.guidance),
            fps: Some(r.fps),
        };
        let (mut job, size, seconds) = plan(&state, &request)?;
        job.input_reference = r.input_reference.clone();
        (job, size, seconds)
    };
    check_pending(&state, &key).await?;
    let new_id = video_id();
    if job.extension.is_some() || job.input_reference.is_some() {
        match state.outputs.copy_inputs(&id, &new_id) {
            Ok(true) => {}
            Ok(false) => {
                return Err(ApiError::gone(format!("the inputs of video {id} (its reference image or source video) have expired; it cannot be remixed")));
            }
            Err(e) => {
                let _ = state.outputs.remove(&new_id);
                return Err(ApiError::internal(format!("cannot copy the inputs of video {id}: {e}")));
            }
        }
    }
    let lineage = Lineage { remixed_from: Some(id.as_str()), extended_from: source.extended_from.as_deref() };
    Ok(Json(video_json(&insert(&state, &key, &new_id, &size, &seconds, &job, lineage).await?)))
}

async fn models(State(state): State<Shared>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers).await?;
    let data: Vec<Value> = state
        .catalog
        .models
        .iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": "reel",
                        "default_size": m.default_size(), "default_seconds": m.default_seconds()}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
