//! Burning subtitles into frames: white DejaVu Sans Bold with a dark outline, centred at the bottom
//! inside the title-safe area, wrapped to the frame's width. The font is embedded in the binary
//! (Bitstream Vera licence, see fonts/LICENSE-DejaVu.txt).

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

use super::Cue;
use crate::VideoFrames;

const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans-Bold.ttf");

/// Where and how large the text is, as fractions of the frame so that it reads the same at any size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubtitleStyle {
    /// Line height as a fraction of the frame's height.
    pub text_height: f32,
    /// Smallest line height in pixels, so that text stays legible on small frames.
    pub min_text_px: f32,
    /// Space kept free below the text, as a fraction of the height (title-safe: 5%).
    pub bottom_margin: f32,
    /// Space kept free left and right, as a fraction of the width (title-safe: 5%).
    pub side_margin: f32,
}

impl Default for SubtitleStyle {
    fn default() -> Self {
        Self { text_height: 0.06, min_text_px: 11.0, bottom_margin: 0.05, side_margin: 0.05 }
    }
}

/// A pixel rectangle, `x1`/`y1` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// Text coverage over the frame, with the box it touches.
struct TextMask {
    coverage: Vec<f32>,
    outline: Vec<f32>,
    area: PixelBox,
}

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT).expect("the embedded subtitle font is a valid TrueType file")
}

/// Width in pixels of `text` on one line.
fn line_width<F: Font>(font: &ab_glyph::PxScaleFont<&F>, text: &str) -> f32 {
    let mut width = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        previous = Some(id);
    }
    width
}

/// Greedy word wrap to `max_width`; a word longer than a line stands on its own line.
fn wrap<F: Font>(font: &ab_glyph::PxScaleFont<&F>, text: &str, max_width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if line.is_empty() || line_width(font, &candidate) <= max_width {
                line = candidate;
            } else {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Lays `text` out and rasterises it with its outline; `None` for blank text.
fn render_mask(width: u32, height: u32, text: &str, style: &SubtitleStyle) -> Option<TextMask> {
    let font = font();
    let max_width = width as f32 * (1.0 - 2.0 * style.side_margin);
    // Shrink the text (down to the legible minimum) until its longest word fits the line.
    let mut px = (height as f32 * style.text_height).max(style.min_text_px);
    let lines = loop {
        let scaled = font.as_scaled(PxScale::from(px));
        let lines = wrap(&scaled, text, max_width);
        let widest = lines.iter().map(|l| line_width(&scaled, l)).fold(0.0, f32::max);
        if widest <= max_width || px <= style.min_text_px {
            break lines;
        }
        px = (px * 0.9).max(style.min_text_px);
    };
    if lines.is_empty() {
        return None;
    }
    let scaled = font.as_scaled(PxScale::from(px));
    let outline_radius = (px * 0.08).round().max(1.0) as i64;
    let line_height = scaled.height() + scaled.line_gap();
    let bottom = height as f32 * (1.0 - style.bottom_margin) - outline_radius as f32;
    let first_baseline = bottom + scaled.descent() - line_height * (lines.len() - 1) as f32;

    let (w, h) = (width as usize, height as usize);
    let mut coverage = vec![0f32; w * h];
    let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    for (row, line) in lines.iter().enumerate() {
        let baseline = first_baseline + line_height * row as f32;
        let mut x = (width as f32 - line_width(&scaled, line)) / 2.0;
        let mut previous = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                x += scaled.kern(p, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(px, point(x, baseline));
            x += scaled.h_advance(id);
            let Some(outlined) = font.outline_glyph(glyph) else { continue };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, c| {
                let (px_x, px_y) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
                if (0..w as i64).contains(&px_x) && (0..h as i64).contains(&px_y) && c > 0.0 {
                    let cell = &mut coverage[px_y as usize * w + px_x as usize];
                    *cell = (*cell + c).min(1.0);
                    (x0, y0, x1, y1) = (x0.min(px_x), y0.min(px_y), x1.max(px_x + 1), y1.max(px_y + 1));
                }
            });
        }
    }
    if x0 > x1 {
        return None;
    }
    // The outline: the coverage dilated by a disc of `outline_radius`.
    let r = outline_radius;
    let area = PixelBox {
        x0: (x0 - r).max(0) as u32,
        y0: (y0 - r).max(0) as u32,
        x1: (x1 + r).min(w as i64) as u32,
        y1: (y1 + r).min(h as i64) as u32,
    };
    let mut outline = vec![0f32; w * h];
    for y in area.y0 as i64..area.y1 as i64 {
        for x in area.x0 as i64..area.x1 as i64 {
            let mut strongest = 0f32;
            for dy in -r..=r {
                for dx in -r..=r {
                    let (sx, sy) = (x + dx, y + dy);
                    if dx * dx + dy * dy <= r * r && (0..w as i64).contains(&sx) && (0..h as i64).contains(&sy) {
                        strongest = strongest.max(coverage[sy as usize * w + sx as usize]);
                    }
                }
            }
            // Doubled so that the thin anti-aliased edge of small text still gets a solid outline.
            outline[y as usize * w + x as usize] = (2.0 * strongest).min(1.0);
        }
    }
    Some(TextMask { coverage, outline, area })
}

/// The pixels that burning `text` into a `width` x `height` frame may change (`None` for blank text).
pub fn text_area(width: u32, height: u32, text: &str, style: &SubtitleStyle) -> Option<PixelBox> {
    render_mask(width, height, text, style).map(|m| m.area)
}

fn composite(frame: &mut [u8], width: u32, mask: &TextMask) {
    let w = width as usize;
    for y in mask.area.y0 as usize..mask.area.y1 as usize {
        for x in mask.area.x0 as usize..mask.area.x1 as usize {
            let (dark, light) = (mask.outline[y * w + x], mask.coverage[y * w + x]);
            for channel in &mut frame[(y * w + x) * 3..(y * w + x) * 3 + 3] {
                let outlined = *channel as f32 * (1.0 - dark);
                *channel = (outlined * (1.0 - light) + 255.0 * light).round() as u8;
            }
        }
    }
}

/// Burns `text` into one RGB frame.
pub fn burn_text(frame: &mut [u8], width: u32, height: u32, text: &str, style: &SubtitleStyle) {
    if let Some(mask) = render_mask(width, height, text, style) {
        composite(frame, width, &mask);
    }
}

/// Burns each cue into the frames shown while it is on screen (frame i shows at i / fps).
pub fn burn_cues(video: &mut VideoFrames, cues: &[Cue], style: &SubtitleStyle) {
    let (width, height, fps) = (video.width, video.height, video.fps);
    for cue in cues {
        let Some(mask) = render_mask(width, height, &cue.text, style) else { continue };
        for (i, frame) in video.frames.iter_mut().enumerate() {
            if cue.contains(i as f64 / fps) {
                composite(frame, width, &mask);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_frame(width: u32, height: u32) -> Vec<u8> {
        let mut state = 0x9e37_79b9u32;
        (0..width * height * 3)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn text_changes_only_its_area_inside_the_safe_margins() {
        let (width, height) = (320u32, 192u32);
        let style = SubtitleStyle::default();
        let original = noise_frame(width, height);
        let mut frame = original.clone();
        let text = "A red square crosses the frame while the narrator speaks at length";
        burn_text(&mut frame, width, height, text, &style);
        let area = text_area(width, height, text, &style).unwrap();
        let mut changed = 0;
        for y in 0..height {
            for x in 0..width {
                let i = ((y * width + x) * 3) as usize;
                if frame[i..i + 3] != original[i..i + 3] {
                    changed += 1;
                    assert!(x >= area.x0 && x < area.x1 && y >= area.y0 && y < area.y1, "pixel {x},{y} outside {area:?}");
                }
            }
        }
        assert!(changed > 500, "only {changed} pixels changed");
        assert!(area.x0 as f32 >= width as f32 * style.side_margin - 2.0 && area.x1 as f32 <= width as f32 * (1.0 - style.side_margin) + 2.0, "{area:?}");
        assert!(area.y1 as f32 <= height as f32 * (1.0 - style.bottom_margin) + 1.0, "{area:?}");
        assert!(area.y0 > height / 2, "text climbs into the upper half: {area:?}");
        // Long text wraps onto more than one line.
        let one_line = text_area(width, height, "Short", &style).unwrap();
        assert!(area.y1 - area.y0 > (one_line.y1 - one_line.y0) * 3 / 2, "{area:?} vs {one_line:?}");
    }

    #[test]
    fn text_is_white_with_a_dark_outline() {
        let (width, height) = (256u32, 128u32);
        let mut frame = vec![128u8; (width * height * 3) as usize];
        burn_text(&mut frame, width, height, "HELLO", &SubtitleStyle::default());
        assert!(frame.iter().any(|&v| v == 255), "no white text");
        assert!(frame.iter().any(|&v| v == 0), "no dark outline");
        assert!(text_area(width, height, "   ", &SubtitleStyle::default()).is_none());
    }

    #[test]
    fn cues_burn_only_their_frames() {
        let frames = vec![vec![90u8; 64 * 48 * 3]; 8];
        let mut video = VideoFrames::new(64, 48, 4.0, frames).unwrap();
        burn_cues(&mut video, &[Cue { start: 0.5, end: 1.0, text: "Hi".into() }], &SubtitleStyle::default());
        let touched: Vec<bool> = video.frames.iter().map(|f| f.iter().any(|&v| v != 90)).collect();
        assert_eq!(touched, [false, false, true, true, false, false, false, false]);
    }
}
