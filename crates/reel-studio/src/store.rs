//! The durable store: API keys, videos and the job queue, in SQLite (one file, the default) or
//! PostgreSQL (a `postgres://` URL, for several machines), through one interface.
//!
//! The queue is the `videos` table itself: a job is a video in state `queued`. Workers claim one
//! with a lease (`lease_until`) that their heartbeat extends; a job whose lease has run out (its
//! worker died) can be claimed again. Claims are single atomic `UPDATE ... RETURNING` statements
//! (on PostgreSQL with `FOR UPDATE SKIP LOCKED`), so two workers never run the same job.

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::ids::{key_hash, key_id, now};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid stored data: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Schema versions, applied in order once each.
const MIGRATIONS: [(i64, &str); 4] = [(
    1,
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE videos (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER NOT NULL,
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        size TEXT NOT NULL,
        seconds TEXT NOT NULL,
        request TEXT NOT NULL,
        remixed_from TEXT,
        error_code TEXT,
        error_message TEXT,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        completed_at BIGINT,
        expires_at BIGINT,
        worker TEXT,
        lease_until BIGINT,
        attempts INTEGER NOT NULL
    );
    CREATE INDEX videos_queue ON videos (status, created_at);
    CREATE INDEX videos_owner ON videos (key_id, created_at);",
), (
    2,
    // Films: each shot's status, as JSON (see crate::films::ShotStatus).
    "ALTER TABLE videos ADD COLUMN shots TEXT",
), (
    3,
    // Extensions (`POST /v1/videos/extensions`): the video an extension continues.
    "ALTER TABLE videos ADD COLUMN extended_from TEXT",
), (
    4,
    // How the video differs from its request (a prompt cut to fit the text encoder).
    "ALTER TABLE videos ADD COLUMN warning TEXT",
)];

/// What a job asks the worker to make (stored as JSON with the video).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub model: String,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub fps: f64,
    pub steps: usize,
    pub guidance: f64,
    pub seed: u64,
    /// A film's storyboard (a reel extension: `POST /v1/films`); its model is the served model's
    /// checkpoint folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storyboard: Option<reel_film::Storyboard>,
    /// Image-to-video: the video starts from the image kept in the job's input folder
    /// ([`crate::outputs::Outputs::reference_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_reference: Option<ImageReference>,
    /// An extension: the video continues the MP4 kept in the job's input folder
    /// ([`crate::outputs::Outputs::source_file`]); `frames` counts the source's frames and the new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

/// How the reference image of an image-to-video job becomes the first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReference {
    /// `crop`, `pad` or `stretch` (see [`reel_media::ImageFit`]).
    pub fit: String,
}

/// What an extension job adds to its source video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    /// Frames of the source video, copied unchanged.
    pub source_frames: usize,
    /// Frames generated after them.
    pub new_frames: usize,
}

/// The videos a new video derives from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lineage<'a> {
    pub remixed_from: Option<&'a str>,
    pub extended_from: Option<&'a str>,
}

/// A video row as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRecord {
    pub id: String,
    pub key_id: String,
    pub status: String,
    pub progress: i64,
    pub model: String,
    pub prompt: String,
    pub size: String,
    pub seconds: String,
    pub request: JobRequest,
    pub remixed_from: Option<String>,
    pub extended_from: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub attempts: i64,
    /// Films only: each shot's status, as JSON.
    pub shots: Option<String>,
    /// How the video differs from its request, when it does.
    pub warning: Option<String>,
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub request: JobRequest,
    pub attempts: i64,
}

const VIDEO_COLUMNS: &str = "id, key_id, status, progress, model, prompt, size, seconds, request, remixed_from, extended_from, \
     error_code, error_message, created_at, completed_at, expires_at, attempts, shots, warning";

fn video_from_row(row: &AnyRow) -> Result<VideoRecord> {
    let request: String = row.try_get("request")?;
    Ok(VideoRecord {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        status: row.try_get("status")?,
        progress: row.try_get::<i32, _>("progress")? as i64,
        model: row.try_get("model")?,
        prompt: row.try_get("prompt")?,
        size: row.try_get("size")?,
        seconds: row.try_get("seconds")?,
        request: serde_json::from_str(&request).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        remixed_from: row.try_get("remixed_from")?,
        extended_from: row.try_get("extended_from")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        expires_at: row.try_get("expires_at")?,
        attempts: row.try_get::<i32, _>("attempts")? as i64,
        shots: row.try_get("shots")?,
        warning: row.try_get("warning")?,
    })
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating and migrating as needed) `url`: `sqlite://PATH` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" }),
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Concurrent readers with one writer; writers wait instead of failing.
                        sqlx::query("PRAGMA journal_mode=WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout=10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous=NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)").execute(&self.pool).await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<AnyRow> = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            // Another server migrating at the same moment makes this insert fail: its work stands.
            match sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)").bind(version).execute(&mut *tx).await {
                Ok(_) => tx.commit().await?,
                Err(_) => tx.rollback().await?,
            }
        }
        Ok(())
    }

    /// Creates an API key named `name`; returns (key id, the key itself).
    pub async fn create_key(&self, name: &str) -> Result<(String, String)> {
        let (id, key) = (key_id(), crate::ids::api_key());
        sqlx::query("INSERT INTO api_keys (id, hash, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(key_hash(&key))
            .bind(name)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok((id, key))
    }

    pub async fn key_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// The id of the key, if it is valid.
    pub async fn authenticate(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM api_keys WHERE hash = $1").bind(key_hash(key)).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// Queues a new video (a film when `shots` is given).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_video(
        &self,
        id: &str,
        key_id: &str,
        size: &str,
        seconds: &str,
        request: &JobRequest,
        lineage: Lineage<'_>,
        shots: Option<&str>,
    ) -> Result<VideoRecord> {
        let json = serde_json::to_string(request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO videos (id, key_id, status, progress, model, prompt, size, seconds, request, remixed_from, \
             extended_from, created_at, attempts, shots) VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11)",
        )
        .bind(id)
        .bind(key_id)
        .bind(&request.model)
        .bind(&request.prompt)
        .bind(size)
        .bind(seconds)
        .bind(json)
        .bind(lineage.remixed_from)
        .bind(lineage.extended_from)
        .bind(now())
        .bind(shots)
        .execute(&self.pool)
        .await?;
        self.video(id, key_id).await?.ok_or_else(|| StoreError::Corrupt("inserted video vanished".into()))
    }

    /// A video of `key_id` (other keys' videos do not exist for it).
    pub async fn video(&self, id: &str, key_id: &str) -> Result<Option<VideoRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {VIDEO_COLUMNS} FROM videos WHERE id = $1 AND key_id = $2")))
            .bind(id)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(video_from_row).transpose()
    }

    /// Up to `limit` videos of `key_id` after the video `after`, newest or oldest first.
    pub async fn list_videos(&self, key_id: &str, after: Option<&str>, limit: i64, ascending: bool) -> Result<Vec<VideoRecord>> {
        let (cmp, order) = if ascending { (">", "ASC") } else { ("<", "DESC") };
        let anchor = match after {
            Some(after) => match self.video(after, key_id).await? {
                Some(v) => Some((v.created_at, v.id)),
                None => return Ok(vec![]),
            },
            None => None,
        };
        let rows = match anchor {
            Some((created, id)) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {VIDEO_COLUMNS} FROM videos WHERE key_id = $1 AND (created_at {cmp} $2 OR (created_at = $2 AND id {cmp} $3)) \
                     ORDER BY created_at {order}, id {order} LIMIT $4"
                )))
                .bind(key_id)
                .bind(created)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!("SELECT {VIDEO_COLUMNS} FROM videos WHERE key_id = $1 ORDER BY created_at {order}, id {order} LIMIT $2")))
                    .bind(key_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(video_from_row).collect()
    }

    /// Deletes a video of `key_id`; returns whether it existed.
    pub async fn delete_video(&self, id: &str, key_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM videos WHERE id = $1 AND key_id = $2").bind(id).bind(key_id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether a video exists, whoever owns it.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT id FROM videos WHERE id = $1").bind(id).fetch_optional(&self.pool).await?.is_some())
    }

    /// Queued or running jobs of `key_id`.
    pub async fn pending_count(&self, key_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM videos WHERE key_id = $1 AND status IN ('queued', 'in_progress')")
            .bind(key_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Claims the oldest queued job (or one whose lease ran out) for `worker`, until `lease_seconds`
    /// from now. Jobs claimed `max_attempts` times already are failed instead: they crash workers.
    pub async fn claim(&self, worker: &str, lease_seconds: i64, max_attempts: i64) -> Result<Option<ClaimedJob>> {
        let t = now();
        sqlx::query(
            "UPDATE videos SET status = 'failed', error_code = 'worker_lost', \
             error_message = 'the job stopped its workers repeatedly and was given up', worker = NULL, lease_until = NULL \
             WHERE status = 'in_progress' AND lease_until < $1 AND attempts >= $2",
        )
        .bind(t)
        .bind(max_attempts)
        .execute(&self.pool)
        .await?;
        let lock = if self.backend == Backend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE videos SET status = 'in_progress', worker = $1, lease_until = $2, started_at = COALESCE(started_at, $3), \
             attempts = attempts + 1 \
             WHERE id = (SELECT id FROM videos WHERE status = 'queued' OR (status = 'in_progress' AND lease_until < $3) \
                         ORDER BY created_at, id LIMIT 1 {lock}) \
             RETURNING id, request, attempts"
        )))
        .bind(worker)
        .bind(t + lease_seconds)
        .bind(t)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<ClaimedJob> {
            let request: String = row.try_get("request")?;
            Ok(ClaimedJob {
                id: row.try_get("id")?,
                request: serde_json::from_str(&request).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                attempts: row.try_get::<i32, _>("attempts")? as i64,
            })
        })
        .transpose()
    }

    /// Extends the lease and records progress (and a film's shot statuses, when given); false
    /// when the job is no longer this worker's (deleted, or taken over after a lapsed lease): the
    /// worker should stop.
    pub async fn heartbeat(&self, id: &str, worker: &str, progress: i64, shots: Option<&str>, lease_seconds: i64) -> Result<bool> {
        // Two statements rather than COALESCE over a NULL parameter, whose type PostgreSQL
        // cannot infer through the Any driver.
        let set_shots = if shots.is_some() { ", shots = $5" } else { "" };
        let sql = format!(
            "UPDATE videos SET progress = $1, lease_until = $2{set_shots} WHERE id = $3 AND worker = $4 AND status = 'in_progress'"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(progress).bind(now() + lease_seconds).bind(id).bind(worker);
        if let Some(shots) = shots {
            query = query.bind(shots);
        }
        Ok(query.execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Marks the job done, with its final length when it differs from the planned one (a film
    /// whose shots grew to fit their narration); false when it was not this worker's any more.
    pub async fn complete(&self, id: &str, worker: &str, retention_seconds: i64, seconds: Option<&str>) -> Result<bool> {
        let t = now();
        let set_seconds = if seconds.is_some() { ", seconds = $5" } else { "" };
        let sql = format!(
            "UPDATE videos SET status = 'completed', progress = 100, completed_at = $1, expires_at = $2, worker = NULL, \
             lease_until = NULL{set_seconds} WHERE id = $3 AND worker = $4 AND status = 'in_progress'"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(t).bind(t + retention_seconds).bind(id).bind(worker);
        if let Some(seconds) = seconds {
            query = query.bind(seconds);
        }
        Ok(query.execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Notes how the job's video differs from its request; false when it was not this worker's any more.
    pub async fn warn(&self, id: &str, worker: &str, warning: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE videos SET warning = $1 WHERE id = $2 AND worker = $3 AND status = 'in_progress'")
            .bind(warning)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn fail(&self, id: &str, worker: &str, code: &str, message: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE videos SET status = 'failed', error_code = $1, error_message = $2, completed_at = $3, worker = NULL, \
             lease_until = NULL WHERE id = $4 AND worker = $5 AND status = 'in_progress'",
        )
        .bind(code)
        .bind(message)
        .bind(now())
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ids of completed videos whose downloadable files have expired (the videos themselves stay
    /// listed, as the API reports them).
    pub async fn expired(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM videos WHERE status = 'completed' AND expires_at < $1").bind(now()).fetch_all(&self.pool).await?;
        rows.iter().map(|r| r.try_get("id").map_err(Into::into)).collect()
    }
}
