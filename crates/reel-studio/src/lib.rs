//! reel's studio: the OpenAI-compatible Videos API (`reel serve`), a durable job queue in SQLite or
//! PostgreSQL, workers (in the server or separate `reel worker` processes), and a web page.
//! The studio never computes on tensors: workers call the pipeline (reel_film's windows for long
//! videos and extensions) and the media writers, handing the pipeline a reference image as its
//! first frame.

pub mod api;
pub mod catalog;
pub mod error;
pub mod estimates;
pub mod extensions;
pub mod films;
pub mod ids;
pub mod inputs;
pub mod openapi;
pub mod outputs;
pub mod render;
pub mod store;
pub mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catalog::{Catalog, ServedModel, DEMO_MODEL};
use outputs::Outputs;
use store::Store;
use worker::{run_worker, WorkerSettings};

pub use api::Limits;

/// Where a studio keeps its database and files.
#[derive(Debug, Clone)]
pub struct StudioPaths {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; SQLite in the data directory by default.
    pub database: String,
}

impl StudioPaths {
    pub fn new(data_dir: PathBuf, database: Option<String>) -> Self {
        let database = database.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("reel.db").display()));
        Self { data_dir, database }
    }
}

/// The data directory when none is given: `$REEL_DATA_DIR`, else a per-user folder.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REEL_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("reel")
}

#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// The models to serve: the bundled demo model first (the default), then `extra` (name, folder).
pub fn catalog(extra: &[(String, PathBuf)]) -> Result<Catalog, StudioError> {
    let mut models = Vec::new();
    if let Ok(dir) = reel_demo::bundled::checkpoint_dir() {
        models.push(ServedModel::from_checkpoint(DEMO_MODEL, dir).map_err(StudioError::Config)?);
    }
    for (name, dir) in extra {
        models.push(ServedModel::from_checkpoint(name, dir.clone()).map_err(|e| StudioError::Config(format!("model {name}: {e}")))?);
    }
    if models.is_empty() {
        return Err(StudioError::Config("no model to serve: this build has no demo model; add one with --model NAME=PATH".into()));
    }
    Ok(Catalog { models })
}

pub struct ServeOptions {
    pub paths: StudioPaths,
    pub address: SocketAddr,
    /// Workers inside the server process (0 leaves the work to `reel worker` processes).
    pub workers: usize,
    pub worker: WorkerSettings,
    pub limits: Limits,
    pub extra_models: Vec<(String, PathBuf)>,
}

/// Opens the store, making the data directory and the database as needed.
pub async fn open_store(paths: &StudioPaths) -> Result<Store, StudioError> {
    std::fs::create_dir_all(&paths.data_dir)?;
    Ok(Store::open(&paths.database).await?)
}

/// Creates an API key; returns it (it is shown once and stored hashed).
pub async fn create_key(paths: &StudioPaths, name: &str) -> Result<String, StudioError> {
    let store = open_store(paths).await?;
    Ok(store.create_key(name).await?.1)
}

fn spawn_workers(count: usize, store: &Store, catalog: &Arc<Catalog>, outputs: &Outputs, settings: &WorkerSettings, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let (store, catalog, outputs, settings, stop) = (store.clone(), catalog.clone(), outputs.clone(), settings.clone(), stop.clone());
            let runtime = tokio::runtime::Handle::current();
            std::thread::spawn(move || run_worker(store, catalog, outputs, settings, runtime, stop))
        })
        .collect()
}

/// Removes the files of expired videos every minute.
fn spawn_janitor(store: Store, outputs: Outputs) {
    tokio::spawn(async move {
        loop {
            if let Ok(ids) = store.expired().await {
                for id in ids {
                    let _ = outputs.remove(&id);
                }
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
}

async fn shutdown_signal(stop: Arc<AtomicBool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    stop.store(true, Ordering::Relaxed);
}

/// Runs the studio until interrupted. `on_ready` receives the bound address and, on a first
/// start, the API key created for the operator.
pub async fn serve(options: ServeOptions, on_ready: impl FnOnce(SocketAddr, Option<String>)) -> Result<(), StudioError> {
    let store = open_store(&options.paths).await?;
    let first_key = if store.key_count().await? == 0 { Some(store.create_key("default").await?.1) } else { None };
    let catalog = Arc::new(catalog(&options.extra_models)?);
    let outputs = Outputs::new(&options.paths.data_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(options.workers, &store, &catalog, &outputs, &options.worker, &stop);
    spawn_janitor(store.clone(), outputs.clone());
    let state = Arc::new(api::AppState::new(store, catalog, outputs, options.limits));
    let listener = tokio::net::TcpListener::bind(options.address).await?;
    on_ready(listener.local_addr()?, first_key);
    axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown_signal(stop.clone())).await?;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        // A job still running is left to its lease: another worker takes it up after a restart.
        if worker.is_finished() {
            let _ = worker.join();
        }
    }
    Ok(())
}

/// Runs workers without an API server (for other machines sharing a PostgreSQL queue, whose data
/// directory is shared with the server's).
pub async fn work(paths: &StudioPaths, count: usize, settings: WorkerSettings, extra_models: &[(String, PathBuf)]) -> Result<(), StudioError> {
    let store = open_store(paths).await?;
    let catalog = Arc::new(catalog(extra_models)?);
    let outputs = Outputs::new(&paths.data_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(count.max(1), &store, &catalog, &outputs, &settings, &stop);
    shutdown_signal(stop).await;
    drop(workers);
    Ok(())
}

/// `NAME=PATH` as the command line gives extra models.
pub fn parse_model_arg(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg.split_once('=').ok_or_else(|| format!("--model takes NAME=PATH, found '{arg}'"))?;
    if name.is_empty() || !Path::new(path).is_dir() {
        return Err(format!("--model {arg}: the name must not be empty and {path} must be a checkpoint folder"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}
