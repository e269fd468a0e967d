//! The error type of reel-media.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, MediaError>;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    InvalidInput(String),

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot encode {path}: {message}")]
    Encode { path: PathBuf, message: String },

    /// A video file that cannot be read back: missing, not an MP4, not H.264, damaged.
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
}
