//! Softmax attention with bounded memory: queries are processed in chunks so that the score matrix
//! never exceeds a fixed budget, whatever the sequence length (a 720p Wan video has tens of
//! thousands of tokens, whose full score matrix would not fit in memory).

use candle_core::{DType, Result, Tensor, D};

use half::bf16;

use super::flops::record_matmul;
use super::fused::softmax_last_dim;
use crate::kernels::{self, bf16_attention::{self, AttentionShape}};

/// Upper bound for one chunk's f32 score matrix, in bytes.
const SCORE_BUDGET_BYTES: usize = 256 << 20;

/// softmax(q kᵀ / sqrt(d)) v for `q` (batch, heads, q_len, d) and `k`, `v` (batch, heads, kv_len, d).
/// Scores and softmax are computed in f32; the result has `q`'s dtype.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    attention(q, k, v, scale, None)
}

/// softmax(scale * q kᵀ + bias) v, with an optional additive f32 `bias` that broadcasts to
/// (batch, heads, q_len, kv_len) (position biases, masks).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, bias: Option<&Tensor>) -> Result<Tensor> {
    let (batch, heads, q_len, head_dim) = q.dims4()?;
    let kv_len = k.dim(2)?;
    let training = [q, k, v].iter().any(|t| t.track_op());
    if !training && kernels::use_bf16_kernel(q.dtype(), q.device()) && k.dtype() == q.dtype() && v.dtype() == q.dtype() {
        record_matmul(batch * heads, q_len, head_dim, kv_len);
        record_matmul(batch * heads, q_len, kv_len, head_dim);
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<bf16>();
        let bias = bias.map(|b| b.broadcast_as((batch, heads, q_len, kv_len))?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()).transpose()?;
        let shape = AttentionShape { heads: batch * heads, q_len, kv_len, head_dim };
        let out = bf16_attention::attention(&values(q)?, &values(k)?, &values(v)?, shape, scale as f32, bias.as_deref());
        return Tensor::from_vec(out, (batch, heads, q_len, head_dim), q.device());
    }
    let k_t = k.transpose(2, 3)?.contiguous()?;
    let v = v.contiguous()?;

    let row_bytes = batch * heads * kv_len * DType::F32.size_in_bytes();
    let chunk = (SCORE_BUDGET_BYTES / row_bytes.max(1)).clamp(1, q_len.max(1));
    let mut outputs = Vec::with_capacity(q_len.div_ceil(chunk));
    for start in (0..q_len).step_by(chunk) {
        let len = chunk.min(q_len - start);
        let q_chunk = q.narrow(2, start, len)?;
        record_matmul(batch * heads, len, head_dim, kv_len);
        let mut scores = q_chunk.matmul(&k_t)?.to_dtype(DType::F32)?;
        if scale != 1.0 {
            scores = (scores * scale)?;
        }
        if let Some(bias) = bias {
            let bias = if bias.dim(2)? == q_len { bias.narrow(2, start, len)? } else { bias.clone() };
            scores = scores.broadcast_add(&bias)?;
        }
        let probs = softmax_last_dim(&scores)?;
        record_matmul(batch * heads, len, kv_len, v.dim(3)?);
        outputs.push(probs.to_dtype(q.dtype())?.matmul(&v)?);
    }
    if outputs.len() == 1 {
        Ok(outputs.pop().expect("one chunk"))
    } else {
        Tensor::cat(&outputs, D::Minus2)
    }
}
