//! The error type of reel-sampling.

#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    #[error("{0}")]
    Config(String),

    #[error("{0}")]
    InvalidInput(String),

    #[error(transparent)]
    Model(#[from] reel_models::ModelError),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, SamplingError>;
