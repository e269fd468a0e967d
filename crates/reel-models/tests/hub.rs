//! Finding checkpoints: local folders, the Hugging Face cache (offline), and the errors when a
//! reference is neither. No test reaches the network: the "online" case points at a closed port.

use std::path::Path;

use reel_models::hub::{is_repo_id, resolve, HubSettings};
use reel_models::testing::{copy_dir, fixture};

fn settings(cache: &Path, offline: bool) -> HubSettings {
    HubSettings {
        cache_dir: cache.to_path_buf(),
        offline,
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        progress: false,
    }
}

/// The layout huggingface_hub writes: refs/main names the snapshot folder.
fn cache_with_tiny_model(cache: &Path) -> std::path::PathBuf {
    let repo = cache.join("models--reel-test--tiny-wan");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    copy_dir(&fixture("tiny-wan2.1"), &snapshot);
    snapshot
}

#[test]
fn repo_ids_are_recognised() {
    assert!(is_repo_id("Wan-AI/Wan2.1-T2V-1.3B-Diffusers"));
    assert!(!is_repo_id("Wan2.1"));
    assert!(!is_repo_id("a/b/c"));
    assert!(!is_repo_id("/abs"));
    assert!(!is_repo_id("org/na me"));
}

#[test]
fn a_local_folder_is_used_as_it_is() {
    let dir = fixture("tiny-wan2.1");
    let cache = tempfile::tempdir().unwrap();
    let found = resolve(dir.to_str().unwrap(), &settings(cache.path(), true), |_| true, |_| true).unwrap();
    assert_eq!(found, dir);
}

#[test]
fn a_cached_repository_is_found_offline() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache_with_tiny_model(cache.path());
    let found = resolve("reel-test/tiny-wan", &settings(cache.path(), true), |_| true, |_| false).unwrap();
    assert_eq!(found, snapshot);
    assert!(found.join("transformer/config.json").is_file());
    // Online, a complete cached snapshot is used without asking the hub.
    let found = resolve("reel-test/tiny-wan", &settings(cache.path(), false), |_| true, |_| true).unwrap();
    assert_eq!(found, snapshot);
}

#[test]
fn an_uncached_repository_offline_says_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let err = resolve("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", &settings(cache.path(), true), |_| true, |_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the Hugging Face cache") && err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains(&cache.path().display().to_string()), "{err}");
}

#[test]
fn an_unreachable_hub_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let err = resolve("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", &settings(cache.path(), false), |_| true, |_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot fetch Wan-AI/Wan2.1-T2V-1.3B-Diffusers") && err.contains("HF_HUB_OFFLINE=1"), "{err}");
}

#[test]
fn neither_folder_nor_repo_id() {
    let cache = tempfile::tempdir().unwrap();
    let err = resolve("./no-such-folder", &settings(cache.path(), true), |_| true, |_| true).unwrap_err().to_string();
    assert!(err.contains("neither a folder nor a hub repository id"), "{err}");
}
