//! A natural-looking synthetic clip and sound for media tests and `reel bench media`: smooth gradients that drift, a
//! soft-edged disc moving across, a rotating square and a fine texture; a tone sweep.
//! Not a flat colour, so codec losses show.

use crate::{Audio, VideoFrames};

/// `frames` frames of `width` x `height` at `fps`.
pub fn clip(width: u32, height: u32, frames: usize, fps: f64) -> VideoFrames {
    let (w, h) = (width as f32, height as f32);
    let data = (0..frames)
        .map(|i| {
            let t = i as f32 / frames.max(1) as f32;
            let (cx, cy) = (w * (0.2 + 0.6 * t), h * (0.5 + 0.25 * (6.0 * t).sin()));
            let radius = h * 0.18;
            let angle = t * std::f32::consts::PI;
            let (sx, sy) = (w * 0.7, h * 0.3);
            let mut frame = Vec::with_capacity((width * height * 3) as usize);
            for y in 0..height {
                for x in 0..width {
                    let (fx, fy) = (x as f32, y as f32);
                    let mut r = 40.0 + 150.0 * fx / w + 30.0 * (t * 3.0).sin();
                    let mut g = 60.0 + 120.0 * fy / h;
                    let mut b = 120.0 + 80.0 * ((fx + fy) / (w + h) + t).sin() + 6.0 * (fx * 0.7).sin() * (fy * 0.5).cos();
                    // Soft disc.
                    let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                    let disc = (1.0 - (d - radius).clamp(0.0, 3.0) / 3.0).clamp(0.0, 1.0);
                    r = r * (1.0 - disc) + 230.0 * disc;
                    g = g * (1.0 - disc) + 200.0 * disc;
                    b = b * (1.0 - disc) + 40.0 * disc;
                    // Rotating square.
                    let (dx, dy) = (fx - sx, fy - sy);
                    let (u, v) = (dx * angle.cos() + dy * angle.sin(), -dx * angle.sin() + dy * angle.cos());
                    if u.abs() < h * 0.12 && v.abs() < h * 0.12 {
                        (r, g, b) = (30.0, 160.0 + 40.0 * t, 90.0);
                    }
                    frame.extend([r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8));
                }
            }
            frame
        })
        .collect();
    VideoFrames::new(width, height, fps, data).expect("a valid clip")
}

/// `seconds` of a stereo tone sweep (left 220-880 Hz, right an octave above) at `sample_rate`.
pub fn sweep(seconds: f64, sample_rate: u32) -> Audio {
    let frames = (seconds * sample_rate as f64).round() as usize;
    let mut samples = Vec::with_capacity(frames * 2);
    let mut phase = [0f64; 2];
    for i in 0..frames {
        let t = i as f64 / frames as f64;
        let freq = 220.0 * 4f64.powf(t);
        for (c, octave) in [1.0, 2.0].into_iter().enumerate() {
            phase[c] += 2.0 * std::f64::consts::PI * freq * octave / sample_rate as f64;
            samples.push((0.4 * phase[c].sin()) as f32);
        }
    }
    Audio::new(sample_rate, 2, samples).expect("valid audio")
}
