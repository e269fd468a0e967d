//! Reading a clip of the demo world back from its pixels: objects are found by colour against the
//! dark backdrop, followed from frame to frame, and described by colour, shape, motion and the
//! camera's move. Works on any RGB frames of the demo's size, rendered or generated.

use std::collections::HashMap;

use crate::world::{Camera, Colour, Motion, Shape, BACKDROPS, COLOURS, HEIGHT, SHAPES, WIDTH};

/// Backdrops are dark (no channel above ~95); every object colour has a channel of 160 or more.
pub const FOREGROUND_LEVEL: u8 = 128;
/// Components smaller than this are noise.
const MIN_AREA: usize = 8;
/// Pixels (in x and in y) within which a region counts as lying along another region's edge.
const EDGE_REACH: usize = 2;
/// A region with at least this share of its pixels along the edge of a larger region whose colour,
/// mixed with a backdrop, reads as the region's colour, and lying outside it, is that region's
/// blended edge (yellow fading into the backdrop reads orange), not an object of its own.
const EDGE_BLEND_SHARE: f32 = 0.6;
/// An edge is a band a pixel or two wide: at most this share of its pixels lie inside it (all eight
/// neighbours of its own), where a compact object of the same area has a core.
const EDGE_MAX_INTERIOR: f32 = 0.2;
/// How far (RGB distance) a pixel may be from a named colour and still count as that colour.
const MAX_COLOUR_DISTANCE: f32 = 90.0;
/// Displacement (pixels over the clip) above which an object is moving.
const MOVE_THRESHOLD: f32 = 8.0;
/// Turn (degrees over the clip) above which an object is rotating; the world turns its objects
/// by 90 degrees.
const MIN_TURN: f32 = 30.0;
/// Share of the frames below which a colour comes and goes: the world's objects stay in view.
const STEADY_PRESENCE: f32 = 0.9;
/// Share of the frames showing both in which a colour that comes and goes must touch a steadier
/// one, at no more than half its area, to be read as a tint of that object (see [`merge_tints`]).
const TINT_ATTACHED: f32 = 0.9;
/// RGB distance within which two named colours are neighbours, that a decoder's drift turns one
/// into the other: yellow and orange (83), red and orange, purple and pink, blue and purple, pink
/// and white, blue and cyan (131); the next pair, orange and pink, lies 170 apart.
const NEIGHBOUR_COLOURS: f32 = 150.0;

/// One connected region of one named colour in one frame.
#[derive(Debug, Clone)]
pub struct Blob {
    pub colour: Colour,
    pub area: usize,
    pub centroid: (f32, f32),
    /// The region's pixels, as indices into the frame.
    pub pixels: Vec<usize>,
}

/// Whether a pixel is bright enough to belong to an object rather than the dark backdrop.
pub fn is_object_pixel(rgb: &[u8]) -> bool {
    rgb.iter().any(|v| *v >= FOREGROUND_LEVEL)
}

/// The named colour of a pixel, when it is bright and near one (blends at edges are not).
fn pixel_colour(rgb: &[u8]) -> Option<usize> {
    if !is_object_pixel(rgb) {
        return None;
    }
    let distance = |c: &Colour| c.rgb().iter().zip(rgb).map(|(x, y)| (x - *y as f32).powi(2)).sum::<f32>();
    let (index, nearest) = COLOURS.iter().enumerate().min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))?;
    (distance(nearest) <= MAX_COLOUR_DISTANCE * MAX_COLOUR_DISTANCE).then_some(index)
}

/// The regions of one RGB frame: connected pixels of one named colour each.
pub fn blobs(frame: &[u8]) -> Vec<Blob> {
    let n = WIDTH * HEIGHT;
    let class: Vec<Option<usize>> = (0..n).map(|i| pixel_colour(&frame[3 * i..3 * i + 3])).collect();
    let mut label = vec![usize::MAX; n];
    let mut regions: Vec<(usize, Vec<usize>)> = Vec::new();
    for start in 0..n {
        let Some(colour) = class[start] else { continue };
        if label[start] != usize::MAX {
            continue;
        }
        // Flood fill over 4-connected pixels of the same colour.
        let id = regions.len();
        let mut stack = vec![start];
        let mut pixels = Vec::new();
        label[start] = id;
        while let Some(p) = stack.pop() {
            pixels.push(p);
            for q in side_neighbours(p) {
                if class[q] == Some(colour) && label[q] == usize::MAX {
                    label[q] = id;
                    stack.push(q);
                }
            }
        }
        regions.push((colour, pixels));
    }
    let kept: Vec<bool> = (0..regions.len()).map(|id| regions[id].1.len() >= MIN_AREA && !is_edge_blend(id, &regions, &label)).collect();
    regions
        .into_iter()
        .zip(kept)
        .filter(|(_, kept)| *kept)
        .map(|((colour, pixels), _)| describe(COLOURS[colour], pixels))
        .collect()
}

/// Whether colour `from` (an index into [`COLOURS`]), mixed with one of the world's backdrops at some
/// share, reads as the other colour `into`: yellow fades through orange, orange through red, white
/// through pink, pink through purple.
fn blends_into(from: usize, into: usize) -> bool {
    static BLENDS: std::sync::OnceLock<Vec<[bool; COLOURS.len()]>> = std::sync::OnceLock::new();
    let blends = BLENDS.get_or_init(|| {
        COLOURS
            .iter()
            .map(|colour| {
                let mut reached = [false; COLOURS.len()];
                for backdrop in BACKDROPS {
                    for step in 0..=100 {
                        let share = step as f32 / 100.0;
                        let mixed: Vec<u8> = colour.rgb().iter().zip(backdrop.rgb()).map(|(c, b)| (share * c + (1.0 - share) * b).round() as u8).collect();
                        if let Some(read) = pixel_colour(&mixed) {
                            reached[read] = true;
                        }
                    }
                }
                reached
            })
            .collect()
    });
    from != into && blends[from][into]
}

/// Whether region `id` of `regions` (colour index and pixels, `label` giving each pixel's region)
/// is the blended edge of another region: a thin band (see [`EDGE_MAX_INTERIOR`]) with most of its
/// pixels along the edge (see [`EDGE_BLEND_SHARE`]) of a larger region whose colour fades into its
/// own, and outside that region, farther from its centre on average than the region's own pixels
/// (a faded core inside a bright ring is the object).
fn is_edge_blend(id: usize, regions: &[(usize, Vec<usize>)], label: &[usize]) -> bool {
    let (colour, pixels) = &regions[id];
    let near = |p: usize| -> Vec<usize> {
        let (x, y) = (p % WIDTH, p / WIDTH);
        let mut found: Vec<usize> = (y.saturating_sub(EDGE_REACH)..=(y + EDGE_REACH).min(HEIGHT - 1))
            .flat_map(|ny| (x.saturating_sub(EDGE_REACH)..=(x + EDGE_REACH).min(WIDTH - 1)).map(move |nx| ny * WIDTH + nx))
            .map(|q| label[q])
            .filter(|other| *other != usize::MAX && regions[*other].1.len() > pixels.len() && blends_into(regions[*other].0, *colour))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    };
    let mut along: HashMap<usize, usize> = HashMap::new();
    for p in pixels {
        for other in near(*p) {
            *along.entry(other).or_default() += 1;
        }
    }
    if along.is_empty() {
        return false;
    }
    // An edge is thin: few of its pixels have all eight neighbours in it (a compact object's core does).
    let interior = pixels
        .iter()
        .filter(|p| {
            let (x, y) = ((**p % WIDTH) as isize, (**p / WIDTH) as isize);
            (-1..=1).all(|dy| {
                (-1..=1).all(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    (0..WIDTH as isize).contains(&nx) && (0..HEIGHT as isize).contains(&ny) && label[ny as usize * WIDTH + nx as usize] == id
                })
            })
        })
        .count();
    if interior as f32 > EDGE_MAX_INTERIOR * pixels.len() as f32 {
        return false;
    }
    along.into_iter().any(|(other, count)| {
        let centre = centroid(&regions[other].1);
        let spread = |of: &[usize]| of.iter().map(|p| ((p % WIDTH) as f32 + 0.5 - centre.0).hypot((p / WIDTH) as f32 + 0.5 - centre.1)).sum::<f32>() / of.len() as f32;
        count as f32 >= EDGE_BLEND_SHARE * pixels.len() as f32 && spread(pixels) > spread(&regions[other].1)
    })
}

fn describe(colour: Colour, pixels: Vec<usize>) -> Blob {
    Blob { colour, area: pixels.len(), centroid: centroid(&pixels), pixels }
}

/// The mean position (pixel centres) of a frame's `pixels`.
fn centroid(pixels: &[usize]) -> (f32, f32) {
    let (mut sx, mut sy) = (0f32, 0f32);
    for p in pixels {
        sx += (p % WIDTH) as f32 + 0.5;
        sy += (p / WIDTH) as f32 + 0.5;
    }
    (sx / pixels.len() as f32, sy / pixels.len() as f32)
}

/// One channel of `width` x `height` values blurred by a Gaussian of `sigma` pixels (separable,
/// cut at three sigma; the edges repeat outward). `sigma` 0 leaves the values as they are.
pub fn gaussian_blur(values: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return values.to_vec();
    }
    let reach = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-reach..=reach).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let pass = |input: &[f32], along_x: bool| -> Vec<f32> {
        let mut output = vec![0f32; input.len()];
        for y in 0..height as isize {
            for x in 0..width as isize {
                output[y as usize * width + x as usize] = (-reach..=reach)
                    .map(|d| {
                        let (sx, sy) = if along_x { ((x + d).clamp(0, width as isize - 1), y) } else { (x, (y + d).clamp(0, height as isize - 1)) };
                        kernel[(d + reach) as usize] * input[sy as usize * width + sx as usize]
                    })
                    .sum();
            }
        }
        output
    };
    pass(&pass(values, true), false)
}

/// Frames of a track whose regions are matched against the shape templates.
const SHAPE_FRAMES: usize = 5;
/// Blurs (Gaussian sigma, pixels) a template is tried at: a render's sharp edges, and the
/// softened ones a VAE's decoder draws, which round corners and fill a star's notches.
const TEMPLATE_BLURS: [f32; 2] = [0.0, 1.0];
/// Angles a template is tried at within its shape's symmetry, to read the shape (one region).
const SHAPE_TURNS: usize = 6;
/// Angles tried to follow an object's turning from frame to frame: finer than one frame's turn of
/// the world's slowest-looking rotation (a square's quarter turn over 17 frames, 5.6 degrees).
const TURNING_TURNS: usize = 18;
/// Supersampling of a template's coverage, per pixel side.
const TEMPLATE_SAMPLES: usize = 3;

/// How well `shape` explains a region, and turned how far: the best intersection over union
/// between the region and the world's `shape` drawn at the region's centroid with the region's
/// area, over `turns` angles spread evenly within the shape's symmetry and over
/// [`TEMPLATE_BLURS`], each template cut at half coverage as the region's pixels are cut at
/// [`FOREGROUND_LEVEL`]; with the angle (radians) it was found at.
fn template_fit(blob: &Blob, shape: Shape, turns: usize) -> (f32, f32) {
    let radius = (blob.area as f32 / unit_area(shape)).sqrt();
    // The template, blurred, stays within this window around the centroid.
    let reach = radius + 3.0 * TEMPLATE_BLURS.iter().copied().fold(0.0, f32::max) + 2.0;
    let clamp = |v: f32, size: usize| (v.max(0.0) as usize).min(size);
    let (x0, x1) = (clamp((blob.centroid.0 - reach).floor(), WIDTH), clamp((blob.centroid.0 + reach).ceil(), WIDTH));
    let (y0, y1) = (clamp((blob.centroid.1 - reach).floor(), HEIGHT), clamp((blob.centroid.1 + reach).ceil(), HEIGHT));
    let (w, h) = (x1 - x0, y1 - y0);
    if w == 0 || h == 0 {
        return (0.0, 0.0);
    }
    let mut region = vec![false; w * h];
    for p in &blob.pixels {
        let (x, y) = (p % WIDTH, p / WIDTH);
        if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
            region[(y - y0) * w + x - x0] = true;
        }
    }
    let (period, turns) = shape.symmetry().map_or((0.0, 1), |period| (period, turns));
    let mut best = (0f32, 0f32);
    for turn in 0..turns {
        let angle = period * turn as f32 / turns as f32;
        let coverage: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((x0 + i % w) as f32, (y0 + i / w) as f32);
                // Every shape lies within 1.25 radii of its centre (a square's corners reach 1.2).
                let (dx, dy) = (x + 0.5 - blob.centroid.0, y + 0.5 - blob.centroid.1);
                if (dx * dx + dy * dy).sqrt() > 1.25 * radius + 1.0 {
                    return 0.0;
                }
                let inside = (0..TEMPLATE_SAMPLES * TEMPLATE_SAMPLES)
                    .filter(|s| {
                        let (ox, oy) = ((s % TEMPLATE_SAMPLES) as f32 + 0.5, (s / TEMPLATE_SAMPLES) as f32 + 0.5);
                        shape.covers(blob.centroid, radius, angle, x + ox / TEMPLATE_SAMPLES as f32, y + oy / TEMPLATE_SAMPLES as f32)
                    })
                    .count();
                inside as f32 / (TEMPLATE_SAMPLES * TEMPLATE_SAMPLES) as f32
            })
            .collect();
        for blur in TEMPLATE_BLURS {
            let template = gaussian_blur(&coverage, w, h, blur);
            let drawn = template.iter().filter(|v| **v >= 0.5).count();
            let shared = template.iter().zip(&region).filter(|(v, inside)| **v >= 0.5 && **inside).count();
            // The region's pixels outside the window count against the template too.
            let overlap = shared as f32 / (drawn + blob.area - shared) as f32;
            if overlap > best.0 {
                best = (overlap, angle);
            }
        }
    }
    best
}

/// The area of `shape` at radius 1 (measured on a fine grid, once per shape).
fn unit_area(shape: Shape) -> f32 {
    static AREAS: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    let areas = AREAS.get_or_init(|| {
        const STEPS: usize = 400;
        let step = 2.0 / STEPS as f32;
        let at = |i: usize| -1.0 + (i as f32 + 0.5) * step;
        SHAPES
            .iter()
            .map(|s| (0..STEPS * STEPS).filter(|i| s.covers((0.0, 0.0), 1.0, 0.0, at(i % STEPS), at(i / STEPS))).count() as f32 * step * step)
            .collect()
    });
    areas[SHAPES.iter().position(|s| *s == shape).expect("a known shape")]
}

/// One object followed through the clip: its largest region of its colour in each frame.
#[derive(Debug, Clone)]
pub struct Track {
    pub colour: Colour,
    /// One entry per frame (None where the colour is absent).
    pub frames: Vec<Option<Blob>>,
}

impl Track {
    pub fn presence(&self) -> f32 {
        self.frames.iter().filter(|b| b.is_some()).count() as f32 / self.frames.len() as f32
    }

    fn seen(&self) -> Vec<&Blob> {
        self.frames.iter().flatten().collect()
    }

    /// The shape whose template matches the object best, summed over up to five frames spread
    /// through the clip (see [`template_fit`]).
    pub fn shape(&self) -> Shape {
        let seen = self.seen();
        let picked = SHAPE_FRAMES.min(seen.len());
        let frames: Vec<&Blob> = (0..picked).map(|i| seen[i * (seen.len() - 1) / (picked - 1).max(1)]).collect();
        let fit = |shape: Shape| frames.iter().map(|blob| template_fit(blob, shape, SHAPE_TURNS).0).sum::<f32>();
        SHAPES.into_iter().map(|shape| (shape, fit(shape))).max_by(|a, b| a.1.total_cmp(&b.1)).map(|(shape, _)| shape).expect("five shapes")
    }

    /// Apparent motion in the frame of an object read as `shape`: translation, size change, hopping,
    /// turning or none.
    pub fn motion(&self, shape: Shape) -> Motion {
        let seen = self.seen();
        let (first, last) = (seen[0], seen[seen.len() - 1]);
        let (dx, dy) = (last.centroid.0 - first.centroid.0, last.centroid.1 - first.centroid.1);
        let distance = (dx * dx + dy * dy).sqrt();
        let scale = (last.area as f32 / first.area as f32).sqrt();
        let rise = seen.iter().map(|b| first.centroid.1 - b.centroid.1).fold(0f32, f32::max);
        if distance >= MOVE_THRESHOLD && rise < distance * 1.5 {
            let angle = (-dy).atan2(dx).to_degrees();
            let sector = ((angle + 360.0 + 22.5) % 360.0 / 45.0) as usize;
            return [Motion::Right, Motion::UpRight, Motion::Up, Motion::UpLeft, Motion::Left, Motion::DownLeft, Motion::Down, Motion::DownRight][sector];
        }
        if scale >= 1.35 {
            return Motion::Grow;
        }
        if scale <= 0.74 {
            return Motion::Shrink;
        }
        if rise >= 6.0 {
            return Motion::Bounce;
        }
        if self.turns(shape) {
            return Motion::Rotate;
        }
        Motion::Still
    }

    /// Whether the object, read as `shape`, keeps turning one way: the angle its template fits best
    /// at, followed from frame to frame (each step taken as the shorter way round the shape's
    /// symmetry), must add up to a turn of [`MIN_TURN`] that is most of the steps' total length, so
    /// that the flicker of a still object's edges, which turns the fit back and forth, is not read
    /// as rotation.
    fn turns(&self, shape: Shape) -> bool {
        let Some(period) = shape.symmetry() else { return false };
        let angles: Vec<f32> = self.seen().iter().map(|blob| template_fit(blob, shape, TURNING_TURNS).1).collect();
        let steps: Vec<f32> = angles.windows(2).map(|w| (w[1] - w[0] + 1.5 * period).rem_euclid(period) - 0.5 * period).collect();
        let net = steps.iter().sum::<f32>().abs();
        let travelled = steps.iter().map(|s| s.abs()).sum::<f32>();
        net >= MIN_TURN.to_radians() && net >= 0.6 * travelled
    }
}

/// Follows every colour that appears in at least a quarter of the frames; a tint joins the object
/// it tints (see [`merge_tints`]).
pub fn tracks(frames: &[Vec<u8>]) -> Vec<Track> {
    let per_frame: Vec<Vec<Blob>> = frames.iter().map(|f| blobs(f)).collect();
    let mut by_colour: HashMap<Colour, Vec<Option<Blob>>> = HashMap::new();
    for (i, found) in per_frame.iter().enumerate() {
        for blob in found {
            let entry = by_colour.entry(blob.colour).or_insert_with(|| vec![None; frames.len()]);
            if entry[i].as_ref().is_none_or(|b| b.area < blob.area) {
                entry[i] = Some(blob.clone());
            }
        }
    }
    let mut tracks: Vec<Track> = by_colour
        .into_iter()
        .map(|(colour, frames)| Track { colour, frames })
        .filter(|t| t.presence() >= 0.25)
        .collect();
    tracks.sort_by_key(|t| COLOURS.iter().position(|c| *c == t.colour));
    merge_tints(&mut tracks);
    tracks
}

/// Joins each tint to the object it tints: a colour seen in only part of the clip (below
/// [`STEADY_PRESENCE`]) whose regions, in nearly every frame that also shows a neighbouring colour
/// (see [`NEIGHBOUR_COLOURS`]) seen at least as often, touch that colour's region and are at most
/// half its size (see [`TINT_ATTACHED`]). That is one object whose colour drifts over part or, for
/// a few frames, all of it, as a decoder draws them (a red circle with an orange side, a blue
/// triangle with a cyan base), not a second object; the world's objects stay in view, or come and
/// go apart from an object of a neighbouring colour or behind one of another colour, so they are
/// never tints, and two objects drawn side by side are alike in size.
fn merge_tints(tracks: &mut Vec<Track>) {
    while let Some((tint, host)) = (0..tracks.len()).find_map(|t| tint_host(tracks, t).map(|host| (t, host))) {
        let tint = tracks.remove(tint);
        let host = tracks.iter_mut().find(|t| t.colour == host).expect("the host track stays");
        for (slot, part) in host.frames.iter_mut().zip(tint.frames) {
            match (slot.as_mut(), part) {
                (Some(blob), Some(part)) => {
                    let pixels = [std::mem::take(&mut blob.pixels), part.pixels].concat();
                    *blob = describe(blob.colour, pixels);
                }
                (None, Some(part)) => *slot = Some(part),
                (_, None) => {}
            }
        }
    }
}

/// The colour of the object that track `t` of `tracks` is a tint of (see [`merge_tints`]), if any.
fn tint_host(tracks: &[Track], t: usize) -> Option<Colour> {
    let track = &tracks[t];
    if track.presence() >= STEADY_PRESENCE {
        return None;
    }
    let neighbours = |host: &Track| {
        let (a, b) = (track.colour.rgb(), host.colour.rgb());
        a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt() <= NEIGHBOUR_COLOURS
    };
    tracks.iter().enumerate().filter(|(h, host)| *h != t && host.presence() >= track.presence() && neighbours(host)).find_map(|(_, host)| {
        let together: Vec<bool> = track
            .frames
            .iter()
            .zip(&host.frames)
            .filter_map(|(part, whole)| {
                let (part, whole) = (part.as_ref()?, whole.as_ref()?);
                Some(2 * part.area <= whole.area && touches(part, whole))
            })
            .collect();
        let touching = together.iter().filter(|t| **t).count();
        (!together.is_empty() && touching as f32 >= TINT_ATTACHED * together.len() as f32).then_some(host.colour)
    })
}

/// Whether a pixel of `a` is next to (left, right, above or below) a pixel of `b`.
fn touches(a: &Blob, b: &Blob) -> bool {
    let mut in_b = vec![false; WIDTH * HEIGHT];
    for p in &b.pixels {
        in_b[*p] = true;
    }
    a.pixels.iter().any(|p| side_neighbours(*p).any(|q| in_b[q]))
}

/// The pixels left of, right of, above and below pixel `p` that lie in the frame.
fn side_neighbours(p: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (p % WIDTH, p / WIDTH);
    [(x > 0).then(|| p - 1), (x + 1 < WIDTH).then(|| p + 1), (y > 0).then(|| p - WIDTH), (y + 1 < HEIGHT).then(|| p + WIDTH)].into_iter().flatten()
}

/// The camera's move, read from objects that do not move in the scene: a pan carries them across
/// the frame, a zoom scales them.
pub fn camera_from_still_objects(tracks: &[Track]) -> Camera {
    let mut dxs = Vec::new();
    let mut scales = Vec::new();
    for track in tracks {
        let seen = track.seen();
        if seen.len() < 2 {
            continue;
        }
        let (first, last) = (seen[0], seen[seen.len() - 1]);
        dxs.push(last.centroid.0 - first.centroid.0);
        scales.push((last.area as f32 / first.area as f32).sqrt());
    }
    if dxs.is_empty() {
        return Camera::Static;
    }
    let dx = dxs.iter().sum::<f32>() / dxs.len() as f32;
    let scale = scales.iter().sum::<f32>() / scales.len() as f32;
    if scale >= 1.2 {
        Camera::ZoomIn
    } else if scale <= 0.83 {
        Camera::ZoomOut
    } else if dx >= 6.0 {
        // The view moves left, so the world appears to move right.
        Camera::PanLeft
    } else if dx <= -6.0 {
        Camera::PanRight
    } else {
        Camera::Static
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(colour: Colour) -> usize {
        COLOURS.iter().position(|c| *c == colour).expect("a named colour")
    }

    /// A frame of `backdrop` with rectangles painted in order: (colour, left, top, width, height).
    fn frame(backdrop: [u8; 3], rectangles: &[([u8; 3], usize, usize, usize, usize)]) -> Vec<u8> {
        let mut frame: Vec<u8> = backdrop.iter().copied().cycle().take(3 * WIDTH * HEIGHT).collect();
        for (rgb, left, top, width, height) in rectangles {
            for y in *top..top + height {
                for x in *left..left + width {
                    frame[3 * (y * WIDTH + x)..3 * (y * WIDTH + x) + 3].copy_from_slice(rgb);
                }
            }
        }
        frame
    }

    fn rgb(colour: Colour) -> [u8; 3] {
        colour.rgb().map(|v| v as u8)
    }

    #[test]
    fn colours_blend_only_into_those_between_them_and_the_backdrops() {
        assert!(blends_into(index(Colour::Yellow), index(Colour::Orange)));
        assert!(blends_into(index(Colour::Orange), index(Colour::Red)));
        assert!(!blends_into(index(Colour::Orange), index(Colour::Yellow)), "blending darkens, it never brightens");
        assert!(!blends_into(index(Colour::Blue), index(Colour::Cyan)));
        assert!(!blends_into(index(Colour::Red), index(Colour::Red)));
    }

    /// A yellow square whose edge fades into a brown backdrop through orange is one object; an
    /// orange square of its own, a cyan one touching a larger blue one and a red one inside an orange
    /// one are objects too.
    #[test]
    fn a_blended_edge_is_not_an_object() {
        let brown = [70, 42, 20];
        let faded_yellow = [200, 150, 30];
        assert_eq!(pixel_colour(&faded_yellow), Some(index(Colour::Orange)), "the edge colour must read orange for this test");
        let ringed = frame(brown, &[(faded_yellow, 10, 10, 14, 14), (rgb(Colour::Yellow), 11, 11, 12, 12)]);
        let found: Vec<Colour> = blobs(&ringed).iter().map(|b| b.colour).collect();
        assert_eq!(found, vec![Colour::Yellow]);
        let apart = frame(brown, &[(rgb(Colour::Yellow), 10, 10, 12, 12), (rgb(Colour::Orange), 40, 40, 8, 8)]);
        assert_eq!(blobs(&apart).len(), 2);
        let touching = frame(brown, &[(rgb(Colour::Blue), 10, 10, 14, 14), (rgb(Colour::Cyan), 24, 12, 4, 4)]);
        let mut found: Vec<Colour> = blobs(&touching).iter().map(|b| b.colour).collect();
        found.sort_by_key(|c| index(*c));
        assert_eq!(found, vec![Colour::Blue, Colour::Cyan]);
        // Orange fades through red, but a red core inside an orange ring lies inside it, not along
        // its outer edge: the core stays.
        let cored = frame(brown, &[(rgb(Colour::Orange), 10, 10, 14, 14), (rgb(Colour::Red), 14, 14, 6, 6)]);
        assert!(blobs(&cored).iter().any(|b| b.colour == Colour::Red), "the red core was taken for an edge");
        // A block three pixels thick against a yellow one has a core of its own: an object.
        let beside = frame(brown, &[(rgb(Colour::Yellow), 10, 10, 12, 12), (rgb(Colour::Orange), 22, 12, 3, 8)]);
        assert!(blobs(&beside).iter().any(|b| b.colour == Colour::Orange), "the thick block was taken for an edge");
    }

    /// A red square with an orange side in every other frame, drawn all orange in its last frame,
    /// is one red object seen throughout, its side part of it. The same orange block apart from the
    /// square, a green one in its place (not a colour red drifts into), a cyan square that stays
    /// beside a blue one through the clip and an orange square of nearly the red one's size beside
    /// it in most frames are objects of their own.
    #[test]
    fn a_colour_that_comes_and_goes_on_an_object_is_a_tint_of_it() {
        let black = [0, 0, 0];
        let clip = |extra: ([u8; 3], usize, usize, usize, usize)| -> Vec<Vec<u8>> {
            (0..17)
                .map(|f| {
                    let square = (rgb(Colour::Red), 10 + f, 20, 12, 12);
                    let moved = (extra.0, extra.1 + f, extra.2, extra.3, extra.4);
                    if f % 2 == 0 { frame(black, &[square, moved]) } else { frame(black, &[square]) }
                })
                .collect()
        };
        let mut drifting = clip((rgb(Colour::Orange), 22, 22, 3, 8));
        drifting[16] = frame(black, &[(rgb(Colour::Orange), 26, 20, 12, 12)]);
        let tinted = tracks(&drifting);
        assert_eq!(tinted.iter().map(|t| t.colour).collect::<Vec<_>>(), vec![Colour::Red]);
        assert_eq!(tinted[0].presence(), 1.0, "the all-orange frame is the square's");
        assert_eq!(tinted[0].frames[0].as_ref().map(|b| b.area), Some(12 * 12 + 3 * 8), "the side joins the square");
        assert_eq!(tinted[0].frames[1].as_ref().map(|b| b.area), Some(12 * 12));
        let apart = tracks(&clip((rgb(Colour::Orange), 30, 22, 3, 8)));
        assert_eq!(apart.iter().map(|t| t.colour).collect::<Vec<_>>(), vec![Colour::Red, Colour::Orange]);
        let other = tracks(&clip((rgb(Colour::Green), 22, 22, 3, 8)));
        assert_eq!(other.iter().map(|t| t.colour).collect::<Vec<_>>(), vec![Colour::Red, Colour::Green]);
        let beside: Vec<Vec<u8>> = (0..17).map(|_| frame(black, &[(rgb(Colour::Blue), 10, 10, 14, 14), (rgb(Colour::Cyan), 24, 12, 6, 6)])).collect();
        assert_eq!(tracks(&beside).iter().map(|t| t.colour).collect::<Vec<_>>(), vec![Colour::Blue, Colour::Cyan]);
        // An orange square of nearly the red one's size beside it from the fourth frame on.
        let pair: Vec<Vec<u8>> = (0..17)
            .map(|f| {
                let red = (rgb(Colour::Red), 10 + f, 20, 12, 12);
                if f < 3 { frame(black, &[red]) } else { frame(black, &[red, (rgb(Colour::Orange), 22 + f, 20, 10, 10)]) }
            })
            .collect();
        let pair = tracks(&pair);
        assert_eq!(pair.iter().map(|t| t.colour).collect::<Vec<_>>(), vec![Colour::Red, Colour::Orange]);
    }
}
