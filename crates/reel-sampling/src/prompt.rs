//! Prompt handling as diffusers' `WanPipeline` does it: clean the text, tokenize to a fixed length,
//! encode with UMT5, keep the prompt's own tokens and zero the padding beyond them.

use candle_core::{Device, Tensor};
use reel_models::umt5::{PromptTokenizer, Umt5Encoder};

use crate::Result;

/// Wan's own default negative prompt (Wan2.1's `shared_config.sample_neg_prompt`), in the Chinese
/// the models were trained with. In English: garish colours, overexposed, static, blurred details,
/// subtitles, style, artwork, painting, still frame, greyish overall, worst quality, low quality,
/// JPEG artefacts, ugly, mutilated, extra fingers, badly drawn hands, badly drawn faces, deformed,
/// disfigured, malformed limbs, fused fingers, motionless picture, cluttered background, three
/// legs, crowded background, walking backwards.
pub const WAN_DEFAULT_NEGATIVE_PROMPT: &str = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

/// WanPipeline's `max_sequence_length` default.
pub const DEFAULT_MAX_SEQUENCE_LENGTH: usize = 512;

/// WanPipeline's `prompt_clean`: HTML entities decoded (twice, as `html.unescape(html.unescape())`),
/// runs of whitespace collapsed to one space, ends trimmed. (The reference also applies `ftfy` when
/// that package is installed; it is not a diffusers dependency and reel does not apply it.)
pub fn clean_prompt(text: &str) -> String {
    let once = html_escape::decode_html_entities(text);
    let twice = html_escape::decode_html_entities(&once);
    twice.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tokenizer and text encoder together.
pub struct PromptEncoder {
    pub tokenizer: PromptTokenizer,
    pub encoder: Umt5Encoder,
}

/// A prompt's embeddings, and how much of it did not fit.
pub struct EncodedPrompt {
    /// (1, max_length, d_model): the encoder's output for the prompt's tokens, zeros after them.
    pub embeddings: Tensor,
    /// Tokens cut from the prompt's end to fit `max_length` (0 when it fits).
    pub dropped_tokens: usize,
}

impl PromptEncoder {
    pub fn encode(&mut self, prompt: &str, max_length: usize) -> Result<EncodedPrompt> {
        let tokens = self.tokenizer.encode(&clean_prompt(prompt), max_length)?;
        let device: Device = self.encoder.device().clone();
        let ids = Tensor::new(tokens.ids.as_slice(), &device)?.unsqueeze(0)?;
        let mask = Tensor::new(tokens.mask.as_slice(), &device)?.unsqueeze(0)?;
        let hidden = self.encoder.forward(&ids, &mask)?;
        let length = tokens.len();
        let embeddings = if length == max_length { hidden } else { hidden.narrow(1, 0, length)?.pad_with_zeros(1, 0, max_length - length)? };
        Ok(EncodedPrompt { embeddings, dropped_tokens: tokens.dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::clean_prompt;

    #[test]
    fn cleaning_decodes_entities_and_collapses_whitespace() {
        assert_eq!(clean_prompt("  a  red\tball\n&amp; a &lt;box&gt;  "), "a red ball & a <box>");
        assert_eq!(clean_prompt("fish &amp;amp; chips"), "fish & chips");
        assert_eq!(clean_prompt("\u{3000}全角\u{3000}space "), "全角 space");
        assert_eq!(clean_prompt(""), "");
    }
}
