//! The Wan family (Wan 2.1 and 2.2): transformer, VAE, their configurations, and the published
//! checkpoints.

pub mod config;
pub mod geometry;
mod gguf;
pub mod published;
pub mod transformer;
pub mod vae;

pub use config::{ForwardFlops, WanTransformerConfig, WanVaeConfig};
pub use geometry::LatentGeometry;
pub use published::{published_model, published_models, PublishedModel};
pub use transformer::{PreparedPrompt, WanTransformer};
pub use vae::{LatentDistribution, Tiling, WanVae};
