//! Growing a trained transformer deeper by block expansion: each new block is a copy of the block
//! before it with the last projection of each residual branch (self-attention, cross-attention,
//! feed-forward) set to zero. Such a block adds nothing to the residual stream, so the grown model
//! starts as the same function as the one it grew from, and training gives the new blocks a job.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

/// For each of `to` blocks, the block of a `from`-block model it starts from: spread evenly, each
/// old block followed by its copies.
pub fn source_blocks(from: usize, to: usize) -> Vec<usize> {
    (0..to).map(|block| block * from / to).collect()
}

/// The projections whose zero makes a Wan block an identity.
fn is_branch_output(name_in_block: &str) -> bool {
    ["attn1.to_out.0.", "attn2.to_out.0.", "ffn.net.2."].iter().any(|prefix| name_in_block.starts_with(prefix))
}

/// `blocks.N.rest` as (N, rest).
fn block_of(name: &str) -> Option<(usize, &str)> {
    let (index, rest) = name.strip_prefix("blocks.")?.split_once('.')?;
    Some((index.parse().ok()?, rest))
}

/// A `from`-block Wan transformer's tensors grown to `to` blocks (see the module's comment).
pub fn grow_blocks(tensors: &HashMap<String, Tensor>, from: usize, to: usize) -> Result<HashMap<String, Tensor>> {
    if to < from {
        candle_core::bail!("a transformer of {from} blocks cannot grow to {to}");
    }
    let sources = source_blocks(from, to);
    let mut grown = HashMap::new();
    for (name, tensor) in tensors {
        let Some((block, rest)) = block_of(name) else {
            grown.insert(name.clone(), tensor.clone());
            continue;
        };
        for (new, _) in sources.iter().enumerate().filter(|(_, source)| **source == block) {
            let is_copy = new > 0 && sources[new - 1] == block;
            let value = if is_copy && is_branch_output(rest) { tensor.zeros_like()? } else { tensor.clone() };
            grown.insert(format!("blocks.{new}.{rest}"), value);
        }
    }
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use reel_models::wan::WanTransformer;

    use super::*;
    use crate::model::transformer_config;
    use crate::params::Params;

    #[test]
    fn new_blocks_follow_the_block_they_copy() {
        assert_eq!(source_blocks(4, 4), vec![0, 1, 2, 3]);
        assert_eq!(source_blocks(4, 6), vec![0, 0, 1, 2, 2, 3]);
        assert_eq!(source_blocks(4, 8), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(source_blocks(2, 3), vec![0, 0, 1]);
    }

    /// The grown transformer computes what the trained one does, on random inputs, at f32 precision.
    #[test]
    fn a_grown_transformer_starts_as_the_same_function() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let trained = Params::new(11);
        let small = WanTransformer::new(&transformer_config(2), trained.var_builder())?;
        // Trained weights are not at their initial values: perturb every tensor, the zero-initialised
        // output projection among them.
        for (_, var) in trained.vars() {
            var.set(&(var.as_tensor() + var.as_tensor().randn_like(0.0, 0.05)?)?)?;
        }
        let grown = Params::new(12);
        let large = WanTransformer::new(&transformer_config(5), grown.var_builder())?;
        let grown_tensors = grow_blocks(&trained.tensors(), 2, 5)?;
        assert_eq!(grown_tensors.len(), grown.vars().len());
        grown.restore(&grown_tensors)?;

        let latents = Tensor::randn(0f32, 1.0, (2, 8, 2, 4, 4), &Device::Cpu)?;
        let timesteps = Tensor::new(&[310f32, 870.0], &Device::Cpu)?;
        let context = Tensor::randn(0f32, 1.0, (2, 6, 64), &Device::Cpu)?;
        let expected = small.forward(&latents, &timesteps, &context)?;
        let actual = large.forward(&latents, &timesteps, &context)?;
        let error = (&actual - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = expected.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(scale > 0.1, "the trained transformer's output is too small to compare: {scale}");
        assert!(error <= 1e-4 * scale, "grown output differs by {error} (scale {scale})");
        // A copy holds its source block's weights, but zero on its branch outputs.
        let source = grown_tensors["blocks.1.attn1.to_q.weight"].to_dtype(DType::F32)?;
        let copy = &trained.tensors()["blocks.0.attn1.to_q.weight"];
        assert_eq!((source - copy)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        assert_eq!(grown_tensors["blocks.1.ffn.net.2.weight"].abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        assert!(grow_blocks(&trained.tensors(), 2, 1).is_err());
        Ok(())
    }
}
