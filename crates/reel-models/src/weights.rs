//! Reading one component folder of a checkpoint in the diffusers layout: its `config.json` and its
//! weights, in one safetensors file or in shards listed by a `*.safetensors.index.json`, memory-mapped
//! and converted to the requested dtype as they are read.
//!
//! Loading is audited: the model asks for every parameter by its checkpoint name through a
//! [`VarBuilder`]; a parameter that is missing or has the wrong shape does not stop construction
//! (a zero-sized placeholder stands in), so that [`Weights::finish`] can report every missing,
//! misshapen and unused tensor by name in one error.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::{ModelError, Result};

/// Names of the single-file weights diffusers and transformers write, in order of preference.
const SINGLE_FILE_NAMES: [&str; 2] = ["diffusion_pytorch_model.safetensors", "model.safetensors"];

/// How many names of each kind an error lists before it only counts the rest.
const LISTED_NAMES: usize = 12;

/// One component of a checkpoint (`transformer/`, `vae/`, ...): config and weight files.
#[derive(Debug, Clone)]
pub struct ComponentFolder {
    dir: PathBuf,
    weight_files: Vec<PathBuf>,
}

impl ComponentFolder {
    /// Finds `config.json` and the weight files in `dir`, without reading the weights yet.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(ModelError::Checkpoint(format!(
                "{} is not a folder: expected a checkpoint component folder holding config.json \
                 and *.safetensors",
                dir.display()
            )));
        }
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(ModelError::Checkpoint(format!(
                "{} is missing: a component folder in the diffusers layout needs its config.json \
                 (was the download interrupted?)",
                config.display()
            )));
        }
        let weight_files = find_weight_files(&dir)?;
        Ok(Self { dir, weight_files })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn weight_files(&self) -> &[PathBuf] {
        &self.weight_files
    }

    /// The component's `config.json`, deserialized.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        read_json(&self.dir.join("config.json"), "model config")
    }

    /// How many weights the component's files hold, from their headers (no tensor is read).
    pub fn parameter_count(&self) -> Result<u64> {
        let mut count = 0;
        for path in &self.weight_files {
            let st = map_safetensors(path)?;
            count += st.tensors().iter().map(|(_, view)| view.shape().iter().product::<usize>() as u64).sum::<u64>();
        }
        Ok(count)
    }

    /// Memory-maps the weight files; tensors are read when the model asks for them.
    pub fn weights(&self, dtype: DType, device: &Device) -> Result<Weights> {
        let mut files = Vec::with_capacity(self.weight_files.len());
        let mut index = HashMap::new();
        for (file_index, path) in self.weight_files.iter().enumerate() {
            let st = map_safetensors(path)?;
            for (name, view) in st.tensors() {
                index.insert(name, (file_index, view.shape().to_vec()));
            }
            files.push(st);
        }
        let log = Arc::new(Mutex::new(AuditLog::default()));
        let backend = AuditedBackend { files, index, log: log.clone() };
        let all_names = backend.index.keys().cloned().collect();
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        Ok(Weights { vb, log, all_names, dir: self.dir.clone() })
    }
}

fn map_safetensors(path: &Path) -> Result<MmapedSafetensors> {
    // SAFETY: the file is mapped read-only; like every safetensors reader we assume it is not
    // modified while it is read.
    unsafe { MmapedSafetensors::new(path) }.map_err(|e| {
        ModelError::Checkpoint(format!(
            "{} is not a readable safetensors file ({e}); the file may be truncated or corrupt: \
             download it again",
            path.display()
        ))
    })
}

/// The weights of one component, ready to be handed to a model constructor.
pub struct Weights {
    vb: VarBuilder<'static>,
    log: Arc<Mutex<AuditLog>>,
    all_names: BTreeSet<String>,
    dir: PathBuf,
}

impl Weights {
    pub fn var_builder(&self) -> VarBuilder<'static> {
        self.vb.clone()
    }

    /// Checks the audit once the model is built: every parameter found with its shape and every
    /// tensor in the files used, apart from names the reference itself ignores on load.
    pub fn finish(self, ignored: &[&str]) -> Result<()> {
        let log = self.log.lock().expect("weight audit lock poisoned");
        let unexpected: Vec<String> = self
            .all_names
            .iter()
            .filter(|name| !log.used.contains(*name))
            .filter(|name| !log.mismatched.iter().any(|(m, _, _)| m == *name))
            .filter(|name| !ignored.iter().any(|pattern| name.contains(pattern)))
            .cloned()
            .collect();
        if log.missing.is_empty() && log.mismatched.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let mut message = format!(
            "the weights in {} do not match its config.json:",
            self.dir.display()
        );
        if !log.missing.is_empty() {
            let items = log.missing.iter().map(|(name, shape)| format!("{name} {shape:?}"));
            message += &list("missing tensors", log.missing.len(), items);
        }
        if !log.mismatched.is_empty() {
            let items = log
                .mismatched
                .iter()
                .map(|(name, want, found)| format!("{name}: expected {want:?}, found {found:?}"));
            message += &list("tensors with the wrong shape", log.mismatched.len(), items);
        }
        if !unexpected.is_empty() {
            message += &list("unexpected tensors", unexpected.len(), unexpected.iter().cloned());
        }
        message += "\nthe files belong to a different model or configuration, or a download is \
                    incomplete: fetch the checkpoint again or fix config.json";
        Err(ModelError::Checkpoint(message))
    }
}

fn list(title: &str, count: usize, items: impl Iterator<Item = String>) -> String {
    let mut text = format!("\n  {count} {title}:");
    for item in items.take(LISTED_NAMES) {
        text += &format!("\n    {item}");
    }
    if count > LISTED_NAMES {
        text += &format!("\n    ... and {} more", count - LISTED_NAMES);
    }
    text
}

#[derive(Default)]
struct AuditLog {
    used: BTreeSet<String>,
    missing: Vec<(String, Vec<usize>)>,
    mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

struct AuditedBackend {
    files: Vec<MmapedSafetensors>,
    /// Tensor name -> (file, shape).
    index: HashMap<String, (usize, Vec<usize>)>,
    log: Arc<Mutex<AuditLog>>,
}

impl AuditedBackend {
    /// A zero-sized stand-in with the requested shape, so construction can go on and report all.
    fn placeholder(shape: &Shape, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }
}

impl SimpleBackend for AuditedBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut log = self.log.lock().expect("weight audit lock poisoned");
        match self.index.get(name) {
            None => {
                log.missing.push((name.to_string(), shape.dims().to_vec()));
                Self::placeholder(&shape, dtype, dev)
            }
            Some((_, found)) if found.as_slice() != shape.dims() => {
                log.mismatched.push((name.to_string(), shape.dims().to_vec(), found.clone()));
                Self::placeholder(&shape, dtype, dev)
            }
            Some((file, _)) => {
                log.used.insert(name.to_string());
                drop(log);
                self.files[*file].load(name, dev)?.to_dtype(dtype)
            }
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let (file, _) = self.index.get(name).ok_or_else(|| candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        })?;
        self.log.lock().expect("weight audit lock poisoned").used.insert(name.to_string());
        self.files[*file].load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Reads and deserializes a JSON file, naming the file in every error.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        what,
        source,
    })
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

fn find_weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();

    let indexes: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors.index.json")).collect();
    let index = match indexes.as_slice() {
        [] => None,
        [only] => Some(*only),
        several => SINGLE_FILE_NAMES
            .iter()
            .map(|single| format!("{single}.index.json"))
            .find_map(|preferred| several.iter().find(|n| ***n == preferred).copied()),
    };
    if let Some(index) = index {
        let path = dir.join(index);
        let shard_index: ShardIndex = read_json(&path, "safetensors shard index")?;
        let shards: BTreeSet<&String> = shard_index.weight_map.values().collect();
        let files: Vec<PathBuf> = shards.into_iter().map(|s| dir.join(s)).collect();
        if let Some(absent) = files.iter().find(|f| !f.is_file()) {
            return Err(ModelError::Checkpoint(format!(
                "{} lists the shard {}, which is missing: the download is incomplete, fetch the \
                 checkpoint again",
                path.display(),
                absent.display()
            )));
        }
        return Ok(files);
    }
    if indexes.len() > 1 {
        return Err(ModelError::Checkpoint(format!(
            "{} holds several shard indexes ({}); keep the one that belongs to config.json",
            dir.display(),
            indexes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }

    let singles: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors")).collect();
    let chosen = SINGLE_FILE_NAMES
        .iter()
        .find_map(|preferred| singles.iter().find(|n| **n == preferred).copied())
        .or(match singles.as_slice() {
            [only] => Some(*only),
            _ => None,
        });
    match chosen {
        Some(file) => Ok(vec![dir.join(file)]),
        None if singles.is_empty() => Err(ModelError::Checkpoint(format!(
            "no weights in {}: expected diffusion_pytorch_model.safetensors (or model.safetensors), \
             or shards with a *.safetensors.index.json",
            dir.display()
        ))),
        None => Err(ModelError::Checkpoint(format!(
            "{} holds several safetensors files ({}) and no index naming the shards: add the \
             *.safetensors.index.json that came with them",
            dir.display(),
            singles.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A [`VarBuilder`] that draws every parameter at random (normal, scaled by 1/sqrt(fan-in) so
/// activations stay in range): a model of a real configuration without its checkpoint, for
/// benchmarks and memory measurements.
pub fn random_var_builder(dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomBackend), dtype, device.clone())
}

struct RandomBackend;

impl SimpleBackend for RandomBackend {
    fn get(
        &self,
        shape: Shape,
        _name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let fan_in = if shape.rank() > 1 { shape.dims()[1..].iter().product::<usize>() } else { 1 };
        let std = 1.0 / (fan_in as f64).sqrt();
        Tensor::randn(0f32, std as f32, shape, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights have no shape for '{name}'; ask for it with a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}
