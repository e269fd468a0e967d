//! Errors as the OpenAI API shapes them: `{"error": {"message", "type", "param", "code"}}` with the
//! matching HTTP status, so SDKs raise their usual exception classes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "invalid_request_error", code: None, param: param.map(str::to_string), message: message.into() }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: "Incorrect or missing API key: send `Authorization: Bearer <key>` with a key made by \
                      `reel keys create`"
                .into(),
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self { status: StatusCode::NOT_FOUND, kind: "invalid_request_error", code: Some("not_found"), param: None, message: format!("No {what} with id '{id}' found") }
    }

    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, kind: "invalid_request_error", code: Some("not_found"), param: None, message: message.into() }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, kind: "invalid_request_error", code: Some("request_too_large"), param: None, message: message.into() }
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self { status: StatusCode::TOO_MANY_REQUESTS, kind: "rate_limit_error", code: Some("too_many_pending_jobs"), param: None, message: message.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, kind: "invalid_request_error", code: Some("video_not_ready"), param: None, message: message.into() }
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self { status: StatusCode::GONE, kind: "invalid_request_error", code: Some("video_expired"), param: None, message: message.into() }
    }

    /// An endpoint of the Videos API that reel does not implement yet.
    pub fn unsupported(call: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: Some("unsupported"),
            param: None,
            message: format!("{call} is not supported by reel yet"),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, kind: "server_error", code: None, param: None, message: message.to_string() }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}
