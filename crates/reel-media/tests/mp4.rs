//! MP4 files as ffprobe and ffmpeg see them: codec, size, colour tags, frame rate, frame count,
//! duration, fast start, quality after a round trip, audio.

mod common;

use common::{decode_rgb, number, probe, psnr, stream, top_level_boxes};
use reel_media::mp4::{Mp4Writer, DEFAULT_QUALITY};
use reel_media::test_clip::{clip, sweep};

#[test]
fn video_with_audio_is_what_ffprobe_expects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let video = clip(320, 192, 33, 16.0);
    let audio = sweep(2.5, 48000);
    let mut writer = Mp4Writer::create(&path, 320, 192, 16.0, Some(&audio), DEFAULT_QUALITY).unwrap();
    for frame in &video.frames {
        writer.push_frame(frame).unwrap();
    }
    let summary = writer.finish().unwrap();
    assert_eq!(summary.frames, 33);

    let info = probe(&path);
    let v = stream(&info, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(320), Some(192)));
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!(v["color_space"], "bt709");
    assert_eq!(v["color_primaries"], "bt709");
    assert_eq!(v["color_transfer"], "bt709");
    assert_eq!(v["r_frame_rate"], "16/1");
    assert_eq!(v["nb_read_frames"], "33");
    assert!((number(&v["duration"]) - 33.0 / 16.0).abs() < 1e-3, "{}", v["duration"]);

    let a = stream(&info, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["profile"], "LC");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    assert!((number(&a["duration"]) - 2.5).abs() < 0.03, "audio duration {}", a["duration"]);
    assert!((number(&info["format"]["duration"]) - 2.5).abs() < 0.03, "{}", info["format"]["duration"]);

    // Fast start: the index comes before the media data.
    assert_eq!(top_level_boxes(&path), vec!["ftyp", "moov", "mdat"]);
    // No intermediate files are left next to the output.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn default_quality_keeps_psnr_above_35_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quality.mp4");
    let video = clip(320, 192, 25, 16.0);
    let mut writer = Mp4Writer::create(&path, 320, 192, 16.0, None, DEFAULT_QUALITY).unwrap();
    for frame in &video.frames {
        writer.push_frame(frame).unwrap();
    }
    writer.finish().unwrap();
    let decoded = decode_rgb(&path, 320, 192);
    assert_eq!(decoded.len(), 25);
    let source: Vec<u8> = video.frames.concat();
    let value = psnr(&decoded.concat(), &source);
    eprintln!("PSNR at the default quality: {value:.2} dB");
    assert!(value >= 35.0, "PSNR {value:.2} dB is below 35 dB");
    // A lower quality setting gives a smaller file and a lower PSNR: the setting is not ignored.
    let small = dir.path().join("small.mp4");
    let mut writer = Mp4Writer::create(&small, 320, 192, 16.0, None, 40).unwrap();
    for frame in &video.frames {
        writer.push_frame(frame).unwrap();
    }
    writer.finish().unwrap();
    assert!(std::fs::metadata(&small).unwrap().len() < std::fs::metadata(&path).unwrap().len());
    assert!(psnr(&decode_rgb(&small, 320, 192).concat(), &source) < value);
}

#[test]
fn odd_sizes_are_padded_to_even() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.mp4");
    let video = clip(33, 17, 5, 8.0);
    let mut writer = Mp4Writer::create(&path, 33, 17, 8.0, None, DEFAULT_QUALITY).unwrap();
    for frame in &video.frames {
        writer.push_frame(frame).unwrap();
    }
    let summary = writer.finish().unwrap();
    assert_eq!((summary.width, summary.height), (34, 18));
    let info = probe(&path);
    let v = stream(&info, "video");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(34), Some(18)));
    assert_eq!(v["nb_read_frames"], "5");
    assert_eq!(v["r_frame_rate"], "8/1");
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.mp4");
    let writer = Mp4Writer::create(&path, 32, 32, 16.0, None, DEFAULT_QUALITY).unwrap();
    let err = writer.finish().unwrap_err().to_string();
    assert!(err.contains("no frames"), "{err}");
    let mut writer = Mp4Writer::create(&path, 32, 32, 16.0, None, DEFAULT_QUALITY).unwrap();
    let err = writer.push_frame(&[0; 31 * 32 * 3]).unwrap_err().to_string();
    assert!(err.contains("same size"), "{err}");
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "an unfinished file leaves nothing behind");
    assert!(Mp4Writer::create(&path, 32, 32, 0.0, None, DEFAULT_QUALITY).is_err());
    assert!(Mp4Writer::create(&path, 32, 32, 16.0, None, 60).is_err());
    let odd_rate = reel_media::Audio::new(44000, 1, vec![0.0; 44000]).unwrap();
    let err = Mp4Writer::create(&path, 32, 32, 16.0, Some(&odd_rate), DEFAULT_QUALITY).err().unwrap().to_string();
    assert!(err.contains("44000 Hz"), "{err}");
    let missing_dir = dir.path().join("no/such/dir/x.mp4");
    let err = Mp4Writer::create(&missing_dir, 32, 32, 16.0, None, DEFAULT_QUALITY).err().unwrap().to_string();
    assert!(err.contains("cannot write"), "{err}");
}

#[test]
fn frames_go_to_disk_as_they_are_encoded() {
    // The encoded stream is written while frames arrive, not held until the end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.mp4");
    let video = clip(256, 160, 8, 16.0);
    let mut writer = Mp4Writer::create(&path, 256, 160, 16.0, None, 10).unwrap();
    let staged = || -> u64 {
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    for i in 0..240 {
        writer.push_frame(&video.frames[i % video.frames.len()]).unwrap();
    }
    assert!(staged() > 256 << 10, "only {} bytes reached the disk after 240 frames", staged());
    let summary = writer.finish().unwrap();
    assert_eq!(summary.frames, 240);
    assert_eq!(stream(&probe(&path), "video")["nb_read_frames"], "240");
}
