//! Flow-matching schedulers, equal to diffusers' (0.42.1) as Wan checkpoints configure them in
//! `scheduler/scheduler_config.json`.
//!
//! Scalar coefficients are computed in the same floating-point width as the reference (f64 where it
//! uses numpy, f32 where it uses 0-dim torch tensors), so schedules match to the last bit or so.

mod config;
mod flow_euler;
mod unipc;

use candle_core::Tensor;

pub use config::{SchedulerChoice, SchedulerConfig};
pub use flow_euler::{FlowMatchEulerConfig, FlowMatchEulerScheduler};
pub use unipc::{UniPcConfig, UniPcScheduler};

use crate::{Result, SamplingError};

/// What every scheduler steps through: the model's timesteps, the noise levels, the current step.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The timestep given to the model at each step (on the 0..num_train_timesteps scale).
    timesteps: Vec<f32>,
    /// Noise levels: one per step plus the final one.
    sigmas: Vec<f32>,
    num_train_timesteps: usize,
    step_index: usize,
}

impl Schedule {
    fn new(timesteps: Vec<f32>, sigmas: Vec<f32>, num_train_timesteps: usize) -> Self {
        Self { timesteps, sigmas, num_train_timesteps, step_index: 0 }
    }

    /// The index of the step about to be taken; an error once all have been taken.
    fn current(&self) -> Result<usize> {
        if self.step_index >= self.timesteps.len() {
            return Err(SamplingError::InvalidInput(format!(
                "scheduler stepped past its {} steps",
                self.timesteps.len()
            )));
        }
        Ok(self.step_index)
    }
}

/// A scheduler set up for a number of steps; `step` is called once per timestep, in order.
pub trait Scheduler: Send {
    fn schedule(&self) -> &Schedule;

    /// The timestep given to the model at each step (on the 0..num_train_timesteps scale).
    fn timesteps(&self) -> &[f32] {
        &self.schedule().timesteps
    }

    /// Noise levels: one per step plus the final one.
    fn sigmas(&self) -> &[f32] {
        &self.schedule().sigmas
    }

    /// `num_train_timesteps` of the configuration (the scale of `timesteps`).
    fn num_train_timesteps(&self) -> usize {
        self.schedule().num_train_timesteps
    }

    /// Advances `sample` by one step given the model's flow prediction at the current timestep.
    fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor>;
}

/// numpy's `linspace(start, stop, num)`: `start + i * step`, with the last point exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => vec![],
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut values: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            values[num - 1] = stop;
            values
        }
    }
}

/// The timestep shift of flow matching: `shift * s / (1 + (shift - 1) * s)`.
fn shift_sigma(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// Stretches shifted sigmas so the last equals `terminal` (diffusers' `stretch_shift_to_terminal`).
fn stretch_to_terminal(sigmas: &mut [f64], terminal: f64) {
    let Some(last) = sigmas.last().copied() else { return };
    let scale = (1.0 - last) / (1.0 - terminal);
    for s in sigmas.iter_mut() {
        *s = 1.0 - (1.0 - *s) / scale;
    }
}
