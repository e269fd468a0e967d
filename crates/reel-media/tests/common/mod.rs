//! ffprobe and ffmpeg (Debian's, installed by .ci/run) as the judges of the files reel writes.
//! They are test tools only: reel never runs them.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `ffprobe -show_streams -show_format -count_frames` as JSON.
pub fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed for the media tests (apt-get install ffmpeg; .ci/run does it)");
    assert!(out.status.success(), "ffprobe rejected {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first stream of `kind` ("video" or "audio").
pub fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

pub fn number(value: &serde_json::Value) -> f64 {
    match value {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

/// Decodes a video file to RGB24 frames with ffmpeg, converting as a colour-correct player does:
/// the BT.709 matrix and limited range the file declares, accurate rounding, interpolated chroma
/// (ffmpeg's default conversion cuts corners that cost about 2 dB).
pub fn decode_rgb(path: &Path, width: u32, height: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd+full_chroma_int+bicubic"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg must be installed for the media tests");
    assert!(out.status.success(), "ffmpeg could not decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks((width * height * 3) as usize).map(|c| c.to_vec()).collect()
}

/// Peak signal-to-noise ratio of 8-bit data, in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// Top-level box types of an MP4 file, in order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut boxes = vec![];
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        if size == 1 {
            size = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        }
        boxes.push(kind);
        at += size as usize;
    }
    boxes
}
