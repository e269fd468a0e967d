pub mod bench;
pub mod models;
pub mod planned;
