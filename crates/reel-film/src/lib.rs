//! From storyboard to film: a storyboard's shots rendered (and cached), joined with cuts and
//! crossfades, narrated with offline speech, subtitled, and written as one MP4 with SRT and WebVTT
//! files beside it; and videos made window after window (long shots, long videos, continuations).

pub mod assemble;
pub mod cache;
pub mod continuation;
mod film;
pub mod render;
pub mod storyboard;
pub mod timeline;

pub use film::{make_film, FilmEvent, FilmOptions, FilmReport};
pub use storyboard::Storyboard;

#[derive(Debug, thiserror::Error)]
pub enum FilmError {
    /// The storyboard is malformed; the message names the field (`shots[2].duration`).
    #[error("storyboard: {0}")]
    Storyboard(String),

    #[error("{0}")]
    Model(String),

    #[error("{0}")]
    Io(String),

    #[error(transparent)]
    Sampling(#[from] reel_sampling::SamplingError),

    #[error(transparent)]
    Media(#[from] reel_media::MediaError),
}

pub type Result<T> = std::result::Result<T, FilmError>;
