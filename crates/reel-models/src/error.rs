//! The error type of reel-models.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, ModelError>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path} is not a valid {what}: {source}")]
    Json {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },

    #[error("{0}")]
    Checkpoint(String),

    #[error("{0}")]
    Unsupported(String),

    #[error("{0}")]
    InvalidInput(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
