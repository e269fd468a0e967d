//! Writing a video in the format its path asks for: `.mp4`, `.gif`, `.webp`, or a folder of PNGs.

use std::path::{Path, PathBuf};

use crate::mp4::{Mp4Writer, DEFAULT_QUALITY};
use crate::{gif, png, webp, Audio, MediaError, Result, VideoFrames};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    Mp4,
    Gif,
    Webp,
    PngFrames,
}

impl VideoFormat {
    /// A folder (existing, ending in `/`, or without extension) means PNG frames.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ends_with_separator = path.to_string_lossy().ends_with(std::path::MAIN_SEPARATOR);
        if ends_with_separator || path.is_dir() || path.extension().is_none() {
            return Ok(Self::PngFrames);
        }
        let extension = path.extension().unwrap_or_default().to_string_lossy().to_lowercase();
        match extension.as_str() {
            "mp4" => Ok(Self::Mp4),
            "gif" => Ok(Self::Gif),
            "webp" => Ok(Self::Webp),
            other => Err(MediaError::InvalidInput(format!(
                "cannot write video as '.{other}' ({}): use .mp4, .gif, .webp, or a folder for PNG frames",
                path.display()
            ))),
        }
    }
}

/// Refuses, before any work is done, a video output that could not be written: an unknown
/// extension, a missing folder, a folder or file without write permission. The folder of PNG frames
/// is created here.
pub fn check_video_output(path: &Path) -> Result<VideoFormat> {
    let format = VideoFormat::from_path(path)?;
    if format == VideoFormat::PngFrames {
        let cannot = |source| MediaError::Write { path: path.to_path_buf(), source };
        std::fs::create_dir_all(path).map_err(cannot)?;
        probe_folder(path).map_err(cannot)?;
    } else {
        check_writable(path)?;
    }
    Ok(format)
}

/// Refuses a file path that could not be written: its folder is missing, or it or its folder is
/// read-only. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<()> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(MediaError::InvalidInput(format!(
            "cannot write {}: the folder {} does not exist; create it first or choose another path",
            path.display(),
            folder.display()
        )));
    }
    let cannot = |source| MediaError::Write { path: path.to_path_buf(), source };
    if path.exists() {
        // Opening for writing without truncating leaves an existing file as it is.
        std::fs::OpenOptions::new().write(true).open(path).map_err(cannot)?;
    }
    probe_folder(folder).map_err(cannot)
}

/// Creates and removes a hidden file in `folder`: the one sure test that files can be made there.
fn probe_folder(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(".reel-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Options for [`write_video`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// H.264 quantiser for MP4 (0 best .. 51 smallest).
    pub mp4_quality: u8,
    /// libwebp quality for animated WebP (0 .. 100).
    pub webp_quality: f32,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self { mp4_quality: DEFAULT_QUALITY, webp_quality: webp::DEFAULT_QUALITY }
    }
}

/// Writes `video` (and `audio`, which only MP4 carries) to `path`; returns the files written.
pub fn write_video(video: &VideoFrames, audio: Option<&Audio>, path: &Path, options: VideoOptions) -> Result<Vec<PathBuf>> {
    let format = VideoFormat::from_path(path)?;
    if audio.is_some() && format != VideoFormat::Mp4 {
        return Err(MediaError::InvalidInput(format!(
            "{} cannot carry audio: write .mp4 for video with sound",
            path.display()
        )));
    }
    match format {
        VideoFormat::Mp4 => {
            let mut writer = Mp4Writer::create(path, video.width as usize, video.height as usize, video.fps, audio, options.mp4_quality)?;
            for frame in &video.frames {
                writer.push_frame(frame)?;
            }
            writer.finish()?;
            Ok(vec![path.to_path_buf()])
        }
        VideoFormat::Gif => gif::write_gif(video, path).map(|_| vec![path.to_path_buf()]),
        VideoFormat::Webp => webp::write_animated(video, path, options.webp_quality).map(|_| vec![path.to_path_buf()]),
        VideoFormat::PngFrames => png::write_png_sequence(video, path),
    }
}
