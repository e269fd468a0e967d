//! Finding a checkpoint: a local folder, or a Hugging Face hub repository (such as
//! `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`) in the standard cache, downloaded into it when online.
//!
//! The cache and its settings are those of `huggingface_hub`: `HF_HUB_CACHE`, else `HF_HOME/hub`,
//! else `~/.cache/huggingface/hub`; `HF_HUB_OFFLINE=1` never touches the network; `HF_ENDPOINT`
//! and `HF_TOKEN` are honoured. A checkpoint downloaded by Python tools is found by reel and the
//! other way round.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};

use crate::{ModelError, Result};

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Every hub checkpoint reel runs has this file at its root; it marks a cached snapshot.
const ROOT_FILE: &str = "model_index.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub endpoint: String,
    pub token: Option<String>,
    /// Draw download progress bars on the terminal.
    pub progress: bool,
}

impl HubSettings {
    /// The settings `huggingface_hub` would use in this environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|home| PathBuf::from(home).join("hub")))
            .unwrap_or_else(|| Cache::default().path().clone());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self {
            cache_dir,
            offline,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
            token: var("HF_TOKEN").or_else(|| Cache::new(PathBuf::new()).token()),
            progress: false,
        }
    }
}

/// `org/name` with the characters the hub allows (each part starts with a letter or digit).
pub fn is_repo_id(reference: &str) -> bool {
    let allowed = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(reference.split('/').collect::<Vec<_>>().as_slice(), [org, name] if allowed(org) && allowed(name))
}

/// The local folder of a checkpoint given as a folder path or a hub repository id.
///
/// A repository already in the cache is used as it is when `is_complete` accepts its snapshot
/// folder (or when offline); otherwise the files `wanted` selects are downloaded into the cache.
pub fn resolve(
    reference: &str,
    settings: &HubSettings,
    wanted: impl Fn(&str) -> bool,
    is_complete: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    let local = Path::new(reference);
    if local.exists() {
        return Ok(local.to_path_buf());
    }
    if !is_repo_id(reference) {
        return Err(ModelError::Checkpoint(format!(
            "'{reference}' is neither a folder nor a hub repository id (like \
             Wan-AI/Wan2.1-T2V-1.3B-Diffusers)"
        )));
    }
    let cache = Cache::new(settings.cache_dir.clone());
    let cached = cache.repo(Repo::model(reference.to_string())).get(ROOT_FILE);
    if let Some(snapshot) = cached.as_deref().and_then(Path::parent) {
        if settings.offline || is_complete(snapshot) {
            return Ok(snapshot.to_path_buf());
        }
    }
    if settings.offline {
        return Err(ModelError::Checkpoint(format!(
            "{reference} is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set: fetch \
             it once with network access, or point --model at a local folder",
            settings.cache_dir.display()
        )));
    }
    download(reference, settings, cache, wanted)
}

fn download(reference: &str, settings: &HubSettings, cache: Cache, wanted: impl Fn(&str) -> bool) -> Result<PathBuf> {
    let unreachable = |e: hf_hub::api::sync::ApiError| {
        ModelError::Checkpoint(format!(
            "cannot fetch {reference} from the hub at {}: {e}. Check the network and the repository \
             name (gated repositories need HF_TOKEN), or set HF_HUB_OFFLINE=1 to use the cache only",
            settings.endpoint
        ))
    };
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(settings.endpoint.clone())
        .with_token(settings.token.clone())
        .with_progress(settings.progress)
        .with_retries(2)
        .build()
        .map_err(unreachable)?;
    let repo = api.model(reference.to_string());
    let info = repo.info().map_err(unreachable)?;
    let files: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).filter(|f| wanted(f)).collect();
    if !files.contains(&ROOT_FILE) {
        return Err(ModelError::Checkpoint(format!(
            "{reference} has no {ROOT_FILE}: it is not a checkpoint in the diffusers layout (look for \
             the repository whose name ends in -Diffusers)"
        )));
    }
    let mut root = None;
    for file in files {
        let path = repo.get(file).map_err(unreachable)?;
        if file == ROOT_FILE {
            root = path.parent().map(Path::to_path_buf);
        }
    }
    Ok(root.expect("the root file was downloaded"))
}
