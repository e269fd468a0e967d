//! Frames written as they are finished, for videos made piece by piece (long videos, extensions):
//! straight into an MP4, so memory does not grow with the length, or gathered for the formats
//! written in one go (GIF, WebP, PNG frames).

use std::path::{Path, PathBuf};

use crate::mp4::Mp4Writer;
use crate::thumbnail::{thumbnail, write_still, ThumbnailFrame};
use crate::{write_video, Result, VideoFormat, VideoFrames, VideoOptions};

pub struct VideoSink {
    output: PathBuf,
    width: usize,
    height: usize,
    fps: f64,
    options: VideoOptions,
    target: Target,
    /// The frame a thumbnail shows: the middle one of the frames expected.
    thumbnail_index: usize,
    thumbnail_frame: Option<Vec<u8>>,
    written: usize,
}

enum Target {
    Mp4(Mp4Writer),
    Gathered(Vec<Vec<u8>>),
}

impl VideoSink {
    /// A sink for about `expected` RGB8 frames of `width` x `height` at `fps`, written to `output`
    /// in the format its path names.
    pub fn create(output: &Path, width: usize, height: usize, fps: f64, options: VideoOptions, expected: usize) -> Result<Self> {
        let target = match VideoFormat::from_path(output)? {
            VideoFormat::Mp4 => Target::Mp4(Mp4Writer::create(output, width, height, fps, None, options.mp4_quality)?),
            _ => Target::Gathered(Vec::new()),
        };
        Ok(Self {
            output: output.to_path_buf(),
            width,
            height,
            fps,
            options,
            target,
            thumbnail_index: expected / 2,
            thumbnail_frame: None,
            written: 0,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn fps(&self) -> f64 {
        self.fps
    }

    pub fn push(&mut self, rgb: Vec<u8>) -> Result<()> {
        if self.written == self.thumbnail_index {
            self.thumbnail_frame = Some(rgb.clone());
        }
        match &mut self.target {
            Target::Mp4(writer) => writer.push_frame(&rgb)?,
            // Sizes are checked when the frames are written, in `finish`.
            Target::Gathered(frames) => frames.push(rgb),
        }
        self.written += 1;
        Ok(())
    }

    /// Frames pushed so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Finishes the file (returning the files written) and writes the middle frame to `thumbnail_path` when asked.
    pub fn finish(self, thumbnail_path: Option<&Path>) -> Result<Vec<PathBuf>> {
        let files = match self.target {
            Target::Mp4(writer) => vec![writer.finish()?.path],
            Target::Gathered(frames) => {
                let video = VideoFrames::new(self.width as u32, self.height as u32, self.fps, frames)?;
                write_video(&video, None, &self.output, self.options)?
            }
        };
        if let (Some(path), Some(frame)) = (thumbnail_path, self.thumbnail_frame) {
            let still = VideoFrames::new(self.width as u32, self.height as u32, self.fps, vec![frame])?;
            write_still(&thumbnail(&still, ThumbnailFrame::Middle), path)?;
        }
        Ok(files)
    }
}
