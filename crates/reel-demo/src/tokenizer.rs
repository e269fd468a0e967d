//! The demo model's tokenizer: one token per word of the caption grammar (plus `<pad>`, `</s>`,
//! `<unk>`), lower-cased, split on whitespace and punctuation, `</s>` appended; written as a
//! standard `tokenizer.json` that the `tokenizers` library (Rust or Python) reads.

use std::path::Path;

use serde_json::json;

pub const PAD: &str = "<pad>";
pub const EOS: &str = "</s>";
pub const UNK: &str = "<unk>";

/// Words as the `Whitespace` pre-tokenizer cuts them (`\w+|[^\w\s]+`), lower-cased.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut current_is_word = false;
    for c in text.to_lowercase().chars() {
        if c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let is_word = c.is_alphanumeric() || c == '_';
        if !current.is_empty() && is_word != current_is_word {
            words.push(std::mem::take(&mut current));
        }
        current_is_word = is_word;
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`; returns the vocabulary size.
pub fn write_tokenizer(dir: &Path, words: &[String]) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut vocab = serde_json::Map::new();
    for (id, token) in [PAD, EOS, UNK].iter().map(|s| s.to_string()).chain(words.iter().cloned()).enumerate() {
        vocab.insert(token, json!(id));
    }
    let special = |id: usize, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
               "normalized": false, "special": true})
    };
    let size = vocab.len();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, PAD), special(1, EOS), special(2, UNK)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}],
            "special_tokens": {EOS: {"id": EOS, "ids": [1], "tokens": [EOS]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string_pretty(&tokenizer)?)?;
    let config = json!({"pad_token": PAD, "eos_token": EOS, "unk_token": UNK, "model_max_length": 512,
                        "tokenizer_class": "PreTrainedTokenizerFast"});
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&config)?)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_models::umt5::PromptTokenizer;

    #[test]
    fn words_split_as_the_whitespace_pre_tokenizer_does() {
        assert_eq!(split_words("A Red circle, the camera: zooms;"), vec!["a", "red", "circle", ",", "the", "camera", ":", "zooms", ";"]);
    }

    #[test]
    fn the_written_tokenizer_loads_and_maps_words_to_ids() {
        let dir = tempfile::tempdir().unwrap();
        let words: Vec<String> = ["a", "red", "circle", ","].iter().map(|s| s.to_string()).collect();
        assert_eq!(write_tokenizer(dir.path(), &words).unwrap(), 7);
        let mut tokenizer = PromptTokenizer::load(dir.path()).unwrap();
        let tokens = tokenizer.encode("A red CIRCLE, purple", 8).unwrap();
        // a=3 red=4 circle=5 ,=6, purple is unknown (2), then </s> (1) and padding (0).
        assert_eq!(tokens.ids, vec![3, 4, 5, 6, 2, 1, 0, 0]);
        assert_eq!(tokens.mask, vec![1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(tokens.dropped, 0);
        // Eight words and </s> in six places: five words kept, then </s>; three words dropped.
        let tokens = tokenizer.encode("a red circle , a red circle ,", 6).unwrap();
        assert_eq!(tokens.ids, vec![3, 4, 5, 6, 3, 1]);
        assert_eq!(tokens.dropped, 3);
    }
}
