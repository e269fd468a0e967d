//! The bundled demo checkpoint: embedded in the binary at build time and unpacked once into a
//! cache folder, so `reel generate` loads it exactly as it loads any checkpoint folder.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/bundled_files.rs"));

/// Whether this build carries the demo model.
pub fn available() -> bool {
    FILES.iter().any(|(name, _)| *name == "model_index.json")
}

/// A short content hash of the bundled files, naming the cache folder (a new model, a new folder).
fn fingerprint() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in FILES {
        for b in name.as_bytes().iter().chain(bytes.iter()) {
            hash = (hash ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The folder to unpack into: `$REEL_CACHE_DIR`, else the platform cache folder.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("REEL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("reel")
}

/// The unpacked checkpoint folder, unpacking it on first use.
pub fn checkpoint_dir() -> std::io::Result<PathBuf> {
    if !available() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "this build of reel carries no demo model (models/demo was empty when it was built): \
             train one with `reel train` and rebuild, or pass --model",
        ));
    }
    let dir = cache_root().join(format!("demo-{}", fingerprint()));
    if dir.join("model_index.json").is_file() {
        return Ok(dir);
    }
    // Unpack into a sibling folder and rename, so a crash never leaves a half-written model.
    let staging = cache_root().join(format!(".demo-{}-{}", fingerprint(), std::process::id()));
    for (name, bytes) in FILES {
        let path = staging.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(path, bytes)?;
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process unpacked it first.
        Err(_) if dir.join("model_index.json").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}
