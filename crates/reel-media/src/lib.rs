//! Media for reel: frames (8-bit RGB, any size the models produce) become files. No model code.

pub mod error;
pub mod frames;
pub mod png;

pub use error::{MediaError, Result};
pub use frames::VideoFrames;
