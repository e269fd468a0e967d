//! Prompt encoding against WanPipeline (scripts/fixtures/pipeline.py): cleaning and tokenization
//! give the reference's token ids and mask exactly; UMT5's hidden states and the zero-padded prompt
//! embeddings match at f32 relative error 1e-4.

use candle_core::{DType, Tensor};
use reel_models::testing::{assert_close, fixture, load_tensors, take, test_device};
use reel_models::umt5::{PromptTokenizer, Umt5Encoder};
use reel_models::weights::ComponentFolder;
use reel_sampling::prompt::{clean_prompt, PromptEncoder};

const TOLERANCE: f64 = 1e-4;

#[test]
fn prompts_tokenize_and_encode_as_the_reference() {
    let device = test_device();
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("parity/text_encoder.json")).unwrap()).unwrap();
    let max_length = settings["max_sequence_length"].as_u64().unwrap() as usize;
    let prompts: Vec<String> = settings["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert_eq!(prompts.len(), 5);
    let tensors = load_tensors("parity/text_encoder.safetensors");
    let root = fixture("tiny-wan2.1");
    let mut encoder = PromptEncoder {
        tokenizer: PromptTokenizer::load(&root.join("tokenizer")).unwrap(),
        encoder: Umt5Encoder::load(&ComponentFolder::open(root.join("text_encoder")).unwrap(), DType::F32, &device).unwrap(),
    };

    for (i, prompt) in prompts.iter().enumerate() {
        let tokens = encoder.tokenizer.encode(&clean_prompt(prompt), max_length).unwrap();
        let expected_ids: Vec<u32> = take(&tensors, &format!("input_ids_{i}")).squeeze(0).unwrap()
            .to_dtype(DType::U32).unwrap().to_vec1().unwrap();
        let expected_mask: Vec<u32> = take(&tensors, &format!("attention_mask_{i}")).squeeze(0).unwrap()
            .to_dtype(DType::U32).unwrap().to_vec1().unwrap();
        assert_eq!(tokens.ids, expected_ids, "token ids of prompt {i} {prompt:?}");
        assert_eq!(tokens.mask, expected_mask, "attention mask of prompt {i}");

        let ids = Tensor::new(tokens.ids.as_slice(), &device).unwrap().unsqueeze(0).unwrap();
        let mask = Tensor::new(tokens.mask.as_slice(), &device).unwrap().unsqueeze(0).unwrap();
        let hidden = encoder.encoder.forward(&ids, &mask).unwrap();
        assert_close(&format!("prompt {i} hidden states"), &hidden, &take(&tensors, &format!("hidden_states_{i}")), TOLERANCE);

        let embeds = encoder.encode(prompt, max_length).unwrap().embeddings;
        assert_close(&format!("prompt {i} embeddings"), &embeds, &take(&tensors, &format!("prompt_embeds_{i}")), TOLERANCE);
    }
}

#[test]
fn missing_tokenizer_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = PromptTokenizer::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("is missing"), "{err}");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"not\": \"a tokenizer\"}").unwrap();
    let err = PromptTokenizer::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("not a valid tokenizer.json"), "{err}");
}
