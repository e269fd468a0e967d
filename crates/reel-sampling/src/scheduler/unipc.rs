//! diffusers' `UniPCMultistepScheduler` (schedulers/scheduling_unipc_multistep.py) in the
//! flow-prediction mode Wan uses: flow sigmas with `flow_shift`, data prediction (`predict_x0`),
//! the bh1/bh2 predictor of any order with the UniC corrector, lower-order final steps.

use candle_core::Tensor;
use serde::Deserialize;

use super::{linspace, shift_sigma, stretch_to_terminal, Schedule, Scheduler};
use crate::{Result, SamplingError};

fn default_train_timesteps() -> usize {
    1000
}
fn default_order() -> usize {
    2
}
fn default_prediction_type() -> String {
    "epsilon".into()
}
fn default_true() -> bool {
    true
}
fn default_solver_type() -> String {
    "bh2".into()
}
fn default_flow_shift() -> f64 {
    1.0
}
fn default_final_sigmas() -> String {
    "zero".into()
}

/// The fields of the reference config this port reads; options it does not implement are rejected
/// by [`UniPcConfig::validate`] when set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UniPcConfig {
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_order")]
    pub solver_order: usize,
    #[serde(default = "default_prediction_type")]
    pub prediction_type: String,
    #[serde(default = "default_true")]
    pub predict_x0: bool,
    #[serde(default = "default_solver_type")]
    pub solver_type: String,
    #[serde(default = "default_true")]
    pub lower_order_final: bool,
    #[serde(default)]
    pub disable_corrector: Vec<usize>,
    #[serde(default)]
    pub use_flow_sigmas: bool,
    #[serde(default = "default_flow_shift")]
    pub flow_shift: f64,
    #[serde(default = "default_final_sigmas")]
    pub final_sigmas_type: String,
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    #[serde(default)]
    pub solver_p: Option<serde_json::Value>,
}

impl UniPcConfig {
    /// Wan's published configuration (scheduler_config.json of Wan2.1-T2V-1.3B-Diffusers) with the
    /// given flow shift.
    pub fn wan(flow_shift: f64) -> Self {
        let mut config: Self = serde_json::from_str("{}").expect("defaults deserialize");
        config.prediction_type = "flow_prediction".into();
        config.use_flow_sigmas = true;
        config.flow_shift = flow_shift;
        config
    }

    pub fn validate(&self) -> Result<()> {
        let reject = |what: String| {
            Err(SamplingError::Config(format!(
                "UniPCMultistepScheduler: {what}; reel implements the flow-prediction mode Wan \
                 checkpoints use (use_flow_sigmas, prediction_type \"flow_prediction\")"
            )))
        };
        if !self.use_flow_sigmas || self.prediction_type != "flow_prediction" || !self.predict_x0 {
            return reject(format!(
                "use_flow_sigmas={}, prediction_type={:?}, predict_x0={} is not supported",
                self.use_flow_sigmas, self.prediction_type, self.predict_x0
            ));
        }
        let options = [
            ("thresholding", self.thresholding),
            ("use_dynamic_shifting", self.use_dynamic_shifting),
            ("use_karras_sigmas", self.use_karras_sigmas),
            ("use_exponential_sigmas", self.use_exponential_sigmas),
            ("use_beta_sigmas", self.use_beta_sigmas),
            ("solver_p", self.solver_p.as_ref().is_some_and(|v| !v.is_null())),
        ];
        if let Some((name, _)) = options.iter().find(|(_, set)| *set) {
            return reject(format!("option `{name}` is not supported"));
        }
        if !matches!(self.solver_type.as_str(), "bh1" | "bh2") {
            return reject(format!("solver_type {:?} is not one of bh1, bh2", self.solver_type));
        }
        if !matches!(self.final_sigmas_type.as_str(), "zero" | "sigma_min") {
            return reject(format!("final_sigmas_type {:?} is not one of zero, sigma_min", self.final_sigmas_type));
        }
        if self.solver_order == 0 || self.num_train_timesteps < 2 || !(self.flow_shift > 0.0) {
            return reject(format!(
                "solver_order {}, num_train_timesteps {} and flow_shift {} must be positive",
                self.solver_order, self.num_train_timesteps, self.flow_shift
            ));
        }
        Ok(())
    }
}

pub struct UniPcScheduler {
    config: UniPcConfig,
    schedule: Schedule,
    /// Converted (data-prediction) model outputs of the last `solver_order` steps, oldest first.
    model_outputs: Vec<Option<Tensor>>,
    last_sample: Option<Tensor>,
    lower_order_nums: usize,
    this_order: usize,
}

/// alpha_t, sigma_t and lambda_t = ln(alpha_t) - ln(sigma_t) of a flow sigma, in f32.
fn flow_lambda(sigma: f32) -> (f32, f32, f32) {
    let alpha = 1.0 - sigma;
    (alpha, sigma, alpha.ln() - sigma.ln())
}

impl UniPcScheduler {
    pub fn new(config: &UniPcConfig, num_inference_steps: usize) -> Result<Self> {
        config.validate()?;
        if num_inference_steps == 0 {
            return Err(SamplingError::InvalidInput("the number of steps must be at least 1".into()));
        }
        let train = config.num_train_timesteps as f64;
        let mut sigmas: Vec<f64> = linspace(1.0, 1.0 / train, num_inference_steps + 1)
            [..num_inference_steps]
            .iter()
            .map(|s| shift_sigma(*s, config.flow_shift))
            .collect();
        if let Some(terminal) = config.shift_terminal.filter(|t| *t != 0.0) {
            stretch_to_terminal(&mut sigmas, terminal);
        }
        // Keeps log(sigma) finite at the first steps, as the reference does.
        if (sigmas[0] - 1.0).abs() < 1e-6 {
            sigmas[0] -= 1e-6;
        }
        // The reference casts timesteps to int64 (truncation).
        let timesteps = sigmas.iter().map(|s| (s * train).trunc() as f32).collect();
        let last = match config.final_sigmas_type.as_str() {
            "sigma_min" => *sigmas.last().expect("at least one step"),
            _ => 0.0,
        };
        sigmas.push(last);
        Ok(Self {
            model_outputs: vec![None; config.solver_order],
            config: config.clone(),
            schedule: Schedule::new(timesteps, sigmas.into_iter().map(|s| s as f32).collect(), config.num_train_timesteps),
            last_sample: None,
            lower_order_nums: 0,
            this_order: 0,
        })
    }

    /// The most recent converted model output but `back` (0 = newest).
    fn output(&self, back: usize) -> Result<&Tensor> {
        self.model_outputs[self.model_outputs.len() - 1 - back]
            .as_ref()
            .ok_or_else(|| SamplingError::InvalidInput("UniPC history is shorter than its order".into()))
    }

    /// Coefficients shared by predictor and corrector for the interval from sigma `s0` to sigma `t`
    /// with earlier points `history` (sigma indices): the step `h` terms and the linear system R, b.
    fn coefficients(&self, t: usize, s0: usize, history: &[usize], order: usize) -> Coefficients {
        let (alpha_t, sigma_t, lambda_t) = flow_lambda(self.schedule.sigmas[t]);
        let (_, sigma_s0, lambda_s0) = flow_lambda(self.schedule.sigmas[s0]);
        let h = lambda_t - lambda_s0;
        let mut rks: Vec<f32> = history
            .iter()
            .map(|&si| (flow_lambda(self.schedule.sigmas[si]).2 - lambda_s0) / h)
            .collect();
        rks.push(1.0);
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = if self.config.solver_type == "bh1" { hh } else { hh.exp_m1() };
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0f32;
        let mut r = Vec::with_capacity(order);
        let mut b = Vec::with_capacity(order);
        for i in 1..=order {
            r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect::<Vec<f32>>());
            b.push(h_phi_k * factorial / b_h);
            factorial *= (i + 1) as f32;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        Coefficients { alpha_t, sigma_t, sigma_s0, h_phi_1, b_h, rks, r, b }
    }

    /// `sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0`, the first-order part of both updates.
    fn first_order(c: &Coefficients, x: &Tensor, m0: &Tensor) -> Result<Tensor> {
        Ok(((x * (c.sigma_t / c.sigma_s0) as f64)? - (m0 * (c.alpha_t * c.h_phi_1) as f64)?)?)
    }

    /// Sum of `weights[k] * (m_k - m0) / rk` over the history.
    fn weighted_differences(&self, c: &Coefficients, m0: &Tensor, weights: &[f32]) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (k, weight) in weights.iter().enumerate() {
            let d = ((self.output(k + 1)? - m0)? / c.rks[k] as f64)?;
            let term = (d * *weight as f64)?;
            total = Some(match total {
                None => term,
                Some(sum) => (sum + term)?,
            });
        }
        Ok(total)
    }

    /// UniP predictor (diffusers' `multistep_uni_p_bh_update`, predict_x0).
    fn predict(&self, x: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.schedule.step_index;
        let history: Vec<usize> = (1..order).map(|k| i - k).collect();
        let c = self.coefficients(i + 1, i, &history, order);
        let m0 = self.output(0)?;
        let x_t = Self::first_order(&c, x, m0)?;
        if history.is_empty() {
            return Ok(x_t);
        }
        let rhos = if order == 2 { vec![0.5] } else { solve(&c.r[..order - 1], &c.b[..order - 1]) };
        let pred = self.weighted_differences(&c, m0, &rhos)?.expect("history is not empty");
        Ok((x_t - (pred * (c.alpha_t * c.b_h) as f64)?)?)
    }

    /// UniC corrector (diffusers' `multistep_uni_c_bh_update`, predict_x0) of the sample just
    /// predicted, given the converted model output at its timestep.
    fn correct(&self, this_output: &Tensor, last_sample: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.schedule.step_index;
        let history: Vec<usize> = (1..order).map(|k| i - (k + 1)).collect();
        let c = self.coefficients(i, i - 1, &history, order);
        let m0 = self.output(0)?;
        let x_t = Self::first_order(&c, last_sample, m0)?;
        let rhos = if order == 1 { vec![0.5] } else { solve(&c.r, &c.b) };
        let (last_rho, history_rhos) = rhos.split_last().expect("order >= 1");
        let d1_t = ((this_output - m0)? * *last_rho as f64)?;
        let correction = match self.weighted_differences(&c, m0, history_rhos)? {
            Some(sum) => (sum + d1_t)?,
            None => d1_t,
        };
        Ok((x_t - (correction * (c.alpha_t * c.b_h) as f64)?)?)
    }
}

struct Coefficients {
    alpha_t: f32,
    sigma_t: f32,
    sigma_s0: f32,
    h_phi_1: f32,
    b_h: f32,
    rks: Vec<f32>,
    r: Vec<Vec<f32>>,
    b: Vec<f32>,
}

/// Solves the small system `r x = b` (Gaussian elimination with partial pivoting, in f64).
fn solve(r: &[Vec<f32>], b: &[f32]) -> Vec<f32> {
    let n = b.len();
    let mut a: Vec<Vec<f64>> = (0..n)
        .map(|row| {
            let mut line: Vec<f64> = r[row][..n].iter().map(|v| *v as f64).collect();
            line.push(b[row] as f64);
            line
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|x, y| a[*x][col].abs().total_cmp(&a[*y][col].abs()))
            .expect("non-empty range");
        a.swap(col, pivot);
        for row in col + 1..n {
            let factor = a[row][col] / a[col][col];
            for k in col..=n {
                a[row][k] -= factor * a[col][k];
            }
        }
    }
    let mut x = vec![0f64; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (a[row][n] - tail) / a[row][row];
    }
    x.into_iter().map(|v| v as f32).collect()
}

impl Scheduler for UniPcScheduler {
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        let i = self.schedule.current()?;
        // Data prediction x0 = x - sigma * v; `sigma * v` in the model output's dtype, as in torch.
        let scaled = (model_output * self.schedule.sigmas[i] as f64)?.to_dtype(sample.dtype())?;
        let converted = (sample - scaled)?;

        let use_corrector = i > 0 && !self.config.disable_corrector.contains(&(i - 1)) && self.last_sample.is_some();
        let sample = match (&self.last_sample, use_corrector) {
            (Some(last), true) => self.correct(&converted, last, self.this_order)?,
            _ => sample.clone(),
        };

        self.model_outputs.remove(0);
        self.model_outputs.push(Some(converted));

        let order = self.config.solver_order;
        let this_order = if self.config.lower_order_final { order.min(self.schedule.timesteps.len() - i) } else { order };
        self.this_order = this_order.min(self.lower_order_nums + 1);

        let next = self.predict(&sample, self.this_order)?;
        self.last_sample = Some(sample.clone());
        if self.lower_order_nums < order {
            self.lower_order_nums += 1;
        }
        self.schedule.step_index += 1;
        Ok(next.to_dtype(sample.dtype())?)
    }
}
