//! The Wan family (Wan 2.1 and 2.2): transformer, and its configuration.

pub mod config;
pub mod transformer;

pub use config::{published_transformer, WanTransformerConfig, PUBLISHED_NAMES};
pub use transformer::WanTransformer;
