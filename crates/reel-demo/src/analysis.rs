//! Reading a clip of the demo world back from its pixels: objects are found by colour against the
//! dark backdrop, followed from frame to frame, and described by colour, shape, motion and the
//! camera's move. Works on any RGB frames of the demo's size, rendered or generated.

use std::collections::HashMap;

use crate::world::{Camera, Colour, Motion, Shape, COLOURS, HEIGHT, WIDTH};

/// Backdrops are dark (no channel above ~95); every object colour has a channel of 160 or more.
pub const FOREGROUND_LEVEL: u8 = 128;
/// Components smaller than this are noise.
const MIN_AREA: usize = 8;
/// How far (RGB distance) a pixel may be from a named colour and still count as that colour.
const MAX_COLOUR_DISTANCE: f32 = 90.0;
/// Displacement (pixels over the clip) above which an object is moving.
const MOVE_THRESHOLD: f32 = 8.0;

/// One connected region of one named colour in one frame.
#[derive(Debug, Clone)]
pub struct Blob {
    pub colour: Colour,
    pub area: usize,
    pub centroid: (f32, f32),
    /// Area over the area of the circle through the farthest pixel: 1 for a disc, lower for
    /// squares, triangles, stars.
    pub roundness: f32,
    /// Background pixels enclosed by the region (a ring's hole).
    pub hole: usize,
    /// Area over the area of the convex hull: a star's notches make it low.
    pub solidity: f32,
    /// Orientation of the second moments, in radians (meaningful for elongated regions).
    pub orientation: f32,
    /// How elongated the second moments are (0 for isotropic shapes).
    pub anisotropy: f32,
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
            let (x, y) = (p % WIDTH, p / WIDTH);
            let neighbours = [(x > 0).then(|| p - 1), (x + 1 < WIDTH).then(|| p + 1), (y > 0).then(|| p - WIDTH), (y + 1 < HEIGHT).then(|| p + WIDTH)];
            for q in neighbours.into_iter().flatten() {
                if class[q] == Some(colour) && label[q] == usize::MAX {
                    label[q] = id;
                    stack.push(q);
                }
            }
        }
        regions.push((colour, pixels));
    }
    regions
        .into_iter()
        .enumerate()
        .filter(|(_, (_, pixels))| pixels.len() >= MIN_AREA)
        .map(|(id, (colour, pixels))| describe(COLOURS[colour], &pixels, &label, id))
        .collect()
}

fn describe(colour: Colour, pixels: &[usize], label: &[usize], id: usize) -> Blob {
    let area = pixels.len();
    let (mut sx, mut sy) = (0f32, 0f32);
    for p in pixels {
        sx += (p % WIDTH) as f32 + 0.5;
        sy += (p / WIDTH) as f32 + 0.5;
    }
    let centroid = (sx / area as f32, sy / area as f32);
    let (mut r_max, mut cxx, mut cyy, mut cxy) = (0f32, 0f32, 0f32, 0f32);
    for p in pixels {
        let dx = (p % WIDTH) as f32 + 0.5 - centroid.0;
        let dy = (p / WIDTH) as f32 + 0.5 - centroid.1;
        r_max = r_max.max((dx * dx + dy * dy).sqrt() + 0.5);
        cxx += dx * dx;
        cyy += dy * dy;
        cxy += dx * dy;
    }
    let roundness = area as f32 / (std::f32::consts::PI * r_max * r_max);
    let orientation = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
    let trace = cxx + cyy;
    let anisotropy = if trace > 0.0 { ((cxx - cyy).powi(2) + 4.0 * cxy * cxy).sqrt() / trace } else { 0.0 };
    let solidity = area as f32 / convex_hull_area(pixels).max(1.0);
    Blob { colour, area, centroid, roundness, hole: enclosed_background(pixels, label, id), solidity, orientation, anisotropy }
}

/// Area of the convex hull of the pixels' squares (Andrew's monotone chain over their corners).
fn convex_hull_area(pixels: &[usize]) -> f32 {
    let mut points: Vec<(i32, i32)> = pixels
        .iter()
        .flat_map(|p| {
            let (x, y) = ((p % WIDTH) as i32, (p / WIDTH) as i32);
            [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    let cross = |o: (i32, i32), a: (i32, i32), b: (i32, i32)| (a.0 - o.0) as i64 * (b.1 - o.1) as i64 - (a.1 - o.1) as i64 * (b.0 - o.0) as i64;
    let mut hull: Vec<(i32, i32)> = Vec::new();
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(i32, i32)>> = if pass == 0 { Box::new(points.iter()) } else { Box::new(points.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    let twice: i64 = (0..hull.len()).map(|i| {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        a.0 as i64 * b.1 as i64 - b.0 as i64 * a.1 as i64
    }).sum();
    (twice.abs() as f32) / 2.0
}

/// Background pixels inside the region's bounding box that cannot reach the box's border
/// without crossing the region.
fn enclosed_background(pixels: &[usize], label: &[usize], id: usize) -> usize {
    let (mut x0, mut y0, mut x1, mut y1) = (WIDTH, HEIGHT, 0, 0);
    for p in pixels {
        let (x, y) = (p % WIDTH, p / WIDTH);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
    let inside = |x: usize, y: usize| label[(y0 + y) * WIDTH + x0 + x] == id;
    let mut outside = vec![false; w * h];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for x in 0..w {
        stack.push((x, 0));
        stack.push((x, h - 1));
    }
    for y in 0..h {
        stack.push((0, y));
        stack.push((w - 1, y));
    }
    while let Some((x, y)) = stack.pop() {
        if outside[y * w + x] || inside(x, y) {
            continue;
        }
        outside[y * w + x] = true;
        if x > 0 {
            stack.push((x - 1, y));
        }
        if x + 1 < w {
            stack.push((x + 1, y));
        }
        if y > 0 {
            stack.push((x, y - 1));
        }
        if y + 1 < h {
            stack.push((x, y + 1));
        }
    }
    (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| !inside(x, y) && !outside[y * w + x]).count()
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

    /// The shape: a hole makes a ring, notches (low solidity) a star; otherwise roundness tells
    /// circles (about 0.9), squares (0.65) and triangles (0.43) apart. Medians over the frames.
    pub fn shape(&self) -> Shape {
        let seen = self.seen();
        let holes = seen.iter().filter(|b| b.hole * 20 >= b.area).count();
        if holes * 2 > seen.len() {
            return Shape::Ring;
        }
        let median = |values: Vec<f32>| {
            let mut values = values;
            values.sort_by(f32::total_cmp);
            values[values.len() / 2]
        };
        if median(seen.iter().map(|b| b.solidity).collect()) < 0.78 {
            return Shape::Star;
        }
        match median(seen.iter().map(|b| b.roundness).collect()) {
            m if m >= 0.80 => Shape::Circle,
            m if m >= 0.55 => Shape::Square,
            _ => Shape::Triangle,
        }
    }

    /// Apparent motion in the frame: translation, size change, hopping, turning or none.
    pub fn motion(&self) -> Motion {
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
        // Turning: the principal axis of an elongated view changes during the clip.
        let turning = seen.iter().any(|b| b.anisotropy > 0.15 && (b.orientation - first.orientation).abs() > 0.35)
            || seen.windows(2).any(|w| (w[1].roundness - w[0].roundness).abs() > 0.12);
        if turning {
            return Motion::Rotate;
        }
        Motion::Still
    }
}

/// Follows every colour that appears in at least a quarter of the frames.
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
    tracks
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
