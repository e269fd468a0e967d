//! Media for reel: frames (8-bit RGB, any size the models produce) and audio become files that
//! players, editors and browsers open: MP4 (H.264 + AAC), animated GIF and WebP, PNG frames, WAV,
//! thumbnails and spritesheets, subtitles (SRT, WebVTT, burned in); H.264 MP4 and still images read, to
//! start or continue a video. Everything is encoded and decoded in-process; speech comes from the espeak-ng
//! command. No model code.

pub mod audio;
pub mod error;
pub mod frames;
pub mod gif;
pub mod image_input;
pub mod mp4;
pub mod output;
pub mod png;
pub mod sink;
pub mod subtitles;
#[doc(hidden)]
pub mod test_clip;
pub mod thumbnail;
pub mod tts;
pub mod wav;
pub mod webp;
pub mod yuv;

pub use audio::Audio;
pub use error::{MediaError, Result};
pub use frames::VideoFrames;
pub use image_input::{decode_image, read_image, ImageFit};
pub use mp4::{read_mp4_frames, read_mp4_info, VideoInfo};
pub use output::{check_video_output, check_writable, write_video, VideoFormat, VideoOptions};
pub use sink::VideoSink;
