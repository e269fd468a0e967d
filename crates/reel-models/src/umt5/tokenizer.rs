//! Prompt tokenization from a checkpoint's `tokenizer/` folder: `tokenizer.json` read with the
//! `tokenizers` crate, truncated and padded to a fixed length as transformers' tokenizers do with
//! `padding="max_length", truncation=True`.

use std::path::Path;

use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::weights::read_json;
use crate::{ModelError, Result};

const DEFAULT_PAD_TOKEN: &str = "<pad>";

/// Token ids and their attention mask (1 for tokens, 0 for padding), both `max_length` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    /// Tokens of the text cut off at its end to fit `max_length` (0 when it fits).
    pub dropped: usize,
}

impl Tokens {
    /// Tokens before the padding (the prompt's length, special tokens included).
    pub fn len(&self) -> usize {
        self.mask.iter().filter(|m| **m != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    pad_token: String,
}

impl PromptTokenizer {
    /// Reads `tokenizer.json` (and the pad token from `tokenizer_config.json` when present) in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            return Err(ModelError::Checkpoint(format!(
                "{} is missing: the tokenizer folder needs the tokenizer.json of the text encoder \
                 (the slow sentencepiece files alone are not enough)",
                file.display()
            )));
        }
        let tokenizer = Tokenizer::from_file(&file).map_err(|e| {
            ModelError::Checkpoint(format!("{} is not a valid tokenizer.json: {e}", file.display()))
        })?;
        let pad_token = pad_token(dir)?;
        let pad_id = tokenizer.token_to_id(&pad_token).ok_or_else(|| {
            ModelError::Checkpoint(format!(
                "the pad token {pad_token:?} is not in the vocabulary of {}",
                file.display()
            ))
        })?;
        Ok(Self { tokenizer, pad_id, pad_token })
    }

    /// Tokenizes `text` with the tokenizer's special tokens, truncated and padded to `max_length`.
    pub fn encode(&mut self, text: &str, max_length: usize) -> Result<Tokens> {
        let failed = |e: tokenizers::Error| ModelError::InvalidInput(format!("cannot tokenize the prompt: {e}"));
        // The whole text first, to tell how much truncation drops.
        let whole = self.tokenizer.with_truncation(None).map_err(failed)?.with_padding(None).encode(text, true).map_err(failed)?;
        self.tokenizer
            .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
            .map_err(failed)?
            .with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::Fixed(max_length),
                direction: PaddingDirection::Right,
                pad_id: self.pad_id,
                pad_token: self.pad_token.clone(),
                ..Default::default()
            }));
        let encoding = self.tokenizer.encode(text, true).map_err(failed)?;
        let kept = encoding.get_attention_mask().iter().filter(|m| **m != 0).count();
        Ok(Tokens { ids: encoding.get_ids().to_vec(), mask: encoding.get_attention_mask().to_vec(), dropped: whole.len().saturating_sub(kept) })
    }
}

/// The pad token named by `tokenizer_config.json` (a string or an added-token object).
fn pad_token(dir: &Path) -> Result<String> {
    let config = dir.join("tokenizer_config.json");
    if !config.is_file() {
        return Ok(DEFAULT_PAD_TOKEN.into());
    }
    let value: serde_json::Value = read_json(&config, "tokenizer config")?;
    Ok(match &value["pad_token"] {
        serde_json::Value::String(token) => token.clone(),
        serde_json::Value::Object(token) => {
            token.get("content").and_then(|c| c.as_str()).unwrap_or(DEFAULT_PAD_TOKEN).to_string()
        }
        _ => DEFAULT_PAD_TOKEN.into(),
    })
}
