//! reel's bundled demo model: a small Wan transformer, Wan VAE and UMT5 text encoder trained by
//! reel on a procedural world of coloured shapes, so that `reel generate` works offline in seconds
//! and tests can check that a video follows its prompt.

pub mod analysis;
pub mod bundled;
pub mod caption;
pub mod card;
pub mod continuity;
pub mod eval;
pub mod grow;
pub mod model;
pub mod params;
pub mod rng;
pub mod shards;
pub mod tokenizer;
pub mod train;
pub mod world;

/// The errors of training, evaluation and the bundled model: anything that can cross threads.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
