//! Growing a trained model (the Wan transformer or the UMT5 text encoder) deeper by block
//! expansion: each new block is a copy of the block before it with the last projection of each
//! residual branch (self-attention, cross-attention, feed-forward) set to zero. Such a block adds
//! nothing to the residual stream, so the grown model starts as the same function as the one it
//! grew from, and training gives the new blocks a job.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

/// For each of `to` blocks, the block of a `from`-block model it starts from: spread evenly, each
/// old block followed by its copies.
pub fn source_blocks(from: usize, to: usize) -> Vec<usize> {
    (0..to).map(|block| block * from / to).collect()
}

/// Where a model's tensors name its blocks, and which of a block's projections end its residual
/// branches (zero, they make the block an identity).
pub struct BlockLayout {
    prefix: &'static str,
    branch_outputs: &'static [&'static str],
}

/// The Wan transformer's `blocks.N.*`.
pub const WAN_TRANSFORMER: BlockLayout =
    BlockLayout { prefix: "blocks.", branch_outputs: &["attn1.to_out.0.", "attn2.to_out.0.", "ffn.net.2."] };

/// The UMT5 encoder's `encoder.block.N.*` (every UMT5 block has its own relative position bias, so a
/// copy needs nothing from the first block).
pub const UMT5_ENCODER: BlockLayout =
    BlockLayout { prefix: "encoder.block.", branch_outputs: &["layer.0.SelfAttention.o.", "layer.1.DenseReluDense.wo."] };

impl BlockLayout {
    fn is_branch_output(&self, name_in_block: &str) -> bool {
        self.branch_outputs.iter().any(|prefix| name_in_block.starts_with(prefix))
    }

    /// `<prefix>N.rest` as (N, rest).
    fn block_of<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        let (index, rest) = name.strip_prefix(self.prefix)?.split_once('.')?;
        Some((index.parse().ok()?, rest))
    }
}

/// The tensors of a model of `from` blocks laid out as `layout`, grown to `to` blocks (see the
/// module's comment).
pub fn grow_blocks(tensors: &HashMap<String, Tensor>, layout: &BlockLayout, from: usize, to: usize) -> Result<HashMap<String, Tensor>> {
    if to < from {
        candle_core::bail!("a model of {from} blocks cannot grow to {to}");
    }
    let sources = source_blocks(from, to);
    let mut grown = HashMap::new();
    for (name, tensor) in tensors {
        let Some((block, rest)) = layout.block_of(name) else {
            grown.insert(name.clone(), tensor.clone());
            continue;
        };
        for (new, _) in sources.iter().enumerate().filter(|(_, source)| **source == block) {
            let is_copy = new > 0 && sources[new - 1] == block;
            let value = if is_copy && layout.is_branch_output(rest) { tensor.zeros_like()? } else { tensor.clone() };
            grown.insert(format!("{}{new}.{rest}", layout.prefix), value);
        }
    }
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use reel_models::umt5::Umt5Encoder;
    use reel_models::wan::WanTransformer;

    use super::*;
    use crate::model::{text_encoder_config, transformer_config};
    use crate::params::Params;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Trained weights are not at their initial values: perturbs every tensor, the zero-initialised
    /// output projections among them.
    fn perturb(params: &Params) -> Result<()> {
        for (_, var) in params.vars() {
            var.set(&(var.as_tensor() + var.as_tensor().randn_like(0.0, 0.05)?)?)?;
        }
        Ok(())
    }

    fn max_abs(tensor: &Tensor) -> Result<f32> {
        tensor.to_dtype(DType::F32)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// The grown model's output equals the trained one's at f32 precision (relative error 1e-4).
    fn assert_same_function(expected: &Tensor, actual: &Tensor) -> Result<()> {
        let (error, scale) = (max_abs(&(actual - expected)?)?, max_abs(expected)?);
        assert!(scale > 0.1, "the trained model's output is too small to compare: {scale}");
        assert!(error <= 1e-4 * scale, "grown output differs by {error} (scale {scale})");
        Ok(())
    }

    #[test]
    fn new_blocks_follow_the_block_they_copy() {
        assert_eq!(source_blocks(4, 4), vec![0, 1, 2, 3]);
        assert_eq!(source_blocks(4, 6), vec![0, 0, 1, 2, 2, 3]);
        assert_eq!(source_blocks(4, 8), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(source_blocks(2, 3), vec![0, 0, 1]);
    }

    /// The grown transformer computes what the trained one does, on random inputs, at f32 precision.
    #[test]
    fn a_grown_transformer_starts_as_the_same_function() -> TestResult {
        let trained = Params::new(11);
        let small = WanTransformer::new(&transformer_config(2), trained.var_builder())?;
        perturb(&trained)?;
        let grown = Params::new(12);
        let large = WanTransformer::new(&transformer_config(5), grown.var_builder())?;
        let grown_tensors = grow_blocks(&trained.tensors(), &WAN_TRANSFORMER, 2, 5)?;
        assert_eq!(grown_tensors.len(), grown.vars().len());
        grown.restore(&grown_tensors)?;

        let latents = Tensor::randn(0f32, 1.0, (2, 8, 2, 4, 4), &Device::Cpu)?;
        let timesteps = Tensor::new(&[310f32, 870.0], &Device::Cpu)?;
        let context = Tensor::randn(0f32, 1.0, (2, 6, 64), &Device::Cpu)?;
        assert_same_function(&small.forward(&latents, &timesteps, &context)?, &large.forward(&latents, &timesteps, &context)?)?;
        // A copy holds its source block's weights, but zero on its branch outputs.
        let copy = &grown_tensors["blocks.1.attn1.to_q.weight"];
        assert_eq!(max_abs(&(copy - &trained.tensors()["blocks.0.attn1.to_q.weight"])?)?, 0.0);
        assert_eq!(max_abs(&grown_tensors["blocks.1.ffn.net.2.weight"])?, 0.0);
        assert!(grow_blocks(&trained.tensors(), &WAN_TRANSFORMER, 2, 1).is_err());
        Ok(())
    }

    /// The same for the text encoder, grown from 2 to 5 blocks, on a random prompt with padding.
    #[test]
    fn a_grown_text_encoder_starts_as_the_same_function() -> TestResult {
        let trained = Params::new(21);
        let small = Umt5Encoder::new(&text_encoder_config(40, 2), trained.var_builder())?;
        perturb(&trained)?;
        let grown = Params::new(22);
        let large = Umt5Encoder::new(&text_encoder_config(40, 5), grown.var_builder())?;
        let grown_tensors = grow_blocks(&trained.tensors(), &UMT5_ENCODER, 2, 5)?;
        assert_eq!(grown_tensors.len(), grown.vars().len());
        grown.restore(&grown_tensors)?;

        let ids = Tensor::new(&[[5u32, 17, 3, 29, 11, 1, 0], [8, 2, 39, 1, 0, 0, 0]], &Device::Cpu)?;
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]], &Device::Cpu)?;
        assert_same_function(&small.forward(&ids, &mask)?, &large.forward(&ids, &mask)?)?;
        // The copies zero their branch outputs only: their attention weights are their source's.
        let copy = &grown_tensors["encoder.block.1.layer.0.SelfAttention.q.weight"];
        assert_eq!(max_abs(&(copy - &trained.tensors()["encoder.block.0.layer.0.SelfAttention.q.weight"])?)?, 0.0);
        for zeroed in ["encoder.block.1.layer.0.SelfAttention.o.weight", "encoder.block.4.layer.1.DenseReluDense.wo.weight"] {
            assert_eq!(max_abs(&grown_tensors[zeroed])?, 0.0, "{zeroed}");
        }
        // Block 3 is the first of block 1's line, not a copy: it keeps its feed-forward output.
        assert_ne!(max_abs(&grown_tensors["encoder.block.3.layer.1.DenseReluDense.wo.weight"])?, 0.0);
        Ok(())
    }
}
