//! Model definitions for reel: the Wan diffusion transformer (and, as they land, its VAE and text
//! encoder) on candle, with the shared layers they are built from and the checkpoint loader.
//!
//! Every model mirrors a reference class of diffusers or transformers at a pinned version and is
//! tested against fixtures that reference wrote (see `scripts/fixtures/`).

pub mod clip;
pub mod device;
pub mod error;
pub mod hub;
pub mod kernels;
pub mod nn;
#[doc(hidden)]
pub mod testing;
pub mod umt5;
pub mod wan;
pub mod weights;

pub use error::{ModelError, Result};
