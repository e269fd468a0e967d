//! GIF, animated WebP, WAV, thumbnails and spritesheets, checked by decoding them back.

mod common;

use common::{number, probe, psnr, stream};
use image::AnimationDecoder;
use reel_media::test_clip::{clip, sweep};
use reel_media::thumbnail::{spritesheet, thumbnail, write_still, StillFormat, ThumbnailFrame};
use reel_media::wav::{read_wav, write_wav};
use reel_media::{write_video, VideoFormat, VideoOptions};

#[test]
fn animated_gif_has_every_frame_and_the_right_duration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.gif");
    let video = clip(96, 64, 17, 16.0);
    write_video(&video, None, &path, VideoOptions::default()).unwrap();
    let info = probe(&path);
    let v = stream(&info, "video");
    assert_eq!(v["codec_name"], "gif");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(96), Some(64)));
    assert_eq!(v["nb_read_frames"], "17");
    assert!((number(&info["format"]["duration"]) - 17.0 / 16.0).abs() <= 0.011, "{}", info["format"]["duration"]);
}

#[test]
fn animated_webp_decodes_to_the_frames_with_their_timing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.webp");
    let video = clip(128, 80, 9, 8.0);
    write_video(&video, None, &path, VideoOptions::default()).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let frames = image::codecs::webp::WebPDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 9);
    for (frame, source) in frames.iter().zip(&video.frames) {
        let (numer, denom) = frame.delay().numer_denom_ms();
        assert_eq!(numer / denom, 125, "8 fps frames last 125 ms");
        let rgb: Vec<u8> = frame.buffer().pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
        let quality = psnr(&rgb, source);
        assert!(quality > 30.0, "animated WebP frame PSNR {quality:.1} dB");
    }
    // Lossy: far smaller than the raw frames.
    assert!(std::fs::metadata(&path).unwrap().len() < (128 * 80 * 3 * 9 / 4) as u64);
}

#[test]
fn wav_round_trips_with_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let audio = sweep(1.25, 22050);
    write_wav(&audio, &path).unwrap();
    let info = probe(&path);
    let a = stream(&info, "audio");
    assert_eq!(a["codec_name"], "pcm_s16le");
    assert_eq!(a["sample_rate"], "22050");
    assert!((number(&a["duration"]) - 1.25).abs() < 1e-3);
    let back = read_wav(&path).unwrap();
    assert_eq!((back.sample_rate, back.channels, back.frames()), (22050, 2, audio.frames()));
    let error = back.samples.iter().zip(&audio.samples).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(error < 1.0 / 16000.0, "16-bit round trip error {error}");
}

#[test]
fn thumbnails_show_the_chosen_frame() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(160, 96, 11, 16.0);
    for (name, which, index) in [("first.jpg", ThumbnailFrame::First, 0), ("middle.webp", ThumbnailFrame::Middle, 5)] {
        let path = dir.path().join(name);
        write_still(&thumbnail(&video, which), &path).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (160, 96));
        let quality = psnr(image.as_raw(), &video.frames[index]);
        assert!(quality > 30.0, "{name}: PSNR {quality:.1} dB against frame {index}");
    }
    let err = write_still(&thumbnail(&video, ThumbnailFrame::First), &dir.path().join("x.bmp")).unwrap_err().to_string();
    assert!(err.contains(".bmp"), "{err}");
    assert_eq!(StillFormat::from_path(std::path::Path::new("a.JPEG")).unwrap(), StillFormat::Jpeg);
}

#[test]
fn spritesheet_is_a_grid_of_evenly_spaced_frames() {
    let video = clip(160, 96, 17, 16.0);
    let sheet = spritesheet(&video, 3, 2, 80).unwrap();
    assert_eq!(sheet.dimensions(), (240, 96));
    // Cell 5 (row 1, column 2) holds the last frame, scaled to 80x48.
    let last = image::RgbImage::from_raw(160, 96, video.frames[16].clone()).unwrap();
    let expected = image::imageops::resize(&last, 80, 48, image::imageops::FilterType::Triangle);
    let cell = image::imageops::crop_imm(&sheet, 160, 48, 80, 48).to_image();
    assert_eq!(cell.as_raw(), expected.as_raw());
    // More cells than frames: every frame once, the grid shortened.
    let short = clip(32, 32, 4, 8.0);
    assert_eq!(spritesheet(&short, 3, 3, 16).unwrap().dimensions(), (48, 32));
    assert!(spritesheet(&short, 0, 3, 16).is_err());
}

#[test]
fn formats_follow_the_extension_and_audio_needs_mp4() {
    use std::path::Path;
    assert_eq!(VideoFormat::from_path(Path::new("a.MP4")).unwrap(), VideoFormat::Mp4);
    assert_eq!(VideoFormat::from_path(Path::new("frames/")).unwrap(), VideoFormat::PngFrames);
    assert_eq!(VideoFormat::from_path(Path::new("frames")).unwrap(), VideoFormat::PngFrames);
    let err = VideoFormat::from_path(Path::new("a.avi")).unwrap_err().to_string();
    assert!(err.contains(".avi") && err.contains(".mp4"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let video = clip(32, 32, 3, 8.0);
    let audio = sweep(0.5, 48000);
    let err = write_video(&video, Some(&audio), &dir.path().join("a.gif"), VideoOptions::default()).unwrap_err().to_string();
    assert!(err.contains("cannot carry audio"), "{err}");
}

#[test]
fn an_output_that_could_not_be_written_is_refused_before_any_work_and_without_leaving_files() {
    use reel_media::{check_video_output, check_writable};
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("renders/shot.mp4");
    let err = check_video_output(&missing).unwrap_err().to_string();
    assert!(err.contains("the folder") && err.contains("renders") && err.contains("does not exist"), "{err}");

    // A "folder" that is a file cannot hold the output.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "x").unwrap();
    let err = check_writable(&file.join("thumb.png")).unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    let err = check_video_output(&file.join("frames/")).unwrap_err().to_string();
    assert!(err.contains("cannot write"), "{err}");

    // A writable path passes, and the check leaves nothing behind; an existing file is kept as is.
    assert_eq!(check_video_output(&dir.path().join("out.mp4")).unwrap(), VideoFormat::Mp4);
    check_writable(&file).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    let frames = dir.path().join("frames/");
    assert_eq!(check_video_output(&frames).unwrap(), VideoFormat::PngFrames);
    assert!(frames.is_dir());
    let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["frames", "notes.txt"]);
    assert_eq!(std::fs::read_dir(&frames).unwrap().count(), 0);
    assert!(check_video_output(&dir.path().join("out.avi")).is_err());
}
