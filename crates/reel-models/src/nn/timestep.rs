//! Sinusoidal timestep embedding: diffusers' `get_timestep_embedding` as `Timesteps` calls it with
//! `flip_sin_to_cos=True, downscale_freq_shift=0` (cosines first), computed in f32.

use candle_core::{DType, Result, Tensor};

const MAX_PERIOD: f64 = 10000.0;

/// `timesteps` (N) of any float or integer dtype -> (N, dim) f32 embedding.
pub fn timestep_embedding(timesteps: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    // Same f32 arithmetic as the reference: exp(-ln(max_period) * i / half).
    let log_period = -(MAX_PERIOD.ln() as f32);
    let freqs: Vec<f32> = (0..half)
        .map(|i| ((log_period * i as f32) / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), timesteps.device())?;
    let args = timesteps.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?;
    let mut parts = vec![args.cos()?, args.sin()?];
    if dim % 2 == 1 {
        parts.push(Tensor::zeros((args.dim(0)?, 1), DType::F32, args.device())?);
    }
    Tensor::cat(&parts, 1)
}
