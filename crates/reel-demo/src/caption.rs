//! Captions of scenes from a small grammar: synonyms for every motion, backdrop and camera move,
//! optional sizes and three word orders, so the model learns the meaning rather than one sentence.

use crate::rng::Rng;
use crate::world::{Camera, Motion, Object, Pattern, Scene};

fn motion_phrases(motion: Motion) -> &'static [&'static str] {
    match motion {
        Motion::Left => &["drifts to the left", "moves left", "slides to the left", "glides leftward", "travels left"],
        Motion::Right => &["drifts to the right", "moves right", "slides to the right", "glides rightward", "travels right"],
        Motion::Up => &["rises", "moves up", "floats upward", "drifts up"],
        Motion::Down => &["falls", "moves down", "sinks", "drifts down"],
        Motion::UpLeft => &["moves up and to the left", "drifts diagonally up and left"],
        Motion::UpRight => &["moves up and to the right", "drifts diagonally up and right"],
        Motion::DownLeft => &["moves down and to the left", "drifts diagonally down and left"],
        Motion::DownRight => &["moves down and to the right", "drifts diagonally down and right"],
        Motion::Bounce => &["bounces", "hops up and down", "bounces in place"],
        Motion::Grow => &["grows", "gets bigger", "expands"],
        Motion::Shrink => &["shrinks", "gets smaller", "contracts"],
        Motion::Rotate => &["rotates", "spins", "turns slowly"],
        Motion::Still => &["sits still", "stays in place", "rests"],
    }
}

fn camera_phrases(camera: Camera) -> &'static [&'static str] {
    match camera {
        Camera::Static => &["", "", "the camera is static", "with a still camera"],
        Camera::PanLeft => &["the camera pans left", "the camera slowly pans to the left"],
        Camera::PanRight => &["the camera pans right", "the camera slowly pans to the right"],
        Camera::ZoomIn => &["the camera zooms in", "the camera slowly zooms in"],
        Camera::ZoomOut => &["the camera zooms out", "the camera slowly zooms out"],
    }
}

fn article(next: &str) -> &'static str {
    if next.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn object_phrase(object: &Object, rng: &mut Rng) -> String {
    let mut words = Vec::new();
    if rng.f32() < 0.7 {
        words.push(object.size.name());
    }
    words.push(object.colour.name());
    words.push(object.shape.name());
    let noun = words.join(" ");
    format!("{} {noun} {}", article(&noun), rng.choose(motion_phrases(object.motion)))
}

fn backdrop_phrase(scene: &Scene, rng: &mut Rng) -> String {
    let c = scene.backdrop.name();
    match scene.pattern {
        Pattern::Solid => {
            let options = [format!("over a {c} background"), format!("on a {c} backdrop"), format!("against a plain {c} background")];
            options[rng.below(options.len())].clone()
        }
        Pattern::Gradient(other) => {
            let o = other.name();
            let options = [format!("over a gradient from {c} to {o}"), format!("on a {c} to {o} gradient")];
            options[rng.below(options.len())].clone()
        }
        Pattern::Stripes => {
            let options = [format!("over {c} stripes"), format!("on a striped {c} background")];
            options[rng.below(options.len())].clone()
        }
        Pattern::Checker => {
            let options = [format!("over a {c} checkerboard"), format!("on a {c} checkered background")];
            options[rng.below(options.len())].clone()
        }
    }
}

/// One caption of `scene` (different draws give different wordings of the same scene).
pub fn caption(scene: &Scene, rng: &mut Rng) -> String {
    let objects: Vec<String> = scene.objects.iter().map(|o| object_phrase(o, rng)).collect();
    let objects = match objects.len() {
        1 => objects[0].clone(),
        2 => format!("{} and {}", objects[0], objects[1]),
        _ => format!("{}, {} and {}", objects[0], objects[1], objects[2]),
    };
    let backdrop = backdrop_phrase(scene, rng);
    let camera = *rng.choose(camera_phrases(scene.camera));
    let text = match (rng.below(3), camera.is_empty()) {
        (0, _) | (_, true) => format!("{objects} {backdrop}, {camera}"),
        (1, false) => format!("{backdrop}, {objects}; {camera}"),
        _ => format!("{camera}: {objects} {backdrop}"),
    };
    text.trim().trim_end_matches(',').trim().to_string()
}

/// Every word the grammar can produce, for the tokenizer's vocabulary.
pub fn vocabulary() -> Vec<String> {
    use crate::world::{BACKDROPS, CAMERAS, COLOURS, MOTIONS, SHAPES, SIZES};
    let mut text: Vec<String> = vec!["a an and over on against plain background backdrop gradient from to stripes striped checkerboard checkered".into()];
    text.extend(COLOURS.iter().map(|c| c.name().to_string()));
    text.extend(SHAPES.iter().map(|s| s.name().to_string()));
    text.extend(SIZES.iter().map(|s| s.name().to_string()));
    text.extend(BACKDROPS.iter().map(|b| b.name().to_string()));
    text.extend(MOTIONS.iter().flat_map(|m| motion_phrases(*m).iter().map(|p| p.to_string())));
    text.extend(CAMERAS.iter().flat_map(|c| camera_phrases(*c).iter().map(|p| p.to_string())));
    text.push(", ; :".into());
    let mut words: Vec<String> = text
        .iter()
        .flat_map(|t| crate::tokenizer::split_words(t))
        .collect();
    words.sort();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Split;

    #[test]
    fn captions_vary_and_use_only_the_vocabulary() {
        let vocabulary = vocabulary();
        let mut rng = Rng::new(3);
        let scene = Scene::random(&mut rng, Split::Train);
        let captions: std::collections::HashSet<String> = (0..30).map(|_| caption(&scene, &mut rng)).collect();
        assert!(captions.len() > 3, "{captions:?}");
        for _ in 0..300 {
            let scene = Scene::random(&mut rng, Split::Train);
            let text = caption(&scene, &mut rng);
            for word in crate::tokenizer::split_words(&text) {
                assert!(vocabulary.contains(&word), "'{word}' of '{text}' is not in the vocabulary");
            }
            for object in &scene.objects {
                assert!(text.contains(object.colour.name()) && text.contains(object.shape.name()), "{text}");
            }
        }
    }
}
