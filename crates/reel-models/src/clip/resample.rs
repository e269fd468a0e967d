//! Pillow's resampling of 8-bit images (`Image.resize`; Pillow's src/libImaging/Resample.c), reproduced to
//! the byte: transformers' CLIP preprocessing resizes through Pillow, and the encoder sees the bytes it makes.
//!
//! Each axis is its own pass (horizontal first, unless the height shrinks much more than the width), and
//! each pass rounds and clips to 8 bits. An output pixel is a weighted sum of the input pixels under the
//! filter centred on it; when shrinking, the filter is widened by the scale factor (antialiasing). The
//! weights are normalised to sum to one and applied in fixed point with `PRECISION_BITS` fractional bits,
//! as Pillow applies them.

use std::f64::consts::PI;

/// Fractional bits of the fixed-point weights: 32 bits less 8 for the value and 2 for overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's convolution filters, by their `PIL.Image.Resampling` numbers as preprocessor configs store them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Filter {
    /// The filter of a `PIL.Image.Resampling` number; `None` for nearest (0, which Pillow computes by
    /// another algorithm) and for numbers that are not filters of Resample.c.
    pub fn from_pil(resample: i64) -> Option<Self> {
        match resample {
            1 => Some(Self::Lanczos),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            4 => Some(Self::Box),
            5 => Some(Self::Hamming),
            _ => None,
        }
    }

    /// Half-width of the filter at scale 1, in input pixels.
    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    /// The filter at `x`, with Pillow's expressions (in the same order, for the same rounding).
    fn weight(self, x: f64) -> f64 {
        let sinc = |x: f64| if x == 0.0 { 1.0 } else { (x * PI).sin() / (x * PI) };
        match self {
            Self::Box => f64::from(u8::from(x > -0.5 && x <= 0.5)),
            Self::Bilinear => match x.abs() {
                x if x < 1.0 => 1.0 - x,
                _ => 0.0,
            },
            Self::Hamming => match x.abs() {
                0.0 => 1.0,
                x if x >= 1.0 => 0.0,
                // Pillow writes the constants as C floats.
                x => (x * PI).sin() / (x * PI) * (0.54f32 as f64 + 0.46f32 as f64 * (x * PI).cos()),
            },
            Self::Bicubic => {
                // Keys' cubic convolution with a = -0.5.
                const A: f64 = -0.5;
                match x.abs() {
                    x if x < 1.0 => ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0,
                    x if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * A,
                    _ => 0.0,
                }
            }
            Self::Lanczos if (-3.0..3.0).contains(&x) => sinc(x) * sinc(x / 3.0),
            Self::Lanczos => 0.0,
        }
    }
}

/// The taps of one output pixel along an axis: the first input pixel and a fixed-point weight per pixel.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for resizing `in_size` pixels to `out_size`.
fn taps(in_size: usize, out_size: usize, filter: Filter) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) casts truncate toward zero; the clamps make that floor where it matters.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> =
                (first..end).map(|x| filter.weight((x as f64 - center + 0.5) * (1.0 / filter_scale))).collect();
            let total: f64 = raw.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 }
                })
                .collect();
            Taps { first, weights }
        })
        .collect()
}

/// One pass along the middle axis of `input`, laid out (outer, along, inner): every (outer, inner) line
/// of `along` values is resampled by `taps`, rounded and clipped to 8 bits.
fn pass(input: &[u8], outer: usize, inner: usize, taps: &[Taps]) -> Vec<u8> {
    let line = input.len() / outer;
    let mut output = Vec::with_capacity(outer * taps.len() * inner);
    for source in input.chunks_exact(line) {
        for tap in taps {
            for i in 0..inner {
                let sum = tap.weights.iter().enumerate().fold(1i32 << (PRECISION_BITS - 1), |sum, (k, &w)| {
                    sum + i32::from(source[(tap.first + k) * inner + i]) * w
                });
                output.push((sum >> PRECISION_BITS).clamp(0, 255) as u8);
            }
        }
    }
    output
}

/// Resizes an interleaved 8-bit image of `channels` channels, row-major, from `width` x `height` to
/// `new_width` x `new_height`, as Pillow's `Image.resize(size, filter)` does. An axis whose size does not
/// change is not resampled (as in Pillow), so the same size returns the image unchanged.
pub fn resize(
    pixels: &[u8],
    (width, height): (usize, usize),
    channels: usize,
    (new_width, new_height): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    assert_eq!(pixels.len(), width * height * channels, "resize: the pixels do not fill {width}x{height}x{channels}");
    let horizontal = |image: &[u8], rows: usize| pass(image, rows, channels, &taps(width, new_width, filter));
    let vertical = |image: &[u8], columns: usize| pass(image, 1, columns * channels, &taps(height, new_height, filter));
    // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height loses more than twice
    // as many pixels as the width does; the order changes the rounding in between.
    let lost = |from: usize, to: usize| from as isize - to as isize;
    let vertical_first = new_height < height && lost(height, new_height) > 2 * lost(width, new_width);
    match (new_width != width, new_height != height) {
        (false, false) => pixels.to_vec(),
        (true, false) => horizontal(pixels, height),
        (false, true) => vertical(pixels, width),
        (true, true) if vertical_first => horizontal(&vertical(pixels, width), new_height),
        (true, true) => vertical(&horizontal(pixels, height), new_width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_pixel_sum_to_one_in_fixed_point() {
        for filter in [Filter::Lanczos, Filter::Bilinear, Filter::Bicubic, Filter::Box, Filter::Hamming] {
            for (from, to) in [(45, 32), (20, 32), (7, 3), (3, 7)] {
                for tap in taps(from, to, filter) {
                    let sum: i32 = tap.weights.iter().sum();
                    assert!((sum - (1 << PRECISION_BITS)).abs() <= tap.weights.len() as i32, "{filter:?} {from}->{to}: {sum}");
                    assert!(tap.first + tap.weights.len() <= from);
                }
            }
        }
    }

    #[test]
    fn constant_images_stay_constant_and_same_size_is_a_copy() {
        let image = vec![200u8; 9 * 5 * 3];
        for filter in [Filter::Lanczos, Filter::Bicubic, Filter::Hamming] {
            assert!(resize(&image, (9, 5), 3, (4, 11), filter).iter().all(|&v| v == 200), "{filter:?}");
        }
        let ramp: Vec<u8> = (0..9 * 5 * 3).map(|i| i as u8).collect();
        assert_eq!(resize(&ramp, (9, 5), 3, (9, 5), Filter::Bicubic), ramp);
    }
}
