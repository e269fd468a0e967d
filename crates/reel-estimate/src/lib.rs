//! Estimates of what a video costs before it is made: floating-point operations of each stage from
//! the model's configuration, memory, and from an accelerator's peak rate and utilisation the time,
//! money and energy.

pub mod accelerators;
pub mod cost;
pub mod estimate;
pub mod spec;

pub use accelerators::{accelerator, Accelerator, ACCELERATORS, GPU_UTILISATION};
pub use estimate::{estimate, CallOverhead, Estimate, Hardware, MeasuredRates, StageEstimate, VideoSpec};
pub use spec::ModelSpec;

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("{0}")]
    Input(String),

    #[error(transparent)]
    Sampling(#[from] reel_sampling::SamplingError),
}

pub type Result<T> = std::result::Result<T, EstimateError>;
