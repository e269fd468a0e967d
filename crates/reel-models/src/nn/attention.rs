//! Scaled dot-product attention with bounded memory: queries are processed in chunks so that the
//! score matrix never exceeds a fixed budget, whatever the sequence length (a 720p Wan video has
//! tens of thousands of tokens, whose full score matrix would not fit in memory).

use candle_core::{DType, Result, Tensor, D};

/// Upper bound for one chunk's f32 score matrix, in bytes.
const SCORE_BUDGET_BYTES: usize = 256 << 20;

/// softmax(q kᵀ / sqrt(d)) v for `q` (batch, heads, q_len, d) and `k`, `v` (batch, heads, kv_len, d).
/// Scores and softmax are computed in f32; the result has `q`'s dtype.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (batch, heads, q_len, head_dim) = q.dims4()?;
    let kv_len = k.dim(2)?;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let k_t = k.transpose(2, 3)?.contiguous()?;
    let v = v.contiguous()?;

    let row_bytes = batch * heads * kv_len * DType::F32.size_in_bytes();
    let chunk = (SCORE_BUDGET_BYTES / row_bytes.max(1)).clamp(1, q_len.max(1));
    let mut outputs = Vec::with_capacity(q_len.div_ceil(chunk));
    for start in (0..q_len).step_by(chunk) {
        let len = chunk.min(q_len - start);
        let q_chunk = q.narrow(2, start, len)?;
        let scores = (q_chunk.matmul(&k_t)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?;
        outputs.push(probs.to_dtype(q.dtype())?.matmul(&v)?);
    }
    if outputs.len() == 1 {
        Ok(outputs.pop().expect("one chunk"))
    } else {
        Tensor::cat(&outputs, D::Minus2)
    }
}
