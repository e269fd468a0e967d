//! RGB to planar YUV 4:2:0 with BT.709 coefficients in limited (TV) range: what H.264 players
//! expect of HD video, and what the MP4's colour tags declare. And back, for decoded video, with
//! the matrix and range the file declares.

use crate::{MediaError, Result};

/// BT.709 luma weights of R, G and B.
const KR: f32 = 0.2126;
const KB: f32 = 0.0722;
const KG: f32 = 1.0 - KR - KB;

/// One frame in I420 layout. Width and height are even: odd source sizes are padded by repeating
/// the last column and row.
#[derive(Debug, Clone, PartialEq)]
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

/// The frame size H.264 encodes for a source size: rounded up to even.
pub fn even_size(width: usize, height: usize) -> (usize, usize) {
    (width + width % 2, height + height % 2)
}

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

impl Yuv420 {
    /// Converts row-major RGB8 of `width` x `height`.
    pub fn from_rgb(rgb: &[u8], width: usize, height: usize) -> Self {
        let (w, h) = even_size(width, height);
        let pixel = |x: usize, y: usize| -> [f32; 3] {
            let i = (y.min(height - 1) * width + x.min(width - 1)) * 3;
            [rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32]
        };
        let mut y_plane = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = pixel(x, y);
                y_plane[y * w + x] = clamp_u8(16.0 + 219.0 / 255.0 * (KR * r + KG * g + KB * b));
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        let mut u_plane = vec![0u8; cw * ch];
        let mut v_plane = vec![0u8; cw * ch];
        for cy in 0..ch {
            for cx in 0..cw {
                // The chroma of the 2x2 block's average colour.
                let mut sum = [0f32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = pixel(2 * cx + dx, 2 * cy + dy);
                    for c in 0..3 {
                        sum[c] += p[c] / 4.0;
                    }
                }
                let [r, g, b] = sum;
                let luma = KR * r + KG * g + KB * b;
                u_plane[cy * cw + cx] = clamp_u8(128.0 + 224.0 / 255.0 * (b - luma) / (2.0 * (1.0 - KB)));
                v_plane[cy * cw + cx] = clamp_u8(128.0 + 224.0 / 255.0 * (r - luma) / (2.0 * (1.0 - KR)));
            }
        }
        Self { width: w, height: h, y: y_plane, u: u_plane, v: v_plane }
    }
}

impl openh264::formats::YUVSource for Yuv420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// How a stream's YUV maps to RGB: the luma weights of its matrix, and whether it uses the full
/// 0-255 range (else limited: luma 16-235, chroma 16-240).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvColour {
    pub kr: f32,
    pub kb: f32,
    pub full_range: bool,
}

impl YuvColour {
    pub const BT709: Self = Self { kr: KR, kb: KB, full_range: false };
    pub const BT601: Self = Self { kr: 0.299, kb: 0.114, full_range: false };

    /// From a `matrix_coefficients` code of ISO/IEC 23091-2 (as `colr` boxes and H.264 VUI carry it);
    /// `None` when it is unspecified or a matrix this module does not know.
    pub fn from_matrix(code: u16, full_range: bool) -> Option<Self> {
        let (kr, kb) = match code {
            1 => (KR, KB),
            4 => (0.30, 0.11),
            5 | 6 => (0.299, 0.114),
            7 => (0.212, 0.087),
            9 | 10 => (0.2627, 0.0593),
            _ => return None,
        };
        Some(Self { kr, kb, full_range })
    }

    /// What players assume of untagged video: BT.601 below 720 lines, BT.709 from 720 up.
    pub fn guess(height: usize) -> Self {
        if height >= 720 {
            Self::BT709
        } else {
            Self::BT601
        }
    }
}

/// One I420 picture as a decoder holds it: three planes with their row strides (in bytes).
pub struct I420Planes<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
}

/// For each output position, the two nearest chroma samples and the weight of the second. Chroma
/// samples sit between each pair of luma samples (centred, as `from_rgb` averages them).
fn chroma_taps(len: usize) -> Vec<(usize, usize, f32)> {
    let last = len.div_ceil(2) - 1;
    (0..len)
        .map(|x| {
            let position = ((x as f32 - 0.5) / 2.0).max(0.0);
            let first = (position as usize).min(last);
            (first, (first + 1).min(last), position - first as f32)
        })
        .collect()
}

/// Converts the top-left `width` x `height` of `planes` to RGB8 in `out` (`width * height * 3`
/// bytes), interpolating chroma bilinearly. Fails if the planes are smaller than that.
pub fn i420_to_rgb(planes: &I420Planes, width: usize, height: usize, colour: YuvColour, out: &mut [u8]) -> Result<()> {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let fits = |plane: &[u8], stride: usize, w: usize, h: usize| h == 0 || (stride >= w && plane.len() >= (h - 1) * stride + w);
    if width == 0
        || height == 0
        || out.len() != width * height * 3
        || !fits(planes.y, planes.y_stride, width, height)
        || !fits(planes.u, planes.uv_stride, cw, ch)
        || !fits(planes.v, planes.uv_stride, cw, ch)
    {
        return Err(MediaError::InvalidInput(format!("a decoded picture is smaller than {width}x{height}")));
    }
    let (luma_scale, luma_offset, chroma_scale) =
        if colour.full_range { (1.0, 0.0, 1.0) } else { (255.0 / 219.0, 16.0, 255.0 / 224.0) };
    let (kr, kb) = (colour.kr, colour.kb);
    let kg = 1.0 - kr - kb;
    let columns = chroma_taps(width);
    let chroma = |plane: &[u8], (r0, r1, wy): (usize, usize, f32), (c0, c1, wx): (usize, usize, f32)| -> f32 {
        let at = |r: usize, c: usize| plane[r * planes.uv_stride + c] as f32;
        let top = at(r0, c0) * (1.0 - wx) + at(r0, c1) * wx;
        let bottom = at(r1, c0) * (1.0 - wx) + at(r1, c1) * wx;
        (top * (1.0 - wy) + bottom * wy - 128.0) * chroma_scale
    };
    for (y, row) in chroma_taps(height).into_iter().enumerate() {
        for (x, &column) in columns.iter().enumerate() {
            let luma = (planes.y[y * planes.y_stride + x] as f32 - luma_offset) * luma_scale;
            let (cb, cr) = (chroma(planes.u, row, column), chroma(planes.v, row, column));
            let r = luma + 2.0 * (1.0 - kr) * cr;
            let b = luma + 2.0 * (1.0 - kb) * cb;
            let g = (luma - kr * r - kb * b) / kg;
            let i = (y * width + x) * 3;
            out[i..i + 3].copy_from_slice(&[clamp_u8(r), clamp_u8(g), clamp_u8(b)]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_map_to_bt709_limited_range() {
        // White, black and pure red in BT.709 limited range.
        let rgb = [255, 255, 255, 0, 0, 0, 255, 0, 0, 255, 0, 0];
        let yuv = Yuv420::from_rgb(&rgb, 2, 2);
        assert_eq!(&yuv.y, &[235, 16, 63, 63]);
        let red = Yuv420::from_rgb(&[255, 0, 0].repeat(4), 2, 2);
        assert_eq!((red.y[0], red.u[0], red.v[0]), (63, 102, 240));
    }

    #[test]
    fn rgb_comes_back_from_yuv() {
        // A linear ramp survives RGB -> YUV 4:2:0 -> RGB to rounding inside the frame; at the edges,
        // where chroma cannot be interpolated further, within a few levels.
        let (w, h) = (10, 6);
        let pixel = |x: usize, y: usize| [20 + 8 * x, 40 + 8 * y, 200 - 4 * x - 2 * y].map(|c| c as u8);
        let rgb: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| pixel(x, y))).collect();
        let yuv = Yuv420::from_rgb(&rgb, w, h);
        let planes = I420Planes { y: &yuv.y, u: &yuv.u, v: &yuv.v, y_stride: yuv.width, uv_stride: yuv.width / 2 };
        let mut back = vec![0; w * h * 3];
        i420_to_rgb(&planes, w, h, YuvColour::BT709, &mut back).unwrap();
        for (i, (a, b)) in rgb.iter().zip(&back).enumerate() {
            let (x, y) = (i / 3 % w, i / 3 / w);
            let bound = if (1..w - 1).contains(&x) && (1..h - 1).contains(&y) { 2 } else { 8 };
            assert!(a.abs_diff(*b) <= bound, "pixel ({x}, {y}): {a} came back as {b}");
        }
        // Flat colours come back exactly, at odd sizes too; planes too small are an error, not a panic.
        let flat = [200u8, 30, 90].repeat(3 * 3);
        let yuv = Yuv420::from_rgb(&flat, 3, 3);
        let planes = I420Planes { y: &yuv.y, u: &yuv.u, v: &yuv.v, y_stride: 4, uv_stride: 2 };
        let mut back = vec![0; 3 * 3 * 3];
        i420_to_rgb(&planes, 3, 3, YuvColour::BT709, &mut back).unwrap();
        assert!(flat.iter().zip(&back).all(|(a, b)| a.abs_diff(*b) <= 1), "{back:?}");
        let mut big = vec![0; 5 * 5 * 3];
        assert!(i420_to_rgb(&planes, 5, 5, YuvColour::BT709, &mut big).is_err());
    }

    #[test]
    fn odd_sizes_are_padded_by_repeating_the_edge() {
        let rgb: Vec<u8> = (0..3 * 3 * 3).map(|i| (i * 9) as u8).collect();
        let yuv = Yuv420::from_rgb(&rgb, 3, 3);
        assert_eq!((yuv.width, yuv.height), (4, 4));
        assert_eq!(yuv.y[3], yuv.y[2], "the new column repeats the last");
        assert_eq!(yuv.y[12..16], yuv.y[8..12], "the new row repeats the last");
    }
}
