//! diffusers' `FlowMatchEulerDiscreteScheduler` (schedulers/scheduling_flow_match_euler_discrete.py)
//! with a static shift: `x_next = x + (sigma_next - sigma) * v`.

use candle_core::{DType, Tensor};
use serde::Deserialize;

use super::{linspace, shift_sigma, stretch_to_terminal, Schedule, Scheduler};
use crate::{Result, SamplingError};

fn default_train_timesteps() -> usize {
    1000
}
fn default_shift() -> f64 {
    1.0
}

/// The fields of the reference config this port reads; options it does not implement are rejected
/// by [`FlowMatchEulerConfig::validate`] when set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowMatchEulerConfig {
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_shift")]
    pub shift: f64,
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    #[serde(default)]
    pub invert_sigmas: bool,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    #[serde(default)]
    pub stochastic_sampling: bool,
}

impl Default for FlowMatchEulerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults deserialize")
    }
}

impl FlowMatchEulerConfig {
    pub fn validate(&self) -> Result<()> {
        let unsupported = [
            ("use_dynamic_shifting", self.use_dynamic_shifting),
            ("invert_sigmas", self.invert_sigmas),
            ("use_karras_sigmas", self.use_karras_sigmas),
            ("use_exponential_sigmas", self.use_exponential_sigmas),
            ("use_beta_sigmas", self.use_beta_sigmas),
            ("stochastic_sampling", self.stochastic_sampling),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(SamplingError::Config(format!(
                "FlowMatchEulerDiscreteScheduler option `{name}` is not supported; Wan checkpoints \
                 do not use it: remove it from scheduler_config.json"
            )));
        }
        if self.num_train_timesteps < 2 || !(self.shift > 0.0) {
            return Err(SamplingError::Config(format!(
                "FlowMatchEulerDiscreteScheduler needs num_train_timesteps >= 2 and shift > 0, \
                 found {} and {}",
                self.num_train_timesteps, self.shift
            )));
        }
        Ok(())
    }
}

pub struct FlowMatchEulerScheduler {
    schedule: Schedule,
}

impl FlowMatchEulerScheduler {
    pub fn new(config: &FlowMatchEulerConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate()?;
        if num_inference_steps == 0 {
            return Err(SamplingError::InvalidInput("the number of steps must be at least 1".into()));
        }
        let train = config.num_train_timesteps;
        // The training schedule, in f32 as the reference's constructor builds it; its extremes bound
        // the inference schedule.
        let train_sigma = |t: f64| -> f32 {
            let s = (t as f32) / train as f32;
            let shift = config.shift as f32;
            shift * s / (1.0 + (shift - 1.0) * s)
        };
        let sigma_max = train_sigma(train as f64) as f64;
        let sigma_min = train_sigma(1.0) as f64;

        let mut sigmas: Vec<f64> = linspace(sigma_max * train as f64, sigma_min * train as f64, num_inference_steps)
            .into_iter()
            .map(|t| shift_sigma(t / train as f64, config.shift))
            .collect();
        if let Some(terminal) = config.shift_terminal.filter(|t| *t != 0.0) {
            stretch_to_terminal(&mut sigmas, terminal);
        }
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
        let timesteps = sigmas.iter().map(|s| s * train as f32).collect();
        sigmas.push(0.0);
        Ok(Self { schedule: Schedule::new(timesteps, sigmas, train) })
    }
}

impl Scheduler for FlowMatchEulerScheduler {
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        let i = self.schedule.current()?;
        let sigmas = &self.schedule.sigmas;
        let dt = sigmas[i + 1] - sigmas[i];
        // As the reference: the update in f32, `dt * v` in the model output's dtype, and the result
        // returned in the model output's dtype.
        let update = (model_output * dt as f64)?.to_dtype(DType::F32)?;
        let next = (sample.to_dtype(DType::F32)? + update)?.to_dtype(model_output.dtype())?;
        self.schedule.step_index += 1;
        Ok(next)
    }
}
