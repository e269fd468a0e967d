//! Trainable parameters for reel's model code: a [`VarBuilder`] backend that creates each
//! parameter on first request (initialised by what its name says it is), an AdamW optimiser whose
//! state can be saved and restored, and safetensors I/O in the checkpoint's own names.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::rng::Rng;

/// The parameters of one model, by checkpoint name.
pub struct Params {
    vars: Mutex<BTreeMap<String, Var>>,
    rng: Mutex<Rng>,
}

impl Params {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self { vars: Mutex::new(BTreeMap::new()), rng: Mutex::new(Rng::new(seed)) })
    }

    pub fn var_builder(self: &Arc<Self>) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.clone())), DType::F32, Device::Cpu)
    }

    /// Adds an existing parameter under `name` (to optimise several models together).
    pub fn insert(&self, name: String, var: Var) {
        self.vars.lock().expect("params lock").insert(name, var);
    }

    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars.lock().expect("params lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The parameters alone, without their names (what gradients are gathered for).
    pub fn variables(&self) -> Vec<Var> {
        self.vars.lock().expect("params lock").values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Initial values: ones for norm scales, zeros for biases and the final projection (so a new
    /// model starts by predicting nothing), diffusers' scaled normal for modulation tables, and a
    /// normal scaled by 1/sqrt(fan-in) for the rest.
    fn initial(&self, name: &str, shape: &Shape) -> Result<Tensor> {
        let dims = shape.dims();
        let count = shape.elem_count();
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_norm_scale = leaf == "gamma" || (leaf == "weight" && name.contains("norm"));
        let values: Vec<f32> = if is_norm_scale {
            vec![1.0; count]
        } else if leaf == "bias" || name.starts_with("proj_out.") {
            vec![0.0; count]
        } else {
            let std = if leaf == "scale_shift_table" {
                1.0 / (*dims.last().unwrap_or(&1) as f32).sqrt()
            } else if name.contains("relative_attention_bias") {
                0.1
            } else if name == "shared.weight" {
                1.0
            } else {
                let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
                let gain = if name.contains("conv_out") { 0.3 } else { 1.0 };
                gain / (fan_in as f32).sqrt()
            };
            let mut rng = self.rng.lock().expect("rng lock");
            (0..count).map(|_| rng.normal() * std).collect()
        };
        Tensor::from_vec(values, shape.clone(), &Device::Cpu)
    }

    /// All values as plain tensors (for saving weights).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        save_atomically(&self.tensors(), path)
    }

    /// Restores values saved by [`Params::save`] into existing parameters (names must match).
    pub fn restore(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.restore_where(tensors, |_| true)
    }

    /// Sets the parameters whose names `wanted` accepts from `tensors`; the others keep their values.
    pub fn restore_where(&self, tensors: &HashMap<String, Tensor>, wanted: impl Fn(&str) -> bool) -> Result<()> {
        for (name, var) in self.vars().into_iter().filter(|(name, _)| wanted(name)) {
            let value = tensors.get(&name).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.clone() })?;
            var.set(value)?;
        }
        Ok(())
    }
}

struct Backend(Arc<Params>);

impl SimpleBackend for Backend {
    fn get(&self, shape: Shape, name: &str, _hints: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some(var) = self.0.vars.lock().expect("params lock").get(name) {
            return var.as_tensor().to_dtype(dtype)?.to_device(dev);
        }
        let var = Var::from_tensor(&self.0.initial(name, &shape)?)?;
        self.0.vars.lock().expect("params lock").insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("trainable parameter '{name}' must be requested with its shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.vars.lock().expect("params lock").contains_key(name)
    }
}

/// AdamW with decoupled weight decay and global gradient-norm clipping.
pub struct AdamW {
    params: Arc<Params>,
    moments: BTreeMap<String, (Tensor, Tensor)>,
    pub step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    clip_norm: f64,
}

impl AdamW {
    pub fn new(params: Arc<Params>, weight_decay: f64) -> Self {
        Self { params, moments: BTreeMap::new(), step: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, clip_norm: 1.0 }
    }

    /// One update at learning rate `lr`; returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<f64> {
        let vars = self.params.vars();
        let mut norm_sq = 0f64;
        for (_, var) in &vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                norm_sq += g.detach().sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let norm = norm_sq.sqrt();
        let scale = if norm > self.clip_norm { self.clip_norm / norm } else { 1.0 };
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        for (name, var) in &vars {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            // Detached: the optimiser state must not hold on to this step's computation graph.
            let g = (g.detach() * scale)?;
            let (m, v) = match self.moments.remove(name) {
                Some(state) => state,
                None => (g.zeros_like()?, g.zeros_like()?),
            };
            let m = ((m * self.beta1)? + (&g * (1.0 - self.beta1))?)?.detach();
            let v = ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?.detach();
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor().detach();
            let decayed = (theta * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.moments.insert(name.clone(), (m, v));
        }
        Ok(norm)
    }

    /// Parameters, moments and step count in one safetensors file, with `extra` tensors beside them.
    pub fn save(&self, path: &Path, extra: HashMap<String, Tensor>) -> Result<()> {
        let mut tensors = self.params.tensors();
        tensors.extend(extra);
        for (name, (m, v)) in &self.moments {
            tensors.insert(format!("adam.m.{name}"), m.clone());
            tensors.insert(format!("adam.v.{name}"), v.clone());
        }
        tensors.insert("adam.step".into(), Tensor::new(&[self.step as u32], &Device::Cpu)?);
        save_atomically(&tensors, path)
    }

    /// Restores what [`AdamW::save`] wrote, as loaded from its file (the extras are left to their owners).
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.params.restore(tensors)?;
        self.moments.clear();
        for (name, _) in self.params.vars() {
            if let (Some(m), Some(v)) = (tensors.get(&format!("adam.m.{name}")), tensors.get(&format!("adam.v.{name}"))) {
                self.moments.insert(name, (m.clone(), v.clone()));
            }
        }
        self.step = tensors.get("adam.step").map(|t| t.to_vec1::<u32>().map(|s| s[0] as usize)).transpose()?.unwrap_or(0);
        Ok(())
    }
}

/// An exponential moving average of parameters, the weights a diffusion model is sampled with:
/// the noise of small-batch updates averages out. Its decay ramps up as (1 + t) / (10 + t) over
/// the first steps, so the values it starts from do not linger.
pub struct Ema {
    decay: f64,
    averages: BTreeMap<String, Tensor>,
}

impl Ema {
    pub fn new(decay: f64) -> Self {
        Self { decay, averages: BTreeMap::new() }
    }

    /// Folds in the parameters' values after optimiser step `step` (counted from 0).
    pub fn update(&mut self, params: &Params, step: usize) -> Result<()> {
        let decay = self.decay.min((1 + step) as f64 / (10 + step) as f64);
        for (name, var) in params.vars() {
            let value = var.as_tensor().detach();
            let average = match self.averages.remove(&name) {
                Some(average) => ((average * decay)? + (value * (1.0 - decay))?)?,
                // A copy: the parameter's storage is overwritten in place by the next step.
                None => value.copy()?,
            };
            self.averages.insert(name, average);
        }
        Ok(())
    }

    /// The averages of the parameters named `prefix...`, under the rest of their names (the
    /// parameters themselves where nothing was averaged yet).
    pub fn tensors(&self, params: &Params, prefix: &str) -> HashMap<String, Tensor> {
        params
            .vars()
            .into_iter()
            .filter_map(|(name, var)| {
                let short = name.strip_prefix(prefix)?.to_string();
                Some((short, self.averages.get(&name).cloned().unwrap_or_else(|| var.as_tensor().clone())))
            })
            .collect()
    }

    /// Adds the averages to a state file's tensors, as `ema.NAME`.
    pub fn store(&self, tensors: &mut HashMap<String, Tensor>) {
        for (name, average) in &self.averages {
            tensors.insert(format!("ema.{name}"), average.clone());
        }
    }

    /// Takes back the averages [`Ema::store`] wrote (a state without them starts a new average).
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>) {
        self.averages = tensors
            .iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("ema.")?.to_string(), value.clone())))
            .collect();
    }
}

/// Linear warm-up, then cosine decay to a tenth of the peak.
pub fn learning_rate(peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()))
}

/// Writes `tensors` to `path` through a staging file beside it, synced and renamed over `path`: a
/// run stopped mid-write (killed, crashed, out of disk) leaves the previous file whole, so the run
/// resumes from its last save and a checkpoint folder never holds half a file.
pub fn save_atomically(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".partial");
    let staging = std::path::PathBuf::from(staging);
    let written = candle_core::safetensors::save(tensors, &staging)
        .and_then(|()| Ok(std::fs::File::open(&staging)?.sync_all()?))
        .and_then(|()| Ok(std::fs::rename(&staging, path)?));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&staging);
        candle_core::Error::Msg(format!("cannot save {}: {e} (is the disk full or the folder read-only?)", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(rng: &mut Rng, count: usize) -> Tensor {
        Tensor::from_vec((0..count).map(|_| rng.normal()).collect::<Vec<f32>>(), count, &Device::Cpu).unwrap()
    }

    /// A parameter set holding `dit.w` of `count` random values; returns the set and that parameter.
    fn transformer_weight(rng: &mut Rng, count: usize) -> Result<(Arc<Params>, Var)> {
        let params = Params::new(0);
        let var = Var::from_tensor(&random(rng, count))?;
        params.insert("dit.w".into(), var.clone());
        Ok((params, var))
    }

    #[test]
    fn the_moving_average_follows_its_ramped_decay_and_survives_a_save() -> Result<()> {
        let mut rng = Rng::new(3);
        let (params, var) = transformer_weight(&mut rng, 6)?;
        params.insert("text.w".into(), Var::from_tensor(&random(&mut rng, 2))?);
        let decay = 0.9;
        let mut ema = Ema::new(decay);
        let mut expected: Vec<f64> = Vec::new();
        for step in 0..30 {
            // The optimiser overwrites the parameter in place, as a training step does.
            var.set(&random(&mut rng, 6))?;
            ema.update(&params, step)?;
            let value = var.as_tensor().to_vec1::<f32>()?;
            let d = decay.min((1 + step) as f64 / (10 + step) as f64);
            expected = if step == 0 {
                value.iter().map(|v| *v as f64).collect()
            } else {
                expected.iter().zip(&value).map(|(e, v)| d * e + (1.0 - d) * *v as f64).collect()
            };
            let got = ema.tensors(&params, "dit.")["w"].to_vec1::<f32>()?;
            for (g, e) in got.iter().zip(&expected) {
                assert!((*g as f64 - e).abs() <= 1e-5 * e.abs().max(1.0), "step {step}: average {g} vs {e}");
            }
        }
        let averaged = ema.tensors(&params, "dit.");
        assert_eq!(averaged.len(), 1, "only the prefixed parameter, under its short name");
        let got = averaged["w"].to_vec1::<f32>()?;
        let last = var.as_tensor().to_vec1::<f32>()?;
        assert!(got.iter().zip(&last).any(|(g, l)| (g - l).abs() > 1e-3), "the average is not the last value");

        let mut state = HashMap::new();
        ema.store(&mut state);
        let mut restored = Ema::new(decay);
        restored.restore(&state);
        assert_eq!(restored.tensors(&params, "dit.")["w"].to_vec1::<f32>()?, got);
        Ok(())
    }

    #[test]
    fn a_zero_decay_keeps_the_last_weights() -> Result<()> {
        let mut rng = Rng::new(4);
        let (params, var) = transformer_weight(&mut rng, 5)?;
        let mut ema = Ema::new(0.0);
        for step in 0..4 {
            var.set(&random(&mut rng, 5))?;
            ema.update(&params, step)?;
        }
        assert_eq!(ema.tensors(&params, "dit.")["w"].to_vec1::<f32>()?, var.as_tensor().to_vec1::<f32>()?);
        Ok(())
    }

    #[test]
    fn a_save_that_cannot_finish_keeps_the_previous_file() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        let mut rng = Rng::new(5);
        let (first, _) = transformer_weight(&mut rng, 16)?;
        first.save(&path)?;
        let (second, _) = transformer_weight(&mut rng, 16)?;
        second.save(&path)?;
        assert!(!dir.path().join("state.safetensors.partial").exists(), "the staging file was left behind");
        let saved = candle_core::safetensors::load(&path, &Device::Cpu)?;
        assert_eq!(saved["dit.w"].to_vec1::<f32>()?, second.tensors()["dit.w"].to_vec1::<f32>()?);

        // A folder where the staging file goes makes the write fail, as a full disk would.
        std::fs::create_dir(dir.path().join("state.safetensors.partial")).unwrap();
        let (third, _) = transformer_weight(&mut rng, 16)?;
        let error = third.save(&path).unwrap_err().to_string();
        assert!(error.contains("state.safetensors"), "{error}");
        let kept = candle_core::safetensors::load(&path, &Device::Cpu)?;
        assert_eq!(kept["dit.w"].to_vec1::<f32>()?, second.tensors()["dit.w"].to_vec1::<f32>()?);
        Ok(())
    }
}
