//! Elementwise work on f32 rows, written so that the compiler vectorises it (no libm calls, sums
//! and maxima kept in 16 lanes): the epilogues of reel's matrix-product and attention kernels.

use half::bf16;

const LANES: usize = 16;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// GELU with the tanh approximation (torch's `gelu(approximate="tanh")`), to about 2e-7 relative.
pub fn gelu_tanh_in_place(values: &mut [f32]) {
    for v in values {
        *v *= gelu_tanh_gate(*v);
    }
}

/// The gradient of [`gelu_tanh_in_place`]: `grad * gelu'(x)` for each value, in one pass.
/// With the gate `s = (1 + tanh u) / 2`, `1 - tanh² u = 4 s (1 - s)`, so
/// `gelu'(x) = s + 2 x s (1 - s) u'(x)` needs no second transcendental call.
pub fn gelu_tanh_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, x), g) in out.iter_mut().zip(x).zip(grad) {
        let s = gelu_tanh_gate(*x);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
        *o = g * (s + 2.0 * x * s * (1.0 - s) * du);
    }
}

/// `(1 + tanh u) / 2` with `u = sqrt(2 / pi) (x + 0.044715 x³)`: GELU's gate, `gelu(x) = x s`.
#[inline(always)]
fn gelu_tanh_gate(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
    // With e = exp(-2|u|) in (0, 1] (no overflow), (1 + tanh u) / 2 is 1 / (1 + e) for u >= 0
    // and e / (1 + e) below: no cancellation in the negative tail.
    let e = exp_non_positive(-2.0 * u.abs());
    let numerator = if u >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// A row normalisation: LayerNorm subtracts the row's mean, RMSNorm does not; both divide by
/// `sqrt(mean of squares + eps)` of what is left. Neither applies an affine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowNorm {
    Layer { eps: f32 },
    Rms { eps: f32 },
}

impl RowNorm {
    /// The row's centre (its mean for LayerNorm, 0 for RMSNorm) and `1 / sqrt(variance + eps)`.
    #[inline(always)]
    fn statistics(self, row: &[f32]) -> (f32, f32) {
        let n = row.len() as f32;
        let (centre, eps) = match self {
            RowNorm::Layer { eps } => (lane_sum(row, row, |v, _| v) / n, eps),
            RowNorm::Rms { eps } => (0.0, eps),
        };
        let variance = lane_sum(row, row, |v, _| (v - centre) * (v - centre)) / n;
        (centre, 1.0 / (variance + eps).sqrt())
    }

    /// Normalises each row of `width` values of `x` into `out`.
    pub fn forward(self, x: &[f32], out: &mut [f32], width: usize) {
        for (row, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let (centre, inverse) = self.statistics(row);
            out.iter_mut().zip(row).for_each(|(o, v)| *o = (v - centre) * inverse);
        }
    }

    /// The gradient of [`RowNorm::forward`] for each row: with `y` the normalised row and `g` its
    /// gradient, `(g - mean(g) - y mean(g y)) / sigma` for LayerNorm, `(g - y mean(g y)) / sigma`
    /// for RMSNorm.
    pub fn backward(self, x: &[f32], grad: &[f32], out: &mut [f32], width: usize) {
        let n = width as f32;
        for ((row, grad), out) in x.chunks_exact(width).zip(grad.chunks_exact(width)).zip(out.chunks_exact_mut(width)) {
            let (centre, inverse) = self.statistics(row);
            let mean_grad = match self {
                RowNorm::Layer { .. } => lane_sum(grad, grad, |g, _| g) / n,
                RowNorm::Rms { .. } => 0.0,
            };
            let mean_grad_y = lane_sum(row, grad, |v, g| g * (v - centre) * inverse) / n;
            for ((o, v), g) in out.iter_mut().zip(row).zip(grad) {
                *o = (g - mean_grad - (v - centre) * inverse * mean_grad_y) * inverse;
            }
        }
    }
}

/// `sum term(a[i], b[i])`, kept in 16 lanes so that the compiler vectorises it.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let (mut a_chunks, mut b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (a, b) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((lane, a), b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += term(*a, *b);
        }
    }
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(a, b)| term(*a, *b)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `softmax` of one row in place, in f32.
pub fn softmax_in_place(row: &mut [f32]) {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        maxima.iter_mut().zip(chunk).for_each(|(m, v)| *m = if *v > *m { *v } else { *m });
    }
    let max = chunks.remainder().iter().chain(&maxima).copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *v = exp_non_positive(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp_non_positive(*v - max);
        sum += *v;
    }
    let inverse = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inverse);
}

/// The gradient of a softmax over rows of `width`: with `y` the softmax of a row and `g` its
/// gradient, `y (g - sum(g y))`.
pub fn softmax_backward(y: &[f32], grad: &[f32], out: &mut [f32], width: usize) {
    for ((y, grad), out) in y.chunks_exact(width).zip(grad.chunks_exact(width)).zip(out.chunks_exact_mut(width)) {
        let dot = lane_sum(y, grad, |y, g| y * g);
        for ((o, y), g) in out.iter_mut().zip(y).zip(grad) {
            *o = y * (g - dot);
        }
    }
}

/// A value type kernels can finish their f32 results in: f32 as is, or bf16 rounded once.
pub trait Finished: Copy + Default + Send {
    fn store(src: &[f32], dst: &mut [Self]);
}

impl Finished for f32 {
    fn store(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl Finished for bf16 {
    fn store(src: &[f32], dst: &mut [bf16]) {
        round_to_bf16(src, dst);
    }
}

/// Rounds f32 values to bf16, to nearest even (as torch and `half` do; NaN stays NaN).
pub fn round_to_bf16(src: &[f32], dst: &mut [bf16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        let bits = s.to_bits();
        let rounded = if s.is_nan() { (bits >> 16) | 0x40 } else { (bits + 0x7fff + ((bits >> 16) & 1)) >> 16 };
        *d = bf16::from_bits(rounded as u16);
    }
}

/// Rounds to the nearest integer (ties to even) for `|v| < 2^22`, by adding and removing
/// 1.5 · 2^23: `f32::round` is a libm call that stops vectorisation.
#[inline(always)]
pub fn round_nearest(v: f32) -> f32 {
    const ROUNDER: f32 = 12_582_912.0;
    (v + ROUNDER) - ROUNDER
}

/// `exp(y)` for `y <= 0`, flushing to 0 below -87: `2^n * 2^f` with `n = round(y / ln 2)` and a
/// degree-7 Taylor polynomial for `2^f`, `|f| <= 1/2`.
#[inline(always)]
fn exp_non_positive(y: f32) -> f32 {
    let t = y.max(-87.0) * std::f32::consts::LOG2_E;
    let n = round_nearest(t);
    let r = (t - n) * std::f32::consts::LN_2;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_tanh_f64(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    }

    #[test]
    fn rounding_matches_half() {
        let mut values: Vec<f32> = (0..100_000).map(|i| f32::from_bits(0x3f80_0000u32.wrapping_add(i * 7919)) * if i % 2 == 0 { 1.0 } else { -3.0 }).collect();
        values.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN_POSITIVE, 1e-40, 3.3895314e38]);
        let mut got = vec![bf16::ZERO; values.len()];
        round_to_bf16(&values, &mut got);
        for (v, g) in values.iter().zip(&got) {
            assert_eq!(g.to_bits(), bf16::from_f32(*v).to_bits(), "{v:e}");
        }
        let mut nan = [bf16::ZERO];
        round_to_bf16(&[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn softmax_matches_f64() {
        let row: Vec<f32> = (0..777).map(|i| ((i * 7919) % 1000) as f32 * 0.031 - 15.0).collect();
        let max = row.iter().fold(f64::MIN, |m, v| m.max(*v as f64));
        let sum: f64 = row.iter().map(|v| (*v as f64 - max).exp()).sum();
        let mut got = row.clone();
        softmax_in_place(&mut got);
        for (x, g) in row.iter().zip(&got) {
            let want = (*x as f64 - max).exp() / sum;
            assert!((*g as f64 - want).abs() <= 1e-6 * want + 1e-12, "softmax({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn gelu_matches_f64_over_the_whole_range() {
        // A dense sweep plus the extremes, both signs.
        let mut values: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
        values.extend([-1e4f32, -100.0, -30.0, -10.5, 10.5, 30.0, 100.0, 1e4, 1e-30, -1e-30, 0.0]);
        let mut got = values.clone();
        gelu_tanh_in_place(&mut got);
        let mut worst = 0f64;
        for (x, g) in values.iter().zip(&got) {
            let want = gelu_tanh_f64(*x as f64);
            // Absolute error near the zero of GELU's negative tail, relative elsewhere.
            let error = (*g as f64 - want).abs() / want.abs().max(1e-3);
            worst = worst.max(error);
        }
        assert!(worst < 1e-5, "worst error {worst:e}");
    }

    #[test]
    fn gelu_gradient_matches_f64() {
        let mut values: Vec<f32> = (-100_000..=100_000).map(|i| i as f32 * 2e-4).collect();
        values.extend([-1e4f32, -100.0, -30.0, -10.5, 10.5, 30.0, 100.0, 1e4, 1e-30, -1e-30, 0.0]);
        let grads: Vec<f32> = (0..values.len()).map(|i| ((i * 7919) % 1000) as f32 * 0.004 - 2.0).collect();
        let mut got = vec![0f32; values.len()];
        gelu_tanh_backward(&values, &grads, &mut got);
        let mut worst = 0f64;
        for ((x, g), got) in values.iter().zip(&grads).zip(&got) {
            // The derivative from a central difference of the f64 GELU, scaled by the gradient.
            let (x, h) = (*x as f64, 1e-6 * (*x as f64).abs().max(1.0));
            let want = *g as f64 * (gelu_tanh_f64(x + h) - gelu_tanh_f64(x - h)) / (2.0 * h);
            let error = (*got as f64 - want).abs() / want.abs().max(1e-3);
            worst = worst.max(error);
        }
        assert!(worst < 1e-4, "worst error {worst:e}");
    }
}
