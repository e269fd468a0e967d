//! Workers: claim a job, generate it, write its files, mark it done. A heartbeat thread extends the
//! lease while the job runs, so a worker that dies lets its job go back to the queue when the
//! lease lapses. Generation runs on an ordinary thread (it is CPU- or GPU-bound); the store is
//! reached through the async runtime's handle.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::Device;
use reel_film::cache::ShotCache;
use reel_film::render::PipelineRenderer;
use reel_film::{make_film, FilmEvent, FilmOptions};
use reel_models::device::DtypeChoice;
use reel_models::hub::HubSettings;
use tokio::runtime::Handle;

use crate::catalog::{seconds_text, Catalog};
use crate::films::ShotStatus;
use crate::ids::worker_id;
use crate::outputs::{Outputs, Variant};
use crate::render::{finish_files, generate, generation_percent, staging_dir, Made};
use crate::store::{ClaimedJob, Store};

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
    /// Compute dtype; `auto` is resolved per model ([`WanCheckpoint::resolve_dtype`]).
    pub dtype: DtypeChoice,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_millis(500),
            retention_seconds: 7 * 24 * 3600,
            max_attempts: 3,
            dtype: DtypeChoice::Auto,
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

/// What a running job reports through the heartbeat.
#[derive(Default)]
struct JobProgress {
    percent: AtomicI64,
    /// Films only: each shot's status.
    shots: Mutex<Option<Vec<ShotStatus>>>,
}

impl JobProgress {
    fn shots_json(&self) -> Option<String> {
        let shots = self.shots.lock().unwrap_or_else(|e| e.into_inner());
        shots.as_ref().map(|s| serde_json::to_string(s).expect("JSON"))
    }

    fn update_shot(&self, index: usize, update: impl FnOnce(&mut ShotStatus)) {
        let mut shots = self.shots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shot) = shots.as_mut().and_then(|s| s.get_mut(index)) {
            update(shot);
        }
    }

    fn set_shot(&self, index: usize, status: &str, percent: i64) {
        self.update_shot(index, |shot| {
            shot.status = status.into();
            shot.progress = percent;
        });
    }
}

fn run_job(store: &Store, catalog: &Catalog, outputs: &Outputs, settings: &WorkerSettings, runtime: &Handle, me: &str, job: ClaimedJob) {
    let progress = Arc::new(JobProgress::default());
    let done = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (store, progress, done, runtime) = (store.clone(), progress.clone(), done.clone(), runtime.clone());
        let (id, me, settings) = (job.id.clone(), me.to_string(), settings.clone());
        std::thread::spawn(move || loop {
            let (percent, shots) = (progress.percent.load(Ordering::Relaxed), progress.shots_json());
            let _ = runtime.block_on(store.heartbeat(&id, &me, percent, shots.as_deref(), settings.lease_seconds));
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
    let result = match &job.request.storyboard {
        Some(_) => film(outputs, settings, &job, &progress),
        None => generate(catalog, outputs, settings, &job, &progress.percent),
    };
    done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    // The shots' final state (a completed film's heartbeat may not have carried it).
    if let Some(shots) = progress.shots_json() {
        let _ = runtime.block_on(store.heartbeat(&job.id, me, progress.percent.load(Ordering::Relaxed), Some(&shots), settings.lease_seconds));
    }
    let still_ours = match result {
        Ok(made) => {
            if let Some(warning) = &made.warning {
                let _ = runtime.block_on(store.warn(&job.id, me, warning));
            }
            runtime.block_on(store.complete(&job.id, me, settings.retention_seconds, made.seconds.as_deref()))
        }
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

/// Makes a film from the job's storyboard, reporting each shot's status; returns its length.
fn film(outputs: &Outputs, settings: &WorkerSettings, job: &ClaimedJob, progress: &JobProgress) -> Result<Made, String> {
    let storyboard = job.request.storyboard.as_ref().expect("a film job");
    *progress.shots.lock().unwrap_or_else(|e| e.into_inner()) = Some(vec![ShotStatus::queued(); storyboard.shots.len()]);
    let mut renderer = PipelineRenderer::open(&storyboard.model, settings.dtype, &Device::Cpu, &HubSettings::from_env())
        .map_err(|e| format!("model {} cannot be loaded: {e}", job.request.model))?;
    let staging = staging_dir(outputs, &job.id).map_err(|e| format!("cannot store the film: {e}"))?;
    let options = FilmOptions {
        output: staging.join(Variant::Video.file_name()),
        cache: Some(ShotCache::new(outputs.shot_cache_dir())),
        mp4_quality: reel_media::mp4::DEFAULT_QUALITY,
    };
    // Shots share 0-95% equally; assembling takes the rest.
    let shots = storyboard.shots.len() as f64;
    let overall = |shot: usize, percent: f64| ((shot as f64 + percent / 100.0) / shots * 95.0) as i64;
    let report = make_film(storyboard, &mut renderer, &options, &mut |event| match event {
        FilmEvent::ShotStarted { shot, cached, .. } => {
            progress.set_shot(shot, if cached { "cached" } else { "rendering" }, if cached { 100 } else { 0 });
            progress.percent.store(overall(shot, 0.0), Ordering::Relaxed);
        }
        FilmEvent::Rendering { shot, progress: p } => {
            let percent = generation_percent(p);
            progress.set_shot(shot, "rendering", percent as i64);
            progress.percent.store(overall(shot, percent), Ordering::Relaxed);
        }
        FilmEvent::ShotWarning { shot, message } => progress.update_shot(shot, |status| status.warning = Some(message)),
        FilmEvent::ShotFinished { shot, .. } => {
            progress.update_shot(shot, |status| {
                if status.status != "cached" {
                    status.status = "completed".into();
                    status.progress = 100;
                }
            });
            progress.percent.store(overall(shot + 1, 0.0), Ordering::Relaxed);
        }
        FilmEvent::Narrating { .. } | FilmEvent::Assembling => {}
    })
    .map_err(|e| e.to_string())?;
    finish_files(outputs, &job.id, &staging, &report.video).map_err(|e| format!("cannot store the film: {e}"))?;
    progress.percent.store(100, Ordering::Relaxed);
    // Shots carry their own warnings.
    Ok(Made { seconds: Some(seconds_text((report.timeline.duration() * 1000.0).round() / 1000.0)), warning: None })
}
