pub mod bench;
pub mod eval;
pub mod generate;
pub mod memory;
pub mod models;
pub mod planned;
pub mod progress;
pub mod train;
