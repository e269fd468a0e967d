//! Media for reel: frames (8-bit RGB, any size the models produce) and audio become files that
//! players, editors and browsers open. Everything is encoded in-process; no model code.

pub mod audio;
pub mod error;
pub mod frames;
pub mod mp4;
pub mod png;
#[doc(hidden)]
pub mod test_clip;
pub mod yuv;

pub use audio::Audio;
pub use error::{MediaError, Result};
pub use frames::VideoFrames;
