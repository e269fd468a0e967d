//! Sampling for reel: the flow-matching schedulers Wan uses, equal to diffusers', the denoising
//! loop (classifier-free guidance, the two-expert switch of Wan 2.2 A14B), prompt encoding, seeded
//! noise, the text-to-video pipeline that ties text encoder, transformer and VAE together, and
//! window-by-window generation of long videos and continuations.

pub mod checkpoint;
pub mod error;
pub mod noise;
pub mod pipeline;
pub mod progress;
pub mod prompt;
pub mod sampler;
pub mod scheduler;
pub mod step_cache;
pub mod windows;

pub use error::{Result, SamplingError};
