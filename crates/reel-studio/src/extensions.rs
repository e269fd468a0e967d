//! Extensions (`POST /v1/videos/extensions`): a finished video continued for a few more seconds
//! from its last frames, with a new prompt. The source is a completed video of this studio
//! (`video[id]`, as the SDK's `videos.extend(video={"id": ...})` sends it) or an uploaded H.264 MP4
//! (the file `video`). It is copied into the job's input folder, so the job survives restarts and
//! the deletion of its source; the worker copies its frames and generates the new ones
//! window by window (reel_film::continuation).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use reel_film::continuation::DEFAULT_OVERLAP;
use serde_json::Value;

use crate::api::{authenticate, check_pending, check_prompt, insert, video_json, AppState};
use crate::catalog::{seconds_text, CreateRequest, ServedModel};
use crate::error::ApiError;
use crate::ids::{now, video_id};
use crate::inputs::{read_form, Form};
use crate::outputs::Variant;
use crate::store::{Extension, Lineage};

/// Lengths of the new part the SDK allows (`seconds`), in seconds.
pub const EXTENSION_SECONDS: [&str; 5] = ["4", "8", "12", "16", "20"];

/// The longest video an extension may make (source and new part), in seconds.
pub const MAX_EXTENDED_SECONDS: f64 = 300.0;

/// The video an extension continues, as the request names it.
enum Source {
    /// A video of this studio, by id.
    Video(String),
    /// An uploaded MP4.
    Upload(axum::body::Bytes),
}

/// Settings a client may give besides the SDK's fields (reel extensions, as on create).
struct Overrides {
    model: Option<String>,
    negative_prompt: Option<String>,
    seed: Option<u64>,
    steps: Option<usize>,
    guidance: Option<f64>,
}

fn number<T: std::str::FromStr>(form: &mut Form, name: &str) -> Result<Option<T>, ApiError> {
    form.fields
        .remove(name)
        .map(|v| v.trim().parse::<T>().map_err(|_| ApiError::invalid(Some(name), format!("'{name}' must be a number, found '{v}'"))))
        .transpose()
}

/// The new part's length in seconds: one of [`EXTENSION_SECONDS`].
pub fn parse_seconds(given: &str) -> Result<f64, ApiError> {
    let given = given.trim();
    if !EXTENSION_SECONDS.contains(&given) {
        return Err(ApiError::invalid(
            Some("seconds"),
            format!("seconds '{given}' is not a length an extension can add: use one of {}", EXTENSION_SECONDS.join(", ")),
        ));
    }
    Ok(given.parse().expect("listed lengths are numbers"))
}

pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&state, request.headers()).await?;
    let mut form = read_form(&state.limits, request, &["video"]).await?;
    let prompt = form.fields.remove("prompt").ok_or_else(|| ApiError::invalid(Some("prompt"), "'prompt' is required"))?;
    let seconds = form
        .fields
        .remove("seconds")
        .ok_or_else(|| ApiError::invalid(Some("seconds"), format!("'seconds' is required: the length of the new part, one of {}", EXTENSION_SECONDS.join(", "))))?;
    let source = match (form.fields.remove("video[id]").or_else(|| form.fields.remove("video")), form.files.remove("video")) {
        (Some(_), Some(_)) => return Err(ApiError::invalid(Some("video"), "give video[id] or upload a video file, not both")),
        (Some(id), None) => Source::Video(id.trim().to_string()),
        (None, Some(bytes)) => Source::Upload(bytes),
        (None, None) => {
            return Err(ApiError::invalid(
                Some("video"),
                "'video' is required: give video[id] (a completed video of this studio) or upload an H.264 MP4 as the file 'video'",
            ));
        }
    };
    let overrides = Overrides {
        model: form.fields.remove("model"),
        negative_prompt: form.fields.remove("negative_prompt"),
        seed: number(&mut form, "seed")?,
        steps: number(&mut form, "steps")?,
        guidance: number(&mut form, "guidance")?,
    };
    form.refuse_unknown()?;
    check_prompt(&state, &prompt)?;
    let seconds = parse_seconds(&seconds)?;
    let id = video_id();
    let queued = queue(&state, &key, &id, prompt, seconds, source, overrides).await;
    if queued.is_err() {
        let _ = state.outputs.remove(&id);
    }
    Ok(Json(video_json(&queued?)))
}

/// Refuses models that cannot start from given frames.
fn continues(model: &ServedModel) -> Result<(), ApiError> {
    model.check_given_frames("continue a video").map_err(|message| ApiError::invalid(Some("video"), message))
}

/// Puts the source in place as the input of job `id` and queues the job.
async fn queue(
    state: &AppState,
    key: &str,
    id: &str,
    prompt: String,
    seconds: f64,
    source: Source,
    overrides: Overrides,
) -> Result<crate::store::VideoRecord, ApiError> {
    let target = state.outputs.source_file(id);
    let folder = target.parent().expect("a folder").to_path_buf();
    let make_folder = || async { tokio::fs::create_dir_all(&folder).await.map_err(|e| ApiError::internal(format!("cannot store the source video: {e}"))) };
    // The source's model, settings and reported length; its id.
    let (model, mut settings, source_seconds, extended_from): (&ServedModel, CreateRequest, Option<f64>, Option<String>) = match source {
        Source::Video(source_id) => {
            let video = state.store.video(&source_id, key).await?.ok_or_else(|| ApiError::not_found("video", &source_id))?;
            if video.status != "completed" {
                return Err(ApiError::conflict(format!("video {source_id} is {}; only completed videos can be extended", video.status)));
            }
            if video.request.storyboard.is_some() {
                return Err(ApiError::invalid(
                    Some("video"),
                    format!("{source_id} is a film: films are not extended; add a shot to its storyboard and send it to POST /v1/films again"),
                ));
            }
            if video.expires_at.is_some_and(|t| t < now()) {
                return Err(ApiError::gone(format!("the files of video {source_id} have expired; it cannot be extended")));
            }
            let r = &video.request;
            let model = state.catalog.find(Some(&r.model)).map_err(|e| ApiError::invalid(Some("video"), format!("video {source_id}: {}", e.message)))?;
            if let Some(asked) = &overrides.model {
                let asked = state.catalog.find(Some(asked)).map_err(|e| ApiError::invalid(Some(e.param), e.message))?;
                if asked.name != model.name {
                    return Err(ApiError::invalid(
                        Some("model"),
                        format!("video {source_id} was made by model {}; an extension continues it with the same model: leave out 'model'", model.name),
                    ));
                }
            }
            continues(model)?;
            check_pending(state, key).await?;
            make_folder().await?;
            tokio::fs::copy(state.outputs.file(&source_id, Variant::Video), &target)
                .await
                .map_err(|e| ApiError::internal(format!("cannot copy the files of video {source_id}: {e}")))?;
            let settings = CreateRequest {
                negative_prompt: Some(r.negative_prompt.clone()),
                steps: Some(r.steps),
                guidance: Some(r.guidance),
                fps: Some(r.fps),
                ..CreateRequest::default()
            };
            (model, settings, video.seconds.parse().ok(), Some(source_id))
        }
        Source::Upload(bytes) => {
            let model = state.catalog.find(overrides.model.as_deref()).map_err(|e| ApiError::invalid(Some(e.param), e.message))?;
            continues(model)?;
            check_pending(state, key).await?;
            make_folder().await?;
            tokio::fs::write(&target, bytes).await.map_err(|e| ApiError::internal(format!("cannot store the uploaded video: {e}")))?;
            (model, CreateRequest::default(), None, None)
        }
    };
    let path = target.clone();
    let info = tokio::task::spawn_blocking(move || reel_media::read_mp4_info(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::invalid(Some("video"), format!("the video to extend cannot be read: {e}")))?;
    if info.frames < DEFAULT_OVERLAP {
        return Err(ApiError::invalid(
            Some("video"),
            format!("the video to extend has {} frames; an extension starts from its last {DEFAULT_OVERLAP}", info.frames),
        ));
    }
    // The settings of the source (or the model's, for an upload), checked as a create request is,
    // at the source's size and frame rate.
    settings.prompt = prompt;
    settings.model = Some(model.name.clone());
    settings.size = Some(format!("{}x{}", info.width, info.height));
    settings.fps = settings.fps.or(Some(info.fps));
    settings.negative_prompt = overrides.negative_prompt.or(settings.negative_prompt);
    settings.steps = overrides.steps.or(settings.steps);
    settings.guidance = overrides.guidance.or(settings.guidance);
    settings.seed = overrides.seed;
    let (mut job, size, _) =
        state.catalog.job(&settings, crate::api::random_seed()).map_err(|e| ApiError::invalid(Some(if e.param == "size" { "video" } else { e.param }), e.message))?;
    let new_frames = ((seconds * job.fps).round() as usize).max(1);
    job.frames = info.frames + new_frames;
    job.extension = Some(Extension { source_frames: info.frames, new_frames });
    // The stitched total, as the API reports it: the source's reported length and the new part.
    let total = source_seconds.unwrap_or(info.frames as f64 / info.fps) + seconds;
    if total > MAX_EXTENDED_SECONDS {
        return Err(ApiError::invalid(Some("seconds"), format!("the extended video would last {total:.1} s; the limit is {MAX_EXTENDED_SECONDS} s")));
    }
    let seconds = seconds_text((total * 1000.0).round() / 1000.0);
    let lineage = Lineage { remixed_from: None, extended_from: extended_from.as_deref() };
    insert(state, key, id, &size, &seconds, &job, lineage).await
}
