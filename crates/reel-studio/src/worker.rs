//! Workers: claim a job, generate it, write its files, mark it done. A heartbeat thread extends the
//! lease while the job runs, so a worker that dies lets its job go back to the queue when the
//! lease lapses. Generation runs on an ordinary thread (it is CPU- or GPU-bound); the store is
//! reached through the async runtime's handle.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device};
use reel_media::thumbnail::{spritesheet, thumbnail, ThumbnailFrame};
use reel_media::{write_video, VideoFrames, VideoOptions};
use reel_sampling::checkpoint::WanCheckpoint;
use reel_sampling::pipeline::{GenerationRequest, WanPipeline};
use reel_sampling::progress::Stage;
use tokio::runtime::Handle;

use crate::catalog::Catalog;
use crate::ids::worker_id;
use crate::outputs::{Outputs, Variant};
use crate::store::{ClaimedJob, JobRequest, Store};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claim lasts without a heartbeat.
    pub lease_seconds: i64,
    pub heartbeat: Duration,
    /// Wait between looks at an empty queue.
    pub poll: Duration,
    /// How long finished files stay downloadable.
    pub retention_seconds: i64,
    /// Claims after which a job that keeps losing its workers is failed.
    pub max_attempts: i64,
    pub dtype: DType,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_millis(500),
            retention_seconds: 7 * 24 * 3600,
            max_attempts: 3,
            dtype: DType::F32,
        }
    }
}

/// Runs jobs until `stop` is set; returns when idle after that.
pub fn run_worker(store: Store, catalog: Arc<Catalog>, outputs: Outputs, settings: WorkerSettings, runtime: Handle, stop: Arc<AtomicBool>) {
    let me = worker_id();
    while !stop.load(Ordering::Relaxed) {
        let claimed = runtime.block_on(store.claim(&me, settings.lease_seconds, settings.max_attempts));
        match claimed {
            Ok(Some(job)) => run_job(&store, &catalog, &outputs, &settings, &runtime, &me, job),
            Ok(None) => std::thread::sleep(settings.poll),
            Err(e) => {
                eprintln!("worker {me}: cannot reach the queue: {e}");
                std::thread::sleep(settings.poll * 4);
            }
        }
    }
}

fn run_job(store: &Store, catalog: &Catalog, outputs: &Outputs, settings: &WorkerSettings, runtime: &Handle, me: &str, job: ClaimedJob) {
    let progress = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (store, progress, done, runtime) = (store.clone(), progress.clone(), done.clone(), runtime.clone());
        let (id, me, settings) = (job.id.clone(), me.to_string(), settings.clone());
        std::thread::spawn(move || loop {
            let _ = runtime.block_on(store.heartbeat(&id, &me, progress.load(Ordering::Relaxed), settings.lease_seconds));
            let mut waited = Duration::ZERO;
            while waited < settings.heartbeat {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        })
    };
    let result = generate(catalog, outputs, settings, &job, &progress);
    done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    let still_ours = match result {
        Ok(()) => runtime.block_on(store.complete(&job.id, me, settings.retention_seconds)),
        Err(message) => runtime.block_on(store.fail(&job.id, me, "generation_failed", &message)),
    };
    // Not ours any more: deleted meanwhile (then no files may stay), or taken over after a lapsed
    // lease (then the files are the other worker's business).
    if let Ok(false) = still_ours {
        if let Ok(false) = runtime.block_on(store.exists(&job.id)) {
            let _ = outputs.remove(&job.id);
        }
    }
}

/// Makes the video and its stills; errors are user-facing messages.
fn generate(catalog: &Catalog, outputs: &Outputs, settings: &WorkerSettings, job: &ClaimedJob, progress: &AtomicI64) -> Result<(), String> {
    let request: &JobRequest = &job.request;
    let model = catalog.find(Some(&request.model)).map_err(|e| e.message)?;
    let checkpoint = WanCheckpoint::open(&model.checkpoint).map_err(|e| format!("model {} cannot be loaded: {e}", model.name))?;
    let pipeline = WanPipeline::new(checkpoint, settings.dtype, &Device::Cpu);
    let mut generation = GenerationRequest::new(request.prompt.clone());
    generation.negative_prompt = request.negative_prompt.clone();
    generation.width = request.width;
    generation.height = request.height;
    generation.frames = request.frames;
    generation.steps = request.steps;
    generation.guidance = request.guidance;
    generation.seed = request.seed;
    let generated = pipeline
        .generate(&generation, &mut |p| {
            // Prompt 0-5%, denoising 5-90%, decoding 90-98%, files to 100%.
            let (start, span) = match p.stage {
                Stage::Load(_) | Stage::EncodePrompt => (0.0, 5.0),
                Stage::Denoise => (5.0, 85.0),
                Stage::Decode => (90.0, 8.0),
            };
            let fraction = if p.total == 0 { 0.0 } else { p.done as f64 / p.total as f64 };
            progress.store((start + span * fraction) as i64, Ordering::Relaxed);
        })
        .map_err(|e| e.to_string())?;
    let frames = generated.rgb8().map_err(|e| e.to_string())?;
    let video = VideoFrames::new(request.width as u32, request.height as u32, request.fps, frames).map_err(|e| e.to_string())?;
    write_files(outputs, &job.id, &video).map_err(|e| format!("cannot store the video: {e}"))?;
    progress.store(100, Ordering::Relaxed);
    Ok(())
}

/// MP4, thumbnail and spritesheet, written to a staging folder and moved into place together.
fn write_files(outputs: &Outputs, id: &str, video: &VideoFrames) -> Result<(), Box<dyn std::error::Error>> {
    let dir = outputs.dir(id);
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    write_video(video, None, &staging.join(Variant::Video.file_name()), VideoOptions::default())?;
    reel_media::thumbnail::write_still(&thumbnail(video, ThumbnailFrame::Middle), &staging.join(Variant::Thumbnail.file_name()))?;
    let sheet = spritesheet(video, 5, 5, (video.width / 2).max(32))?;
    reel_media::thumbnail::write_still(&sheet, &staging.join(Variant::Spritesheet.file_name()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir)?;
    Ok(())
}
