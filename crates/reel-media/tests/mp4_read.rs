//! Reading MP4 files back: reel's own files (with and without audio, odd sizes) return the frames
//! written, in order; ffmpeg's libx264 files (B-frames, index before or after the media) return what
//! ffmpeg itself decodes; bad files give errors that say what is wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::psnr;
use reel_media::mp4::{Mp4Writer, DEFAULT_QUALITY};
use reel_media::test_clip::sweep;
use reel_media::yuv::{i420_to_rgb, I420Planes, YuvColour};
use reel_media::{read_mp4_frames, read_mp4_info, VideoInfo};

/// Frames of a soft-edged coloured square moving 3 pixels a frame over a gradient: each frame differs
/// clearly from its neighbours, so a reordered or skipped frame shows. (Soft edges, as generated
/// video has: a hard-edged saturated square loses ~10 dB to 4:2:0 chroma alone.)
fn moving_square(width: usize, height: usize, frames: usize) -> Vec<Vec<u8>> {
    (0..frames)
        .map(|i| {
            let (left, top, side) = (2.0 + 3.0 * i as f32, 1.0 + i as f32, height as f32 / 2.0);
            // 1 inside the square, 0 outside, a 2-pixel ramp between.
            let cover = |v: f32, start: f32| ((v - start + 1.0) / 2.0).min((start + side - v + 1.0) / 2.0).clamp(0.0, 1.0);
            let mut frame = Vec::with_capacity(width * height * 3);
            for y in 0..height {
                for x in 0..width {
                    let a = cover(x as f32, left) * cover(y as f32, top);
                    let background = [40.0 + 4.0 * x as f32, 60.0 + 3.0 * y as f32, 150.0];
                    let square = [210.0, 90.0, 60.0];
                    frame.extend((0..3).map(|c| (background[c] * (1.0 - a) + square[c] * a).round().clamp(0.0, 255.0) as u8));
                }
            }
            frame
        })
        .collect()
}

fn write_mp4(path: &Path, frames: &[Vec<u8>], width: usize, height: usize, fps: f64, audio: bool) {
    let audio = audio.then(|| sweep(frames.len() as f64 / fps, 48000));
    let mut writer = Mp4Writer::create(path, width, height, fps, audio.as_ref(), DEFAULT_QUALITY).unwrap();
    for frame in frames {
        writer.push_frame(frame).unwrap();
    }
    writer.finish().unwrap();
}

fn read_all(path: &Path) -> (VideoInfo, Vec<Vec<u8>>) {
    let mut frames = Vec::new();
    let info = read_mp4_frames(path, &mut |rgb| {
        frames.push(rgb.to_vec());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    (info, frames)
}

/// The top-left `width` x `height` of an RGB frame `stride` pixels wide.
fn crop(frame: &[u8], stride: usize, width: usize, height: usize) -> Vec<u8> {
    (0..height).flat_map(|y| frame[y * stride * 3..(y * stride + width) * 3].to_vec()).collect()
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64
}

/// Each frame read matches the source frame at its own position: PSNR at least `bound`, and higher
/// than against the source frames before and after it, so a reordered or skipped frame fails.
fn assert_same_frames(source: &[Vec<u8>], read: &[Vec<u8>], bound: f64) {
    assert_eq!(read.len(), source.len());
    for (i, frame) in read.iter().enumerate() {
        let value = psnr(frame, &source[i]);
        eprintln!("frame {i}: {value:.2} dB");
        assert!(value >= bound, "frame {i}: PSNR {value:.2} dB is below {bound} dB");
        for j in [i.wrapping_sub(1), i + 1].into_iter().filter(|j| *j < source.len()) {
            let other = psnr(frame, &source[j]);
            assert!(other + 3.0 < value, "frame {i} read looks like source frame {j} ({other:.2} dB against {value:.2})");
        }
    }
}

/// ffmpeg's decode as planar YUV 4:2:0, turned into RGB by reel's own conversion: what a reader that
/// decodes exactly as ffmpeg does returns, frame for frame.
fn ffmpeg_frames_via_yuv(path: &Path, width: usize, height: usize, colour: YuvColour) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("ffmpeg must be installed for the media tests (apt-get install ffmpeg; .ci/run does it)");
    assert!(out.status.success(), "ffmpeg could not decode {}", path.display());
    let (luma, chroma) = (width * height, (width / 2) * (height / 2));
    out.stdout
        .chunks(luma + 2 * chroma)
        .map(|yuv| {
            let (y, uv) = yuv.split_at(luma);
            let (u, v) = uv.split_at(chroma);
            let planes = I420Planes { y, u, v, y_stride: width, uv_stride: width / 2 };
            let mut rgb = vec![0; width * height * 3];
            i420_to_rgb(&planes, width, height, colour, &mut rgb).unwrap();
            rgb
        })
        .collect()
}

/// The frames read are the ones ffmpeg decodes from the same file, in the same order (to rounding).
fn assert_decoded_as_ffmpeg_does(path: &Path, read: &[Vec<u8>], info: VideoInfo, colour: YuvColour) {
    let reference = ffmpeg_frames_via_yuv(path, info.width, info.height, colour);
    assert_eq!(read.len(), reference.len(), "ffmpeg decodes {} frames", reference.len());
    for (i, (ours, theirs)) in read.iter().zip(&reference).enumerate() {
        let worst = ours.iter().zip(theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 1, "frame {i} differs from ffmpeg's decode by up to {worst} levels");
    }
}

/// Per-frame PSNR bound of reel's own files read back. The reader adds no loss of its own (it
/// decodes exactly as ffmpeg does); the loss is the writer's. Its PSNR test sees 35+ dB on a
/// 320x192 natural clip; these tiny frames, half edges, measure 28.5-34 dB at the default quality.
const ROUND_TRIP_PSNR: f64 = 27.0;

#[test]
fn reel_files_read_back_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("square.mp4");
    let source = moving_square(48, 32, 10);
    write_mp4(&path, &source, 48, 32, 8.0, false);
    let header = read_mp4_info(&path).unwrap();
    assert_eq!(header, VideoInfo { width: 48, height: 32, fps: 8.0, frames: 10 });
    let (info, frames) = read_all(&path);
    assert_eq!(info, header);
    assert!(frames.iter().all(|f| f.len() == 48 * 32 * 3));
    assert_decoded_as_ffmpeg_does(&path, &frames, info, YuvColour::BT709);
    assert_same_frames(&source, &frames, ROUND_TRIP_PSNR);
}

#[test]
fn odd_sizes_read_back_as_the_even_size_written() {
    // The writer pads 33x17 to 34x18 by repeating the edge; the file says 34x18, so that is what
    // comes back, with the source in its top-left corner.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.mp4");
    let source = moving_square(33, 17, 7);
    write_mp4(&path, &source, 33, 17, 12.5, false);
    let (info, frames) = read_all(&path);
    assert_eq!(info, VideoInfo { width: 34, height: 18, fps: 12.5, frames: 7 });
    assert_decoded_as_ffmpeg_does(&path, &frames, info, YuvColour::BT709);
    let cropped: Vec<Vec<u8>> = frames.iter().map(|f| crop(f, 34, 33, 17)).collect();
    assert_same_frames(&source, &cropped, ROUND_TRIP_PSNR);
}

#[test]
fn files_with_audio_read_their_video() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with-audio.mp4");
    let source = moving_square(48, 32, 10);
    write_mp4(&path, &source, 48, 32, 8.0, true);
    let probe = common::probe(&path);
    common::stream(&probe, "audio");
    let (info, frames) = read_all(&path);
    assert_eq!(info, VideoInfo { width: 48, height: 32, fps: 8.0, frames: 10 });
    assert_decoded_as_ffmpeg_does(&path, &frames, info, YuvColour::BT709);
    assert_same_frames(&source, &frames, ROUND_TRIP_PSNR);
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed for the media tests (apt-get install ffmpeg; .ci/run does it)");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A libx264 file of ffmpeg's test pattern at its default settings (High profile, B-frames).
fn libx264_file(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "12", "-pix_fmt", "yuv420p"];
    args.extend(["-c:v", "libx264"]);
    args.extend(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

/// ffmpeg's own decode, as `ffmpeg -i FILE -f rawvideo -pix_fmt rgb24 -` gives it.
fn ffmpeg_rgb_frames(path: &Path, frame_bytes: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg could not decode {}", path.display());
    out.stdout.chunks(frame_bytes).map(|c| c.to_vec()).collect()
}

/// Picture types in decoding order ("I", "P", "B").
fn picture_types(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "frame=pict_type", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect()
}

fn top_level_boxes(path: &Path) -> Vec<String> {
    common::top_level_boxes(path).into_iter().filter(|b| b != "free").collect()
}

#[test]
fn libx264_files_with_b_frames_read_in_display_order() {
    let dir = tempfile::tempdir().unwrap();
    let at_end = libx264_file(dir.path(), "x264.mp4", &[]);
    let fast_start = libx264_file(dir.path(), "x264-faststart.mp4", &["-movflags", "+faststart"]);
    assert_eq!(top_level_boxes(&at_end), vec!["ftyp", "mdat", "moov"]);
    assert_eq!(top_level_boxes(&fast_start), vec!["ftyp", "moov", "mdat"]);
    let types = picture_types(&at_end);
    assert!(types.iter().any(|t| t == "B"), "the test needs B-frames, ffprobe sees {types:?}");

    for path in [&at_end, &fast_start] {
        let (info, frames) = read_all(path);
        assert_eq!(info, VideoInfo { width: 64, height: 48, fps: 10.0, frames: 12 });
        // Untagged small video is BT.601, as ffmpeg and players take it.
        assert_decoded_as_ffmpeg_does(path, &frames, info, YuvColour::BT601);
        // ffmpeg's plain RGB conversion takes the nearest chroma sample where reel interpolates: on
        // testsrc's hard-edged colour bars that alone makes about 10 levels of mean difference (its
        // own accurate conversion differs from its plain one by 9). Frames still match in order.
        let reference = ffmpeg_rgb_frames(path, 64 * 48 * 3);
        assert_eq!(frames.len(), reference.len());
        for (i, ours) in frames.iter().enumerate() {
            let diff = mean_abs_diff(ours, &reference[i]);
            assert!(diff < 12.0, "frame {i} differs from ffmpeg's RGB by {diff:.2} on average");
            for j in [i.wrapping_sub(1), i + 1].into_iter().filter(|j| *j < reference.len()) {
                assert!(mean_abs_diff(ours, &reference[j]) > diff, "frame {i} looks like ffmpeg's frame {j}");
            }
        }
    }
}

fn error_of(path: &Path) -> String {
    let info = read_mp4_info(path).err().map(|e| e.to_string());
    let frames = read_mp4_frames(path, &mut |_| Ok(())).err().map(|e| e.to_string());
    let message = frames.unwrap_or_else(|| panic!("{} read without an error", path.display()));
    if let Some(info) = info {
        assert_eq!(info, message);
    }
    assert!(message.contains(&path.display().to_string()), "the message names the file: {message}");
    message
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.mp4");
    assert!(error_of(&missing).contains("no such file"));

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "These are notes, not a video.\n").unwrap();
    assert!(error_of(&text).contains("not an MP4"));
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, "").unwrap();
    assert!(error_of(&empty).contains("empty"));
    assert!(error_of(dir.path()).contains("folder"));

    // Cut in the middle of the media data: with the index first (reel's layout) and last (ffmpeg's).
    let good = dir.path().join("good.mp4");
    write_mp4(&good, &moving_square(48, 32, 10), 48, 32, 8.0, false);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() - 400]).unwrap();
    let message = error_of(&cut);
    assert!(message.contains("truncated"), "{message}");
    let x264 = std::fs::read(libx264_file(dir.path(), "x264.mp4", &[])).unwrap();
    std::fs::write(&cut, &x264[..x264.len() / 2]).unwrap();
    assert!(error_of(&cut).contains("truncated"));

    // Another codec: the sample entry's type patched from avc1 to hev1.
    let stsd = find(&bytes, b"stsd");
    let entry = stsd + find(&bytes[stsd..], b"avc1");
    let mut hevc = bytes.clone();
    hevc[entry..entry + 4].copy_from_slice(b"hev1");
    let path = dir.path().join("hevc.mp4");
    std::fs::write(&path, &hevc).unwrap();
    let message = error_of(&path);
    assert!(message.contains("HEVC") && message.contains("libx264"), "{message}");

    // Audio only.
    let audio = dir.path().join("audio.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", audio.to_str().unwrap()]);
    assert!(error_of(&audio).contains("no video track"));

    // A damaged NAL length inside the first frame.
    let mut damaged = bytes.clone();
    let mdat = find(&bytes, b"mdat") + 4;
    damaged[mdat..mdat + 4].copy_from_slice(&[0x7f, 0, 0, 0]);
    std::fs::write(&path, &damaged).unwrap();
    assert!(error_of(&path).contains("damaged"));
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn errors_from_the_frame_callback_stop_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    write_mp4(&path, &moving_square(48, 32, 10), 48, 32, 8.0, false);
    let mut seen = 0;
    let err = read_mp4_frames(&path, &mut |_| {
        seen += 1;
        if seen == 3 {
            return Err(reel_media::MediaError::InvalidInput("enough".into()));
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!((err.to_string().as_str(), seen), ("enough", 3));
}

#[test]
fn damaged_indexes_never_panic() {
    // Every byte of the index flipped in turn, and the file cut at every length up to past the
    // index: each read ends in a result (any), never a panic.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    write_mp4(&good, &moving_square(48, 32, 4), 48, 32, 8.0, true);
    let bytes = std::fs::read(&good).unwrap();
    let mdat = find(&bytes, b"mdat");
    let path = dir.path().join("damaged.mp4");
    for at in 0..mdat {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let _ = read_mp4_info(&path);
        std::fs::write(&path, &bytes[..at]).unwrap();
        let _ = read_mp4_info(&path);
    }
    // Decoding through a damaged parameter set or frame, a few positions.
    for at in (mdat - 40..bytes.len()).step_by(97) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let _ = read_mp4_frames(&path, &mut |_| Ok(()));
    }
}
