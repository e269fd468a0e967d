//! `reel serve`, `reel worker` and `reel keys`: the studio from the command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use reel_studio::worker::WorkerSettings;
use reel_studio::{default_data_dir, parse_model_arg, Limits, ServeOptions, StudioPaths};

/// Where the studio's state lives.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Data directory: database (SQLite) and video files [default: $REEL_DATA_DIR, else a per-user folder]
    #[arg(long, env = "REEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Queue and store database: sqlite://FILE or postgres://USER@HOST/DB [default: SQLite in the data directory]
    #[arg(long, env = "REEL_DATABASE_URL")]
    database: Option<String>,
}

impl StoreArgs {
    fn paths(&self) -> StudioPaths {
        StudioPaths::new(self.data_dir.clone().unwrap_or_else(default_data_dir), self.database.clone())
    }
}

/// How workers run jobs.
#[derive(Args, Clone)]
pub struct WorkArgs {
    /// Extra model to serve, NAME=CHECKPOINT_FOLDER (repeatable); the bundled demo model is the default
    #[arg(long = "model", value_parser = parse_model_arg)]
    models: Vec<(String, PathBuf)>,
    /// Seconds a claimed job stays with its worker without a heartbeat before another may take it
    #[arg(long, default_value_t = 30)]
    lease_seconds: i64,
    /// Days finished videos stay downloadable
    #[arg(long, default_value_t = 7.0)]
    retention_days: f64,
    /// Compute dtype of generation: f32, bf16, f16 or auto (as `reel generate`'s, per model)
    #[arg(long, default_value = "auto")]
    dtype: String,
}

impl WorkArgs {
    fn settings(&self) -> anyhow::Result<WorkerSettings> {
        anyhow::ensure!(self.lease_seconds >= 2, "--lease-seconds must be at least 2");
        Ok(WorkerSettings {
            lease_seconds: self.lease_seconds,
            heartbeat: Duration::from_secs((self.lease_seconds / 3).max(1) as u64),
            retention_seconds: (self.retention_days * 86400.0) as i64,
            dtype: reel_models::device::DtypeChoice::parse(&self.dtype)?,
            ..WorkerSettings::default()
        })
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Workers inside the server (0: leave the jobs to `reel worker` processes)
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Longest prompt, in characters
    #[arg(long, default_value_t = 4000)]
    max_prompt_chars: usize,
    /// Largest upload (input_reference), in bytes
    #[arg(long, default_value_t = 20 << 20)]
    max_upload_bytes: usize,
    /// Most videos one key may have queued or in progress
    #[arg(long, default_value_t = 32)]
    max_pending: i64,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Jobs to run at once in this process
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create an API key; it is printed on the last line (and stored only as a hash)
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// A name to remember the key by
        #[arg(long, default_value = "key")]
        name: String,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let limits = Limits {
        max_prompt_chars: args.max_prompt_chars,
        max_upload_bytes: args.max_upload_bytes,
        max_pending_per_key: args.max_pending,
        ..Limits::default()
    };
    let options = ServeOptions {
        paths: args.store.paths(),
        address: SocketAddr::new(args.host, args.port),
        workers: args.workers,
        worker: args.work.settings()?,
        limits,
        extra_models: args.work.models.clone(),
    };
    let data_dir = options.paths.data_dir.clone();
    runtime()?.block_on(reel_studio::serve(options, |address, first_key| {
        eprintln!("reel studio on http://{address}/ (data in {})", data_dir.display());
        if let Some(key) = first_key {
            eprintln!("created the first API key (shown once; more with `reel keys create`):");
            eprintln!("  open http://{address}/?key={key}");
            println!("{key}");
        }
        eprintln!("API: http://{address}/v1 (OpenAI Videos API), description at /openapi.json");
    }))?;
    Ok(())
}

pub fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let paths = args.store.paths();
    eprintln!("reel worker: {} job(s) at a time from {}", args.workers, paths.database);
    runtime()?.block_on(reel_studio::work(&paths, args.workers, args.work.settings()?, &args.work.models))?;
    Ok(())
}

pub fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let KeysAction::Create { store, name } = args.action;
    let key = runtime()?.block_on(reel_studio::create_key(&store.paths(), &name))?;
    eprintln!("new API key '{name}' (keep it: it is not shown again):");
    println!("{key}");
    Ok(())
}
