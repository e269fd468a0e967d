//! `POST /v1/estimates` (a reel extension): what a video request would cost, before it is queued.
//! The body takes the fields of `POST /v1/videos` (model, size, seconds, fps, steps, guidance; a
//! prompt is optional) and the hardware: `gpu` (`cpu`, this server, by default), `count`,
//! `utilisation`, `price_per_hour`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use candle_core::{DType, Device};
use reel_models::device::DtypeChoice;
use reel_estimate::{estimate, Hardware, ModelSpec, VideoSpec};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{authenticate, AppState};
use crate::catalog::CreateRequest;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EstimateRequest {
    #[serde(default)]
    prompt: Option<String>,
    model: Option<String>,
    size: Option<String>,
    seconds: Option<String>,
    fps: Option<f64>,
    steps: Option<usize>,
    guidance: Option<f64>,
    #[serde(default = "this_server")]
    gpu: String,
    #[serde(default = "one")]
    count: usize,
    utilisation: Option<f64>,
    price_per_hour: Option<f64>,
}

fn this_server() -> String {
    "cpu".into()
}

fn one() -> usize {
    1
}

/// Multi-device speed-up efficiency the studio assumes (the CLI's default).
const PARALLEL_EFFICIENCY: f64 = 0.9;

pub async fn create(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers).await?;
    let request: EstimateRequest = serde_json::from_slice(&body).map_err(|e| {
        let message = e.to_string();
        let param = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()).map(str::to_string);
        ApiError::invalid(param.as_deref(), format!("the body is not a valid estimate request: {message}"))
    })?;
    let create = CreateRequest {
        prompt: request.prompt.unwrap_or_default(),
        model: request.model,
        size: request.size,
        seconds: request.seconds,
        fps: request.fps,
        steps: request.steps,
        guidance: request.guidance,
        ..CreateRequest::default()
    };
    // The same checks and rounding as a real request: the estimate is of the video it would make.
    let (job, _, _) = state.catalog.job(&create, 0).map_err(|e| ApiError::invalid(Some(e.param), e.message))?;
    let model = state.catalog.find(Some(&job.model)).map_err(|e| ApiError::invalid(Some(e.param), e.message))?.clone();
    let (gpu, count, utilisation, price) = (request.gpu, request.count, request.utilisation, request.price_per_hour);
    // Measuring this server's CPU takes about a second the first time: off the async threads.
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let spec = ModelSpec::checkpoint(&model.name, &model.checkpoint).map_err(ApiError::internal)?;
        // In the dtype the workers' default, auto, picks: bf16 on accelerators.
        let dtype = if gpu.eq_ignore_ascii_case("cpu") { DtypeChoice::Auto.resolve(&Device::Cpu, spec.largest_component_parameters()) } else { DType::BF16 };
        let hardware = Hardware::named(&gpu, dtype, count, utilisation, PARALLEL_EFFICIENCY).map_err(|e| ApiError::invalid(Some("gpu"), e.to_string()))?;
        let video = VideoSpec {
            width: job.width,
            height: job.height,
            frames: job.frames,
            fps: job.fps,
            steps: job.steps,
            guidance: job.guidance,
            step_cache: 0.0,
            dtype_bytes: dtype.size_in_bytes(),
        };
        let estimate = estimate(&spec, &video, &hardware, price).map_err(|e| ApiError::invalid(None, e.to_string()))?;
        let mut value = serde_json::to_value(estimate).map_err(ApiError::internal)?;
        value["object"] = json!("estimate");
        Ok(value)
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(result?))
}
