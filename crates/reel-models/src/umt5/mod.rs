//! UMT5, the multilingual T5 encoder Wan uses for prompts, and its sentencepiece tokenizer.

pub mod config;
pub mod encoder;
pub mod tokenizer;

pub use config::Umt5Config;
pub use encoder::Umt5Encoder;
pub use tokenizer::{PromptTokenizer, Tokens};
