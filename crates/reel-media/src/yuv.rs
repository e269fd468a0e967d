//! RGB to planar YUV 4:2:0 with BT.709 coefficients in limited (TV) range: what H.264 players
//! expect of HD video, and what the MP4's colour tags declare.

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
    fn odd_sizes_are_padded_by_repeating_the_edge() {
        let rgb: Vec<u8> = (0..3 * 3 * 3).map(|i| (i * 9) as u8).collect();
        let yuv = Yuv420::from_rgb(&rgb, 3, 3);
        assert_eq!((yuv.width, yuv.height), (4, 4));
        assert_eq!(yuv.y[3], yuv.y[2], "the new column repeats the last");
        assert_eq!(yuv.y[12..16], yuv.y[8..12], "the new row repeats the last");
    }
}
