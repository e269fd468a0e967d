//! Broadcasting a learned tensor over activations (a bias over tokens, a modulation over frames)
//! so that training's backward pass stays fast on the CPU.
//!
//! candle's backward pass sums a broadcast tensor's gradient over the broadcast dimensions; unless
//! those are the last ones, its CPU loop divides indices for every element, single-threaded. In a
//! training step of the demo transformer that summation took about a fifth of the time. Here a
//! tensor that takes part in a gradient is broadcast over leading and middle dimensions as a
//! matrix product with ones, so its gradient is a matrix product too. Tensors outside training
//! (inference) broadcast as candle does, at no cost.

use candle_core::{Result, Tensor};

use super::norm::training;

/// `x + t`, broadcast to their common shape.
pub fn broadcast_add(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    if !training(&[t]) {
        return x.broadcast_add(t);
    }
    let (x, t) = both_broadcast(x, t, "broadcast_add")?;
    x.add(&t)
}

/// `x * t`, broadcast to their common shape.
pub fn broadcast_mul(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    if !training(&[t]) {
        return x.broadcast_mul(t);
    }
    let (x, t) = both_broadcast(x, t, "broadcast_mul")?;
    x.mul(&t)
}

/// `x` and `t` broadcast to their common shape; `x` (usually the activation, already of that
/// shape) by candle, `t` by [`expand`].
fn both_broadcast(x: &Tensor, t: &Tensor, op: &'static str) -> Result<(Tensor, Tensor)> {
    let shape = x.shape().broadcast_shape_binary_op(t.shape(), op)?;
    let x = if x.shape() == &shape { x.clone() } else { x.broadcast_as(&shape)? };
    let t = expand(t, shape.dims())?;
    Ok((x, t))
}

/// `t` broadcast to `dims`: each run of broadcast dimensions followed by kept ones becomes a
/// product `ones (pre, n, 1) @ t (pre, 1, post)`; a run at the end stays candle's broadcast, whose
/// gradient (a sum over the last dimensions) is already fast.
fn expand(t: &Tensor, dims: &[usize]) -> Result<Tensor> {
    if t.rank() > dims.len() {
        candle_core::bail!("cannot broadcast {:?} to {dims:?}", t.dims());
    }
    let mut current: Vec<usize> = std::iter::repeat_n(1, dims.len() - t.rank()).chain(t.dims().iter().copied()).collect();
    let mut expanded = t.reshape(current.as_slice())?;
    let mut start = 0;
    while start < dims.len() {
        if current[start] == dims[start] {
            start += 1;
            continue;
        }
        if current[start] != 1 {
            candle_core::bail!("cannot broadcast {:?} to {dims:?}", t.dims());
        }
        let end = (start..dims.len()).find(|&d| current[d] == dims[d]).unwrap_or(dims.len());
        if end == dims.len() {
            break;
        }
        let pre: usize = current[..start].iter().product();
        let n: usize = dims[start..end].iter().product();
        let post: usize = current[end..].iter().product();
        let ones = Tensor::ones((pre, n, 1), t.dtype(), t.device())?;
        current[start..end].copy_from_slice(&dims[start..end]);
        expanded = ones.matmul(&expanded.reshape((pre, 1, post))?)?.reshape(current.as_slice())?;
        start = end;
    }
    expanded.broadcast_as(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn random(dims: &[usize]) -> Result<Tensor> {
        Tensor::randn(0f32, 1.0, dims, &Device::Cpu)
    }

    fn max_relative_error(a: &Tensor, b: &Tensor) -> Result<f32> {
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-12);
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
    }

    /// Values and gradients match candle's own broadcast for biases over tokens, modulations over
    /// frames and per-channel scales over space (f32, relative error 1e-5).
    #[test]
    fn broadcasts_and_their_gradients_match_candles() -> Result<()> {
        let cases: [(&[usize], &[usize]); 6] = [
            (&[16], &[3, 5, 16]),
            (&[3, 1, 16], &[3, 5, 16]),
            (&[1, 4, 1, 1], &[2, 4, 3, 5]),
            (&[2, 1, 6, 1], &[2, 7, 6, 3]),
            (&[3, 5, 16], &[3, 5, 16]),
            (&[1, 2, 16], &[3, 1, 1, 16]),
        ];
        for (t_dims, x_dims) in cases {
            let x = random(x_dims)?;
            let shape = x.shape().broadcast_shape_binary_op(&candle_core::Shape::from(t_dims), "test")?;
            let weights = random(shape.dims())?;
            let t = Var::from_tensor(&random(t_dims)?)?;
            for op in ["add", "mul"] {
                let (ours, candles) = match op {
                    "add" => (broadcast_add(&x, &t)?, x.broadcast_add(&t)?),
                    _ => (broadcast_mul(&x, &t)?, x.broadcast_mul(&t)?),
                };
                assert!(max_relative_error(&ours, &candles)? < 1e-6, "{op} {t_dims:?} -> {x_dims:?}");
                let grad = |y: &Tensor| -> Result<Tensor> {
                    let loss = (y * &weights)?.sum_all()?;
                    Ok(loss.backward()?.get(&t).expect("t takes part in the loss").clone())
                };
                let error = max_relative_error(&grad(&ours)?, &grad(&candles)?)?;
                assert!(error < 1e-5, "{op} {t_dims:?} -> {x_dims:?}: gradient off by {error}");
            }
        }
        Ok(())
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_refused() -> Result<()> {
        let x = random(&[2, 3, 4])?;
        let t = Var::from_tensor(&random(&[3])?)?;
        assert!(broadcast_add(&x, &t).is_err());
        Ok(())
    }
}
