//! One video job (a film aside) on the pipeline, and its files: a single generation; a video
//! longer than one generation, made window by window into the MP4 so memory stays that of one
//! window (models that start from given frames); image-to-video; the extension of a finished video.
//! The windows are reel_film::continuation's, which `reel generate --seconds` and `reel extend` run
//! too.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use candle_core::{Device, Tensor};
use reel_film::continuation::{extend_video, generate_into, DEFAULT_OVERLAP};
use reel_film::render::ShotRequest;
use reel_media::thumbnail::{spritesheet, thumbnail, write_still, ThumbnailFrame};
use reel_media::{read_mp4_frames, write_video, ImageFit, VideoFrames, VideoOptions, VideoSink};
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{frames_from_rgb8, GenerationRequest, WanPipeline};
use reel_sampling::progress::{Progress, Stage};

use crate::catalog::{Catalog, ServedModel};
use crate::outputs::{Outputs, Variant};
use crate::store::{ClaimedJob, ImageReference, JobRequest};
use crate::worker::WorkerSettings;

/// What a finished job reports beyond its files.
#[derive(Debug)]
pub struct Made {
    /// The video's length, when it differs from the planned one (a film whose shots grew to fit
    /// their narration).
    pub seconds: Option<String>,
    /// How the video differs from its request.
    pub warning: Option<String>,
}

/// Makes the video of a job and its stills; errors are user-facing messages.
pub fn generate(catalog: &Catalog, outputs: &Outputs, settings: &WorkerSettings, job: &ClaimedJob, progress: &AtomicI64) -> Result<Made, String> {
    let request: &JobRequest = &job.request;
    let model = catalog.find(Some(&request.model)).map_err(|e| e.message)?;
    let checkpoint = WanCheckpoint::open(&model.checkpoint).map_err(|e| format!("model {} cannot be loaded: {e}", model.name))?;
    let dtype = checkpoint.resolve_dtype(settings.dtype, &Device::Cpu, false).map_err(|e| format!("model {} cannot be loaded: {e}", model.name))?;
    let pipeline = WanPipeline::new(checkpoint, dtype, &Device::Cpu);
    let mut generation = generation_request(request, model);
    if let Some(reference) = &request.input_reference {
        generation.first_frames = Some(first_frame(&outputs.reference_file(&job.id), request, reference)?);
    }
    let warning = pipeline.dropped_tokens(&generation).map_err(|e| e.to_string())?.warning(generation.max_sequence_length);
    let made = Made { seconds: None, warning };
    let staging = staging_dir(outputs, &job.id).map_err(|e| format!("cannot store the video: {e}"))?;
    let windowed = request.extension.is_some() || (model.given_frames && request.frames > model.window_frames);
    if !windowed {
        let frames = pipeline
            .generate(&generation, &mut |p| progress.store(generation_percent(p) as i64, Ordering::Relaxed))
            .and_then(|generated| generated.rgb8())
            .map_err(|e| e.to_string())?;
        let video = VideoFrames::new(request.width as u32, request.height as u32, request.fps, frames).map_err(|e| e.to_string())?;
        write_video(&video, None, &staging.join(Variant::Video.file_name()), VideoOptions::default()).map_err(|e| format!("cannot store the video: {e}"))?;
        finish_files(outputs, &job.id, &staging, &video).map_err(|e| format!("cannot store the video: {e}"))?;
        progress.store(100, Ordering::Relaxed);
        return Ok(made);
    }
    // Window by window: each window is one generation of the model's own length.
    generation.frames = model.window_frames;
    let output = staging.join(Variant::Video.file_name());
    let mut sink = VideoSink::create(&output, request.width, request.height, request.fps, VideoOptions::default(), request.frames)
        .map_err(|e| format!("cannot store the video: {e}"))?;
    // Windows share 0-95% equally; the stills take the rest.
    let window = Cell::new((0usize, 1usize));
    let overall = |(i, n): (usize, usize), percent: f64| ((i as f64 + percent / 100.0) / n.max(1) as f64 * 95.0) as i64;
    let mut on_window = |i: usize, n: usize| {
        window.set((i, n));
        progress.store(overall((i, n), 0.0), Ordering::Relaxed);
    };
    let mut on_progress = |p: Progress| progress.store(overall(window.get(), generation_percent(p)), Ordering::Relaxed);
    let windows_made = match &request.extension {
        Some(extension) => {
            let source = outputs.source_file(&job.id);
            extend_video(&pipeline, &generation, &source, extension.new_frames, DEFAULT_OVERLAP, &mut sink, &mut on_window, &mut on_progress)
                .map(|_| ())
        }
        None => generate_into(&pipeline, &generation, request.frames, DEFAULT_OVERLAP, None, &mut sink, &mut on_window, &mut on_progress).map(|_| ()),
    };
    windows_made.map_err(|e| e.to_string())?;
    finish_streamed(outputs, &job.id, &staging, sink).map_err(|e| format!("cannot store the video: {e}"))?;
    progress.store(100, Ordering::Relaxed);
    Ok(made)
}

/// The pipeline's request for a job, with the model's prompt length (the rule reel_film's renderer follows).
fn generation_request(request: &JobRequest, model: &ServedModel) -> GenerationRequest {
    let shot = ShotRequest {
        prompt: request.prompt.clone(),
        negative_prompt: request.negative_prompt.clone(),
        width: request.width,
        height: request.height,
        frames: request.frames,
        steps: request.steps,
        guidance: request.guidance,
        seed: request.seed,
    };
    shot.generation_request(Some(model.max_sequence_length))
}

/// The reference image as the video's first frame, (1, height, width, 3).
fn first_frame(path: &Path, request: &JobRequest, reference: &ImageReference) -> Result<Tensor, String> {
    let fit: ImageFit = reference.fit.parse()?;
    let bytes = std::fs::read(path).map_err(|e| format!("the input_reference image of this job cannot be read ({}): {e}", path.display()))?;
    let rgb = reel_media::decode_image(&bytes, request.width, request.height, fit).map_err(|e| format!("input_reference: {e}"))?;
    frames_from_rgb8(&[rgb], request.height, request.width).map_err(|e| e.to_string())
}

/// How far one generation is, in percent: prompt 0-5, denoising 5-90, decoding 90-98 (the rest
/// is writing files).
pub fn generation_percent(p: Progress) -> f64 {
    let (start, span) = match p.stage {
        Stage::Load(_) | Stage::EncodePrompt | Stage::EncodeFrames => (0.0, 5.0),
        Stage::Denoise => (5.0, 85.0),
        Stage::Decode => (90.0, 8.0),
    };
    let fraction = if p.total == 0 { 0.0 } else { p.done as f64 / p.total as f64 };
    start + span * fraction
}

/// A fresh staging folder for a job's files.
pub fn staging_dir(outputs: &Outputs, id: &str) -> std::io::Result<PathBuf> {
    let staging = outputs.dir(id).with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    Ok(staging)
}

/// Adds the stills of `video` to the staging folder and moves it into place.
pub fn finish_files(outputs: &Outputs, id: &str, staging: &Path, video: &VideoFrames) -> Result<(), Box<dyn std::error::Error>> {
    write_still(&thumbnail(video, ThumbnailFrame::Middle), &staging.join(Variant::Thumbnail.file_name()))?;
    write_spritesheet(video, staging)?;
    publish(outputs, id, staging)
}

/// Tiles of a spritesheet.
const SHEET_COLUMNS: u32 = 5;
const SHEET_ROWS: u32 = 5;

fn write_spritesheet(video: &VideoFrames, staging: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let sheet = spritesheet(video, SHEET_COLUMNS, SHEET_ROWS, (video.width / 2).max(32))?;
    write_still(&sheet, &staging.join(Variant::Spritesheet.file_name()))?;
    Ok(())
}

/// Finishes a video written frame by frame: its MP4 and thumbnail from the sink, its spritesheet
/// from the frames it shows read back from the MP4 (memory holds those frames only).
fn finish_streamed(outputs: &Outputs, id: &str, staging: &Path, sink: VideoSink) -> Result<(), Box<dyn std::error::Error>> {
    let (written, width, height, fps) = (sink.written(), sink.width(), sink.height(), sink.fps());
    sink.finish(Some(&staging.join(Variant::Thumbnail.file_name())))?;
    // The frames `spritesheet` shows: evenly spaced from the first to the last.
    let cells = (SHEET_COLUMNS * SHEET_ROWS) as usize;
    let count = cells.min(written);
    let wanted: Vec<usize> = (0..count).map(|k| if count == 1 { 0 } else { k * (written - 1) / (count - 1) }).collect();
    let mut picked = Vec::with_capacity(count);
    let mut index = 0;
    read_mp4_frames(&staging.join(Variant::Video.file_name()), &mut |rgb| {
        if wanted.get(picked.len()) == Some(&index) {
            picked.push(rgb.to_vec());
        }
        index += 1;
        Ok(())
    })?;
    let shown = VideoFrames::new(width as u32, height as u32, fps, picked)?;
    write_spritesheet(&shown, staging)?;
    publish(outputs, id, staging)
}

/// Moves a finished staging folder into place.
fn publish(outputs: &Outputs, id: &str, staging: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = outputs.dir(id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(staging, &dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_spritesheets_pick_the_frames_a_whole_video_would() {
        // 49 frames: the picked indices are those `spritesheet` takes from the whole video.
        let dir = tempfile::tempdir().unwrap();
        let outputs = Outputs::new(dir.path()).unwrap();
        let staging = staging_dir(&outputs, "video_x").unwrap();
        let mut sink = VideoSink::create(&staging.join(Variant::Video.file_name()), 32, 32, 8.0, VideoOptions::default(), 49).unwrap();
        for i in 0..49u8 {
            sink.push(vec![i * 5; 32 * 32 * 3]).unwrap();
        }
        finish_streamed(&outputs, "video_x", &staging, sink).unwrap();
        for variant in [Variant::Video, Variant::Thumbnail, Variant::Spritesheet] {
            assert!(outputs.file("video_x", variant).is_file(), "{variant:?} is missing");
        }
        assert!(!staging.exists());
        let sheet = image_size(&outputs.file("video_x", Variant::Spritesheet));
        assert_eq!(sheet, (5 * 32, 5 * 32), "25 tiles of 32x32");
    }

    fn image_size(path: &Path) -> (u32, u32) {
        // JPEG: the size is in the SOF0 segment.
        let bytes = std::fs::read(path).unwrap();
        let at = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG");
        let h = u16::from_be_bytes([bytes[at + 5], bytes[at + 6]]) as u32;
        let w = u16::from_be_bytes([bytes[at + 7], bytes[at + 8]]) as u32;
        (w, h)
    }
}
