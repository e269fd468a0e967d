//! The patch matrix of a convolution as a differentiable candle op, for training on the CPU:
//! forward, each row is one input channel and kernel tap seen at every output position; backward,
//! each row's gradient is added back where that tap read the input. A convolution is then one
//! matrix product with its weight, so its whole backward pass is two matrix products and one pass
//! over the patches, instead of candle's direct-loop conv2d gradients.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::ConvGeometry;

/// (batch, c_in, t, h, w) -> (c_in·kt·kh·kw, batch·t'·h'·w'): rows in the order of a weight
/// (c_out, c_in, kt, kh, kw) reshaped to (c_out, c_in·kt·kh·kw), columns in (batch, t', h', w') order;
/// with the output size (t', h', w').
pub fn patches(x: &Tensor, geometry: ConvGeometry) -> Result<(Tensor, (usize, usize, usize))> {
    let (batch, c_in, t, h, w) = x.dims5()?;
    let (kt, kh, kw) = geometry.kernel;
    let (st, s) = geometry.stride;
    let (ph, pw) = geometry.padding;
    if t < kt || h + 2 * ph < kh || w + 2 * pw < kw || st == 0 || s == 0 {
        candle_core::bail!("a {kt}x{kh}x{kw} convolution at stride {st}x{s} cannot cover {t}x{h}x{w}");
    }
    if x.dtype() != DType::F32 {
        candle_core::bail!("the patch matrix is built in f32, got {:?}", x.dtype());
    }
    let frame = Frame { batch, c_in, t, h, w, geometry };
    Ok((x.apply_op1(Patches(frame))?, frame.output()))
}

/// Sizes of the input and the convolution.
#[derive(Debug, Clone, Copy)]
struct Frame {
    batch: usize,
    c_in: usize,
    t: usize,
    h: usize,
    w: usize,
    geometry: ConvGeometry,
}

impl Frame {
    fn output(&self) -> (usize, usize, usize) {
        let ConvGeometry { kernel: (kt, kh, kw), stride: (st, s), padding: (ph, pw) } = self.geometry;
        ((self.t - kt) / st + 1, (self.h + 2 * ph - kh) / s + 1, (self.w + 2 * pw - kw) / s + 1)
    }

    fn taps(&self) -> usize {
        let (kt, kh, kw) = self.geometry.kernel;
        kt * kh * kw
    }

    fn positions(&self) -> usize {
        let (t_out, h_out, w_out) = self.output();
        self.batch * t_out * h_out * w_out
    }

    /// Calls `visit(first position, first input offset, count)` for each run of output positions in
    /// one output row of batch `b` whose inputs under tap `tap` lie inside the padding: position
    /// `first + i` reads the channel's (t, h, w) volume at `offset + i · stride`.
    fn for_each_run(&self, b: usize, tap: usize, mut visit: impl FnMut(usize, usize, usize)) {
        let ConvGeometry { kernel: (_, kh, kw), stride: (st, s), padding: (ph, pw) } = self.geometry;
        let (dt, dy, dx) = (tap / (kh * kw), tap / kw % kh, tap % kw);
        let (t_out, h_out, w_out) = self.output();
        // Output columns whose input column ox·s + dx - pw lies in 0..w.
        let first = pw.saturating_sub(dx).div_ceil(s);
        let end = w_out.min((self.w + pw).saturating_sub(dx).div_ceil(s));
        if first >= end {
            return;
        }
        for to in 0..t_out {
            let it = to * st + dt;
            for oy in 0..h_out {
                let Some(iy) = (oy * s + dy).checked_sub(ph).filter(|iy| *iy < self.h) else { continue };
                let row = ((b * t_out + to) * h_out + oy) * w_out;
                visit(row + first, (it * self.h + iy) * self.w + first * s + dx - pw, end - first);
            }
        }
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else { candle_core::bail!("the patch matrix is built in f32") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("the patch matrix needs a contiguous input"),
    }
}

struct Patches(Frame);

impl CustomOp1 for Patches {
    fn name(&self) -> &'static str {
        "conv-patches"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let frame = self.0;
        let input = contiguous_f32(storage, layout)?;
        let (taps, positions, volume) = (frame.taps(), frame.positions(), frame.t * frame.h * frame.w);
        let stride = frame.geometry.stride.1;
        let mut out = vec![0f32; frame.c_in * taps * positions];
        out.par_chunks_mut(positions).enumerate().for_each(|(row, dst)| {
            let (ci, tap) = (row / taps, row % taps);
            for b in 0..frame.batch {
                let channel = &input[(b * frame.c_in + ci) * volume..][..volume];
                frame.for_each_run(b, tap, |position, offset, count| {
                    let source = channel[offset..].iter().step_by(stride);
                    dst[position..position + count].iter_mut().zip(source).for_each(|(d, v)| *d = *v);
                });
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((frame.c_in * taps, positions))))
    }

    fn bwd(&self, _x: &Tensor, _patches: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&AddBack(self.0))?))
    }
}

/// The backward of [`Patches`]: (c_in·taps, positions) gradients summed into (batch, c_in, t, h, w).
struct AddBack(Frame);

impl CustomOp1 for AddBack {
    fn name(&self) -> &'static str {
        "conv-patches-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let frame = self.0;
        let grad = contiguous_f32(storage, layout)?;
        let (taps, positions, volume) = (frame.taps(), frame.positions(), frame.t * frame.h * frame.w);
        let stride = frame.geometry.stride.1;
        let mut out = vec![0f32; frame.batch * frame.c_in * volume];
        // One task per (batch, channel) volume: only that channel's rows write to it.
        out.par_chunks_mut(volume).enumerate().for_each(|(i, dst)| {
            let (b, ci) = (i / frame.c_in, i % frame.c_in);
            for tap in 0..taps {
                let row = &grad[(ci * taps + tap) * positions..][..positions];
                frame.for_each_run(b, tap, |position, offset, count| {
                    let target = dst[offset..].iter_mut().step_by(stride);
                    target.zip(&row[position..position + count]).for_each(|(d, v)| *d += *v);
                });
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((frame.batch, frame.c_in, frame.t, frame.h, frame.w))))
    }
}
