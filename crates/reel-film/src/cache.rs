//! The shot cache: rendered shots stored by the hash of what made them, so that editing one shot
//! of a storyboard re-renders only that shot.
//!
//! An entry is `<key>.rgb` (the frames' raw RGB bytes, one after another) and `<key>.json` (their
//! size and count, and the request, for people who look inside). Both are written to temporary
//! names and renamed, so a crash never leaves a half entry that looks whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::render::ShotRequest;
use crate::{FilmError, Result};

/// A folder of rendered shots.
pub struct ShotCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct EntryHeader {
    width: usize,
    height: usize,
    frames: usize,
    request: serde_json::Value,
}

impl ShotCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$REEL_CACHE_DIR/shots`, else the platform cache folder's `reel/shots`.
    pub fn default_dir() -> PathBuf {
        reel_demo::bundled::cache_root().join("shots")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry's name for a shot rendered by the model with `model_fingerprint`.
    pub fn key(model_fingerprint: &str, request: &ShotRequest) -> String {
        let mut hash = Sha256::new();
        hash.update(model_fingerprint.as_bytes());
        hash.update(b"\0");
        hash.update(serde_json::to_vec(request).expect("a shot request is JSON"));
        format!("{:x}", hash.finalize())
    }

    /// The stored frames, or `None` when the shot was never rendered or its entry is damaged
    /// (a damaged entry is simply rendered again).
    pub fn get(&self, key: &str, request: &ShotRequest) -> Option<Vec<Vec<u8>>> {
        let header: EntryHeader = serde_json::from_slice(&std::fs::read(self.dir.join(format!("{key}.json"))).ok()?).ok()?;
        if (header.width, header.height, header.frames) != (request.width, request.height, request.frames) {
            return None;
        }
        let bytes = std::fs::read(self.dir.join(format!("{key}.rgb"))).ok()?;
        let frame_bytes = request.width * request.height * 3;
        if bytes.len() != frame_bytes * request.frames {
            return None;
        }
        Some(bytes.chunks_exact(frame_bytes).map(<[u8]>::to_vec).collect())
    }

    pub fn put(&self, key: &str, request: &ShotRequest, frames: &[Vec<u8>]) -> Result<()> {
        let failed = |e: std::io::Error| {
            FilmError::Io(format!("cannot store a rendered shot in the cache {}: {e} (free some space, or pass --no-cache)", self.dir.display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(failed)?;
        let header = EntryHeader {
            width: request.width,
            height: request.height,
            frames: frames.len(),
            request: serde_json::to_value(request).expect("a shot request is JSON"),
        };
        // Frames first: an entry counts once its header exists.
        self.write_atomically(&format!("{key}.rgb"), &frames.concat()).map_err(failed)?;
        self.write_atomically(&format!("{key}.json"), &serde_json::to_vec_pretty(&header).expect("JSON")).map_err(failed)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let staging = self.dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&staging, bytes)?;
        std::fs::rename(&staging, self.dir.join(name)).inspect_err(|_| {
            let _ = std::fs::remove_file(&staging);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seed: u64) -> ShotRequest {
        ShotRequest {
            prompt: "a red square".into(),
            negative_prompt: String::new(),
            width: 4,
            height: 2,
            frames: 3,
            steps: 2,
            guidance: 4.0,
            seed,
        }
    }

    #[test]
    fn stored_frames_come_back_and_any_change_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ShotCache::new(dir.path());
        let frames: Vec<Vec<u8>> = (0..3u8).map(|f| (0..24u8).map(|b| b.wrapping_mul(7).wrapping_add(f)).collect()).collect();
        let key = ShotCache::key("model-a", &request(1));
        assert!(cache.get(&key, &request(1)).is_none());
        cache.put(&key, &request(1), &frames).unwrap();
        assert_eq!(cache.get(&key, &request(1)).unwrap(), frames);
        assert_ne!(key, ShotCache::key("model-a", &request(2)));
        assert_ne!(key, ShotCache::key("model-b", &request(1)));
    }

    #[test]
    fn a_damaged_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ShotCache::new(dir.path());
        let key = ShotCache::key("m", &request(1));
        cache.put(&key, &request(1), &vec![vec![9u8; 24]; 3]).unwrap();
        std::fs::write(dir.path().join(format!("{key}.rgb")), [1u8; 30]).unwrap();
        assert!(cache.get(&key, &request(1)).is_none());
    }
}
