//! CLIP's vision encoder and its image preprocessing, as Wan2.1 image-to-video conditions on them: the
//! conditioning image goes through the checkpoint's `image_processor/` settings and `image_encoder/`, and
//! the transformer attends to the encoder's penultimate hidden states.

pub mod config;
pub mod preprocess;
pub mod resample;
pub mod vision;

pub use config::ClipVisionConfig;
pub use preprocess::ClipImageProcessor;
pub use vision::ClipVisionEncoder;
