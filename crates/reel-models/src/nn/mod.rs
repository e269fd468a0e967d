//! Layers shared by reel's models. A model file composes these; it never re-implements them.

pub mod fused;
pub mod attention;
pub mod broadcast;
pub mod conv;
pub mod flops;
pub mod linear;
pub mod norm;
pub mod patch;
pub mod rope;
pub mod timestep;
