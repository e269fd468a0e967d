//! The procedural world the demo model learns: one to three coloured shapes, never touching one
//! another, moving over a background while the camera holds, pans or zooms, each clip with a
//! caption drawn from a grammar with synonyms and varied word order. Seeded and deterministic: a
//! seed always gives the same clip.
//!
//! Some combinations (a colour with a shape, a shape with a motion) never occur in training; the
//! evaluator's prompts use exactly those, so its scores measure generalisation, not recall.

use crate::rng::Rng;

pub const WIDTH: usize = 64;
pub const HEIGHT: usize = 64;
pub const FRAMES: usize = 17;
pub const FPS: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Ring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Orange,
    Purple,
    Pink,
    Cyan,
    White,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    Small,
    Medium,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Motion {
    Left,
    Right,
    Up,
    Down,
    UpLeft,
    UpRight,
    DownLeft,
    DownRight,
    Bounce,
    Grow,
    Shrink,
    Rotate,
    Still,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackdropColour {
    DarkBlue,
    Black,
    DarkGreen,
    DarkGrey,
    Brown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    Solid,
    /// A vertical gradient to a second colour.
    Gradient(BackdropColour),
    Stripes,
    Checker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Camera {
    Static,
    PanLeft,
    PanRight,
    ZoomIn,
    ZoomOut,
}

pub const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star, Shape::Ring];
pub const COLOURS: [Colour; 9] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Orange,
    Colour::Purple,
    Colour::Pink,
    Colour::Cyan,
    Colour::White,
];
pub const SIZES: [Size; 3] = [Size::Small, Size::Medium, Size::Large];
pub const MOTIONS: [Motion; 13] = [
    Motion::Left,
    Motion::Right,
    Motion::Up,
    Motion::Down,
    Motion::UpLeft,
    Motion::UpRight,
    Motion::DownLeft,
    Motion::DownRight,
    Motion::Bounce,
    Motion::Grow,
    Motion::Shrink,
    Motion::Rotate,
    Motion::Still,
];
pub const BACKDROPS: [BackdropColour; 5] =
    [BackdropColour::DarkBlue, BackdropColour::Black, BackdropColour::DarkGreen, BackdropColour::DarkGrey, BackdropColour::Brown];
pub const CAMERAS: [Camera; 5] = [Camera::Static, Camera::PanLeft, Camera::PanRight, Camera::ZoomIn, Camera::ZoomOut];

/// (colour, shape) pairs that never appear in training.
pub const HELD_OUT_COLOUR_SHAPE: [(Colour, Shape); 7] = [
    (Colour::Red, Shape::Star),
    (Colour::Blue, Shape::Triangle),
    (Colour::Green, Shape::Ring),
    (Colour::Yellow, Shape::Square),
    (Colour::Purple, Shape::Circle),
    (Colour::Cyan, Shape::Star),
    (Colour::Orange, Shape::Circle),
];

/// (shape, motion) pairs that never appear in training.
pub const HELD_OUT_SHAPE_MOTION: [(Shape, Motion); 6] = [
    (Shape::Circle, Motion::UpLeft),
    (Shape::Square, Motion::Down),
    (Shape::Triangle, Motion::Right),
    (Shape::Star, Motion::Left),
    (Shape::Ring, Motion::Up),
    (Shape::Square, Motion::Grow),
];

impl Colour {
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [220.0, 40.0, 40.0],
            Colour::Green => [50.0, 200.0, 60.0],
            Colour::Blue => [50.0, 90.0, 240.0],
            Colour::Yellow => [240.0, 220.0, 40.0],
            Colour::Orange => [250.0, 140.0, 20.0],
            Colour::Purple => [160.0, 60.0, 210.0],
            Colour::Pink => [250.0, 130.0, 190.0],
            Colour::Cyan => [40.0, 220.0, 230.0],
            Colour::White => [245.0, 245.0, 245.0],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::Cyan => "cyan",
            Colour::White => "white",
        }
    }
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Ring => "ring",
        }
    }

    /// How far the shape of radius 1 reaches from its centre, at any turn: the radius of the disc
    /// that holds it.
    fn reach(self) -> f32 {
        match self {
            Shape::Circle | Shape::Ring | Shape::Star => 1.0,
            Shape::Square => 0.85 * std::f32::consts::SQRT_2,
            // Base corners at (+-0.95, 0.5) of the radius.
            Shape::Triangle => (0.95f32 * 0.95 + 0.5 * 0.5).sqrt(),
        }
    }

    /// Whether a rotation of this shape is visible.
    pub fn shows_rotation(self) -> bool {
        self.symmetry().is_some()
    }

    /// The smallest turn (radians) that leaves this shape unchanged; `None` for the round shapes,
    /// which every turn leaves unchanged.
    pub fn symmetry(self) -> Option<f32> {
        match self {
            Shape::Circle | Shape::Ring => None,
            Shape::Square => Some(90f32.to_radians()),
            Shape::Triangle => Some(120f32.to_radians()),
            Shape::Star => Some(72f32.to_radians()),
        }
    }

    /// Whether the point (`x`, `y`) lies inside this shape of `radius` centred at `centre`, turned
    /// by `angle` radians: the geometry the world draws with.
    pub fn covers(self, centre: (f32, f32), radius: f32, angle: f32, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - centre.0, y - centre.1);
        let (c, s) = (angle.cos(), angle.sin());
        // Into the shape's own frame.
        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
        let r = radius;
        match self {
            Shape::Circle => u * u + v * v <= r * r,
            Shape::Ring => {
                let d2 = u * u + v * v;
                d2 <= r * r && d2 >= (0.55 * r) * (0.55 * r)
            }
            Shape::Square => u.abs() <= 0.85 * r && v.abs() <= 0.85 * r,
            Shape::Triangle => {
                // Pointing up: apex at (0, -r), base at v = r / 2.
                let h = 1.5 * r;
                let vv = v + r;
                vv >= 0.0 && vv <= h && u.abs() <= vv / h * r * 0.95
            }
            Shape::Star => {
                let d = (u * u + v * v).sqrt();
                let theta = v.atan2(u) + std::f32::consts::FRAC_PI_2;
                // Five points: the radius alternates between r and 0.45 r.
                let phase = (theta * 5.0 / (2.0 * std::f32::consts::PI)).rem_euclid(1.0);
                let spike = (phase - 0.5).abs() * 2.0;
                d <= r * (0.45 + 0.55 * spike)
            }
        }
    }
}

impl Size {
    /// Radius in pixels.
    pub fn radius(self) -> f32 {
        match self {
            Size::Small => 5.5,
            Size::Medium => 8.0,
            Size::Large => 11.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

impl Motion {
    /// Displacement over the clip in pixels (x right, y down), for translating motions.
    pub fn displacement(self) -> (f32, f32) {
        let d = 22.0;
        let s = d * std::f32::consts::FRAC_1_SQRT_2;
        match self {
            Motion::Left => (-d, 0.0),
            Motion::Right => (d, 0.0),
            Motion::Up => (0.0, -d),
            Motion::Down => (0.0, d),
            Motion::UpLeft => (-s, -s),
            Motion::UpRight => (s, -s),
            Motion::DownLeft => (-s, s),
            Motion::DownRight => (s, s),
            _ => (0.0, 0.0),
        }
    }
}

impl BackdropColour {
    pub fn rgb(self) -> [f32; 3] {
        match self {
            BackdropColour::DarkBlue => [15.0, 25.0, 70.0],
            BackdropColour::Black => [8.0, 8.0, 10.0],
            BackdropColour::DarkGreen => [15.0, 55.0, 25.0],
            BackdropColour::DarkGrey => [50.0, 50.0, 55.0],
            BackdropColour::Brown => [70.0, 42.0, 20.0],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackdropColour::DarkBlue => "dark blue",
            BackdropColour::Black => "black",
            BackdropColour::DarkGreen => "dark green",
            BackdropColour::DarkGrey => "dark grey",
            BackdropColour::Brown => "brown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    pub motion: Motion,
    /// Centre at the first frame, in pixels.
    pub start: (f32, f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub objects: Vec<Object>,
    pub backdrop: BackdropColour,
    pub pattern: Pattern,
    pub camera: Camera,
}

/// Which combinations a scene may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Never a held-out combination.
    Train,
    /// At least one object with a held-out combination.
    HeldOut,
}

pub fn is_held_out(object: &Object) -> bool {
    HELD_OUT_COLOUR_SHAPE.contains(&(object.colour, object.shape))
        || HELD_OUT_SHAPE_MOTION.contains(&(object.shape, object.motion))
}

/// How often a scene is drawn with one, two or three objects, as cumulative probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectCounts {
    /// Probability of one object.
    one: f32,
    /// Probability of one or two objects.
    up_to_two: f32,
}

impl ObjectCounts {
    /// The world's own mix: 60% one object, 30% two, 10% three.
    pub const WORLD: ObjectCounts = ObjectCounts { one: 0.6, up_to_two: 0.9 };

    /// A mix from relative weights of one, two and three objects (`[1.0, 1.0, 1.0]`: a third each).
    pub fn from_weights(weights: [f32; 3]) -> Result<ObjectCounts, String> {
        let total: f32 = weights.iter().sum();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || total <= 0.0 {
            return Err(format!("object-count weights {weights:?} must be non-negative with a positive sum, as in 1,1,1"));
        }
        Ok(ObjectCounts { one: weights[0] / total, up_to_two: (weights[0] + weights[1]) / total })
    }

    /// The shares of one, two and three objects.
    pub fn shares(&self) -> [f32; 3] {
        [self.one, self.up_to_two - self.one, 1.0 - self.up_to_two]
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        match rng.f32() {
            p if p < self.one => 1,
            p if p < self.up_to_two => 2,
            _ => 3,
        }
    }
}

impl Scene {
    /// A random scene of the split with the world's own object counts (deterministic in `rng`).
    pub fn random(rng: &mut Rng, split: Split) -> Scene {
        Scene::random_with(rng, split, ObjectCounts::WORLD)
    }

    /// A random scene of the split whose object count is drawn from `counts`. A scene the split
    /// rejects is drawn again, count included, so scenes with more objects (more often held out)
    /// end up a little rarer than `counts` says.
    pub fn random_with(rng: &mut Rng, split: Split, counts: ObjectCounts) -> Scene {
        loop {
            let count = counts.draw(rng);
            let mut objects: Vec<Object> = Vec::with_capacity(count);
            while objects.len() < count {
                let object = random_object(rng, objects.len(), count);
                // Distinct colours so that objects can be told apart in captions and frames.
                if objects.iter().all(|o| o.colour != object.colour) {
                    objects.push(object);
                }
            }
            let held = objects.iter().any(is_held_out);
            let wanted = match split {
                Split::Train => !held,
                Split::HeldOut => held,
            };
            if !wanted || !separate(&mut objects) {
                continue;
            }
            let backdrop = *rng.choose(&BACKDROPS);
            let pattern = match rng.below(4) {
                0 => Pattern::Solid,
                1 => Pattern::Gradient(*rng.choose(&BACKDROPS)),
                2 => Pattern::Stripes,
                _ => Pattern::Checker,
            };
            let camera = if rng.f32() < 0.5 { Camera::Static } else { *rng.choose(&CAMERAS[1..]) };
            return Scene { objects, backdrop, pattern, camera };
        }
    }

    /// Frames as RGB8, `FRAMES` of `WIDTH` x `HEIGHT`.
    pub fn render(&self) -> Vec<Vec<u8>> {
        frame_times().map(|t| self.render_frame(t)).collect()
    }

    /// The view at time `t` in [0, 1]: pixel -> world coordinates.
    fn view(&self, t: f32) -> impl Fn(f32, f32) -> (f32, f32) {
        let (shift, zoom) = match self.camera {
            Camera::Static => (0.0, 1.0),
            Camera::PanLeft => (-14.0 * t, 1.0),
            Camera::PanRight => (14.0 * t, 1.0),
            Camera::ZoomIn => (0.0, 1.0 + 0.45 * t),
            Camera::ZoomOut => (0.0, 1.45 - 0.45 * t),
        };
        let (cx, cy) = (WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0);
        move |px, py| (cx + shift + (px - cx) / zoom, cy + (py - cy) / zoom)
    }

    fn render_frame(&self, t: f32) -> Vec<u8> {
        let view = self.view(t);
        let placed: Vec<Placed> = self.objects.iter().map(|o| place(o, t)).collect();
        let mut frame = Vec::with_capacity(WIDTH * HEIGHT * 3);
        // 2x2 supersampling for smooth edges.
        const OFFSETS: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
        for py in 0..HEIGHT {
            for px in 0..WIDTH {
                let mut sum = [0f32; 3];
                for (ox, oy) in OFFSETS {
                    let (wx, wy) = view(px as f32 + ox, py as f32 + oy);
                    let mut colour = self.background(wx, wy);
                    for p in &placed {
                        if p.contains(wx, wy) {
                            colour = p.colour;
                        }
                    }
                    for c in 0..3 {
                        sum[c] += colour[c] / 4.0;
                    }
                }
                frame.extend(sum.map(|v| v.round().clamp(0.0, 255.0) as u8));
            }
        }
        frame
    }

    fn background(&self, x: f32, y: f32) -> [f32; 3] {
        let base = self.backdrop.rgb();
        match self.pattern {
            Pattern::Solid => base,
            Pattern::Gradient(other) => {
                let a = (y / HEIGHT as f32).clamp(0.0, 1.0);
                let o = other.rgb();
                [0, 1, 2].map(|c| base[c] * (1.0 - a) + o[c] * a)
            }
            Pattern::Stripes => {
                let light = ((x / 6.0).floor() as i64).rem_euclid(2) == 0;
                base.map(|v| if light { v + 22.0 } else { v })
            }
            Pattern::Checker => {
                let light = ((x / 8.0).floor() as i64 + (y / 8.0).floor() as i64).rem_euclid(2) == 0;
                base.map(|v| if light { v + 22.0 } else { v })
            }
        }
    }
}

fn random_object(rng: &mut Rng, index: usize, count: usize) -> Object {
    let shape = *rng.choose(&SHAPES);
    let mut motion = *rng.choose(&MOTIONS);
    if motion == Motion::Rotate && !shape.shows_rotation() {
        motion = Motion::Still;
    }
    let (dx, dy) = motion.displacement();
    // Start where the motion keeps the object in view; several objects share the width.
    let lane = (index as f32 + 0.5) / count as f32;
    let x = 32.0 - dx / 2.0 + (lane - 0.5) * 30.0 + rng.range(-4.0, 4.0);
    let y = 32.0 - dy / 2.0 + rng.range(-6.0, 6.0);
    Object {
        shape,
        colour: *rng.choose(&COLOURS),
        size: if count > 1 { *rng.choose(&SIZES[..2]) } else { *rng.choose(&SIZES) },
        motion,
        start: (x, y),
    }
}

/// Pixels kept free between the discs that hold two objects.
const OBJECT_GAP: f32 = 2.0;
/// Where a moved object's centre may go, in both axes: the span the drawn starts keep to.
const CENTRE_SPAN: (f32, f32) = (5.0, 59.0);

/// Moves objects so that no two touch in any frame, each in turn to the free start nearest the one
/// drawn (objects already clear of the ones before them keep theirs). Without it, two thirds of the
/// clips with two objects and nearly all with three show objects on top of each other, which
/// teaches a model to draw them merged. Uses no randomness. False if some object finds no free
/// start (about one clip with three objects in a hundred).
fn separate(objects: &mut [Object]) -> bool {
    for i in 0..objects.len() {
        let (placed, rest) = objects.split_at_mut(i);
        let object = &mut rest[0];
        let free = |start: (f32, f32)| placed.iter().all(|other| apart(&Object { start, ..*object }, other));
        if free(object.start) {
            continue;
        }
        let (low, high) = CENTRE_SPAN;
        let steps = (high - low) as usize;
        let in_span = |start: (f32, f32)| {
            let moved = Object { start, ..*object };
            frame_times().all(|t| {
                let (x, y) = place(&moved, t).centre;
                (low..=high).contains(&x) && (low..=high).contains(&y)
            })
        };
        let drawn = object.start;
        let nearest = (0..=steps)
            .flat_map(|i| (0..=steps).map(move |j| (low + i as f32, low + j as f32)))
            .filter(|&start| in_span(start) && free(start))
            .min_by(|a, b| distance(*a, drawn).total_cmp(&distance(*b, drawn)));
        match nearest {
            Some(start) => object.start = start,
            None => return false,
        }
    }
    true
}

/// The time in [0, 1] of each of a clip's frames, first to last.
fn frame_times() -> impl Iterator<Item = f32> {
    (0..FRAMES).map(|f| f as f32 / (FRAMES - 1) as f32)
}

fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// Whether the discs that hold two objects stay [`OBJECT_GAP`] apart in every frame.
fn apart(a: &Object, b: &Object) -> bool {
    frame_times().all(|t| {
        let (pa, pb) = (place(a, t), place(b, t));
        distance(pa.centre, pb.centre) >= pa.radius * a.shape.reach() + pb.radius * b.shape.reach() + OBJECT_GAP
    })
}

/// An object at one moment: centre, radius, angle.
struct Placed {
    shape: Shape,
    colour: [f32; 3],
    centre: (f32, f32),
    radius: f32,
    angle: f32,
}

fn place(object: &Object, t: f32) -> Placed {
    let (dx, dy) = object.motion.displacement();
    let mut centre = (object.start.0 + dx * t, object.start.1 + dy * t);
    let mut radius = object.size.radius();
    let mut angle = 0.0;
    match object.motion {
        Motion::Bounce => centre.1 -= 12.0 * (2.0 * std::f32::consts::PI * t).sin().abs(),
        Motion::Grow => radius *= 0.6 + 0.8 * t,
        Motion::Shrink => radius *= 1.4 - 0.8 * t,
        Motion::Rotate => angle = std::f32::consts::FRAC_PI_2 * t,
        _ => {}
    }
    Placed { shape: object.shape, colour: object.colour.rgb(), centre, radius, angle }
}

impl Placed {
    fn contains(&self, x: f32, y: f32) -> bool {
        self.shape.covers(self.centre, self.radius, self.angle, x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_deterministic_and_respect_the_split() {
        let a = Scene::random(&mut Rng::new(7), Split::Train);
        let b = Scene::random(&mut Rng::new(7), Split::Train);
        assert_eq!(a, b);
        assert_eq!(a.render(), b.render());
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            assert!(!Scene::random(&mut rng, Split::Train).objects.iter().any(is_held_out));
            assert!(Scene::random(&mut rng, Split::HeldOut).objects.iter().any(is_held_out));
        }
    }

    #[test]
    fn object_count_weights_set_the_mix_of_drawn_scenes() {
        assert_eq!(ObjectCounts::from_weights([6.0, 3.0, 1.0]), Ok(ObjectCounts::WORLD));
        assert!(ObjectCounts::from_weights([1.0, -1.0, 1.0]).is_err());
        assert!(ObjectCounts::from_weights([0.0, 0.0, 0.0]).is_err());
        let counts = ObjectCounts::from_weights([1.0, 1.0, 2.0]).unwrap();
        let mut rng = Rng::new(4);
        let mut seen = [0usize; 3];
        for _ in 0..2000 {
            seen[Scene::random_with(&mut rng, Split::Train, counts).objects.len() - 1] += 1;
        }
        // Drawn 25% / 25% / 50%; rejected scenes, more often those with more objects, are drawn again.
        assert!(seen[0] > 400 && seen[0] < 700, "{seen:?}");
        assert!(seen[1] > 400 && seen[1] < 700, "{seen:?}");
        assert!(seen[2] > 700 && seen[2] < 1100, "{seen:?}");
    }

    /// Over many scenes with several objects, no pixel of any frame lies in two objects (checked
    /// with the geometry the world draws with, at twice the frame's resolution).
    #[test]
    fn objects_never_touch() {
        let mut rng = Rng::new(9);
        let mut checked = 0;
        while checked < 300 {
            let split = if checked % 2 == 0 { Split::Train } else { Split::HeldOut };
            let scene = Scene::random(&mut rng, split);
            if scene.objects.len() < 2 {
                continue;
            }
            checked += 1;
            for (f, t) in frame_times().enumerate() {
                let placed: Vec<Placed> = scene.objects.iter().map(|o| place(o, t)).collect();
                for y in 0..HEIGHT * 2 {
                    for x in 0..WIDTH * 2 {
                        let (x, y) = (x as f32 / 2.0, y as f32 / 2.0);
                        let covering = placed.iter().filter(|p| p.contains(x, y)).count();
                        assert!(covering <= 1, "frame {f} at ({x}, {y}): {scene:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn frames_have_the_clip_size_and_show_the_object() {
        let scene = Scene {
            objects: vec![Object { shape: Shape::Square, colour: Colour::Red, size: Size::Large, motion: Motion::Right, start: (20.0, 32.0) }],
            backdrop: BackdropColour::Black,
            pattern: Pattern::Solid,
            camera: Camera::Static,
        };
        let frames = scene.render();
        assert_eq!(frames.len(), FRAMES);
        assert!(frames.iter().all(|f| f.len() == WIDTH * HEIGHT * 3));
        let red_x = |frame: &[u8]| -> f32 {
            let xs: Vec<usize> = (0..WIDTH * HEIGHT).filter(|i| frame[i * 3] > 150 && frame[i * 3 + 1] < 100).map(|i| i % WIDTH).collect();
            xs.iter().sum::<usize>() as f32 / xs.len() as f32
        };
        assert!((red_x(&frames[0]) - 20.0).abs() < 1.0);
        assert!((red_x(&frames[FRAMES - 1]) - 42.0).abs() < 1.0, "moved right by 22 px");
    }
}
