//! Sampling for reel: the flow-matching schedulers Wan uses, equal to diffusers', and the denoising
//! loop (classifier-free guidance, the two-expert switch of Wan 2.2 A14B) that ties them to the
//! transformer.

pub mod error;
pub mod progress;
pub mod sampler;
pub mod scheduler;

pub use error::{Result, SamplingError};
