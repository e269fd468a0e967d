//! 3D (and 2D) convolutions on the CPU in f32 as one matrix product per block of output rows:
//! `Y (c_out, positions) = W (c_out, c_in·kt·kh·kw) · patches (c_in·kt·kh·kw, positions)`.
//!
//! The patch matrix is built row by row: each of its rows is one input channel and kernel tap
//! seen at every output position, which for unit stride is a shifted copy of input rows (plain
//! memory copies, the rows filled in parallel). The product is candle's matmul, and its
//! (channels, positions) result is already in the output's layout. Blocks of output rows keep the
//! patch matrix under [`PATCH_BUDGET_BYTES`] whatever the frame size.

use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// Upper bound for one block's patch matrix, in bytes.
const PATCH_BUDGET_BYTES: usize = 64 << 20;

/// Geometry of a convolution: kernel (frames, height, width), strides (frames, spatial) and
/// spatial zero padding (height, width). No temporal padding: callers pad in time.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    pub kernel: (usize, usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

/// `x` (batch, c_in, t, h, w) f32 on the CPU convolved with `weight` (c_out, c_in, kt, kh, kw)
/// plus `bias` (c_out): (batch, c_out, t', h', w').
pub fn conv3d(x: &Tensor, weight: &Tensor, bias: &Tensor, geometry: ConvGeometry) -> Result<Tensor> {
    let (batch, c_in, t, h, w) = x.dims5()?;
    let c_out = weight.dim(0)?;
    let ConvGeometry { kernel: (kt, kh, kw), stride: (st, s), padding: (ph, pw) } = geometry;
    if t < kt || h + 2 * ph < kh || w + 2 * pw < kw {
        candle_core::bail!("a {kt}x{kh}x{kw} convolution needs at least that many frames, rows and columns, got {t}x{h}x{w}");
    }
    let (t_out, h_out, w_out) = ((t - kt) / st + 1, (h + 2 * ph - kh) / s + 1, (w + 2 * pw - kw) / s + 1);
    let taps = c_in * kt * kh * kw;
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let kernel_matrix = weight.reshape((c_out, taps))?.contiguous()?;
    let bias = bias.to_vec1::<f32>()?;
    let rows_per_block = (PATCH_BUDGET_BYTES / (4 * taps * w_out)).clamp(1, h_out);
    let plane = h_out * w_out;
    let mut output = vec![0f32; batch * c_out * t_out * plane];
    for b in 0..batch {
        for to in 0..t_out {
            for row0 in (0..h_out).step_by(rows_per_block) {
                let rows = rows_per_block.min(h_out - row0);
                let positions = rows * w_out;
                let mut patches = vec![0f32; taps * positions];
                patches.par_chunks_mut(positions).enumerate().for_each(|(k, dst)| {
                    let (ci, rest) = (k / (kt * kh * kw), k % (kt * kh * kw));
                    let (dt, dy, dx) = (rest / (kh * kw), rest / kw % kh, rest % kw);
                    let frame = &input[((b * c_in + ci) * t + to * st + dt) * h * w..][..h * w];
                    for r in 0..rows {
                        let iy = ((row0 + r) * s + dy) as isize - ph as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let source = &frame[iy as usize * w..][..w];
                        let target = &mut dst[r * w_out..][..w_out];
                        if s == 1 {
                            // Output columns whose input column lies inside the row.
                            let first = pw.saturating_sub(dx);
                            let end = w_out.min((w + pw).saturating_sub(dx));
                            if first < end {
                                target[first..end].copy_from_slice(&source[first + dx - pw..end + dx - pw]);
                            }
                        } else {
                            for (ox, value) in target.iter_mut().enumerate() {
                                let ix = (ox * s + dx) as isize - pw as isize;
                                if ix >= 0 && (ix as usize) < w {
                                    *value = source[ix as usize];
                                }
                            }
                        }
                    }
                });
                let patches = Tensor::from_vec(patches, (taps, positions), x.device())?;
                let block = kernel_matrix.matmul(&patches)?.flatten_all()?.to_vec1::<f32>()?;
                for (co, values) in block.chunks(positions).enumerate() {
                    let start = ((b * c_out + co) * t_out + to) * plane + row0 * w_out;
                    output[start..start + positions].iter_mut().zip(values).for_each(|(o, v)| *o = v + bias[co]);
                }
            }
        }
    }
    Tensor::from_vec(output, (batch, c_out, t_out, h_out, w_out), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Against candle's own 2D convolution, tap by tap, with odd sizes, padding and strides.
    #[test]
    fn matches_a_sum_of_candle_conv2d() {
        let device = Device::Cpu;
        for (kernel, stride, padding, dims) in [
            ((3, 3, 3), (1, 1), (1, 1), (2, 3, 5, 7, 6)),
            ((1, 3, 3), (1, 2), (0, 0), (1, 4, 2, 9, 8)),
            ((3, 1, 1), (2, 1), (0, 0), (1, 2, 7, 4, 5)),
            ((1, 3, 3), (1, 2), (1, 1), (1, 3, 1, 6, 7)),
        ] {
            let (_, c_in, t, _, _) = dims;
            let c_out = 5;
            let x = Tensor::randn(0f32, 1.0, dims, &device).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c_out, c_in, kernel.0, kernel.1, kernel.2), &device).unwrap();
            let bias = Tensor::randn(0f32, 1.0, c_out, &device).unwrap();
            let geometry = ConvGeometry { kernel, stride, padding };
            let got = conv3d(&x, &weight, &bias, geometry).unwrap();
            // Reference: per output frame, the sum over taps of candle's conv2d.
            let t_out = (t - kernel.0) / stride.0 + 1;
            let frames: Vec<Tensor> = (0..t_out)
                .map(|to| {
                    let mut sum: Option<Tensor> = None;
                    for dt in 0..kernel.0 {
                        let image = x.narrow(2, to * stride.0 + dt, 1).unwrap().squeeze(2).unwrap().contiguous().unwrap();
                        let image = image.pad_with_zeros(2, padding.0, padding.0).unwrap().pad_with_zeros(3, padding.1, padding.1).unwrap();
                        let k = weight.narrow(2, dt, 1).unwrap().squeeze(2).unwrap().contiguous().unwrap();
                        let y = image.conv2d(&k, 0, stride.1, 1, 1).unwrap();
                        sum = Some(match sum { None => y, Some(s) => (s + y).unwrap() });
                    }
                    sum.unwrap().broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap()).unwrap().unsqueeze(2).unwrap()
                })
                .collect();
            let want = Tensor::cat(&frames, 2).unwrap();
            assert_eq!(got.dims(), want.dims(), "{dims:?} {kernel:?}");
            let error = ((&got - &want).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
                / want.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
            .sqrt();
            assert!(error < 1e-6, "{dims:?} {kernel:?}: relative error {error:e}");
        }
    }
}
