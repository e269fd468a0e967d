//! Identifiers and secrets: random hex from the operating system's generator.

use sha2::{Digest, Sha256};

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random generator is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A video id as the Videos API spells them: `video_` and 32 hex digits.
pub fn video_id() -> String {
    format!("video_{}", random_hex(16))
}

pub fn key_id() -> String {
    format!("key_{}", random_hex(8))
}

/// A new API key: `sk-reel-` and 48 hex digits.
pub fn api_key() -> String {
    format!("sk-reel-{}", random_hex(24))
}

/// Keys are stored hashed: a leaked database does not leak usable keys.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A worker's name in leases: host and process, plus randomness for several workers per process.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), random_hex(3))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
