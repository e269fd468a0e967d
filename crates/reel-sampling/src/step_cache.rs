//! Step caching for the diffusion transformer, after EasyCache (Zhou et al., 2025, "Less is
//! Enough: Training-Free Video Diffusion Acceleration via Runtime-Adaptive Caching").
//!
//! The transformer maps the step's latents `x` to a prediction `o`; from one step to the next
//! its transformation `o - x` changes little for long stretches of the schedule. After each
//! computed step the cache keeps that transformation and the *transformation rate*
//! `k = |Δo| / |Δx|` measured between the last two computed steps. At a later step it estimates
//! the relative change of the output as `k |x - x_prev| / |o_last|` and adds it up; while the sum
//! stays under the threshold the step reuses `x + (o - x)_last` instead of running the
//! transformer, and once it would pass the threshold the step is computed and the sum restarts.
//! The first `warmup_steps` steps (where the layout forms) and the last step are always computed.

use candle_core::Tensor;

use crate::Result;

/// How eagerly steps are reused: a larger threshold saves more evaluations and changes the
/// output more (0.05 to 0.2 are typical).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCacheSettings {
    pub threshold: f64,
    pub warmup_steps: usize,
}

impl StepCacheSettings {
    /// With `threshold` and warm-up over the first tenth of the steps (at least two).
    pub fn new(threshold: f64, steps: usize) -> Self {
        Self { threshold, warmup_steps: (steps / 10).max(2) }
    }
}

/// Transformer evaluations of one sampling run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DenoiseStats {
    /// Steps whose prediction came from the transformer.
    pub computed_steps: usize,
    /// Steps whose prediction came from the cache.
    pub reused_steps: usize,
}

pub struct StepCache {
    settings: StepCacheSettings,
    /// Latents of the previous step, computed or reused.
    previous_input: Option<Tensor>,
    /// Latents and prediction of the last computed step.
    last_computed: Option<(Tensor, Tensor)>,
    /// `prediction - latents` of the last computed step.
    transformation: Option<Tensor>,
    /// `k`, once two steps have been computed.
    rate: Option<f64>,
    accumulated: f64,
    pub stats: DenoiseStats,
}

fn mean_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?.mean_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

impl StepCache {
    pub fn new(settings: StepCacheSettings) -> Self {
        Self {
            settings,
            previous_input: None,
            last_computed: None,
            transformation: None,
            rate: None,
            accumulated: 0.0,
            stats: DenoiseStats::default(),
        }
    }

    /// The prediction for latents `input` at step `index` of `total`, when the cache may stand in
    /// for the transformer; `None` means: compute it, then [`Self::record`] it.
    pub fn reuse(&mut self, input: &Tensor, index: usize, total: usize) -> Result<Option<Tensor>> {
        let previous = self.previous_input.replace(input.clone());
        if index < self.settings.warmup_steps || index + 1 == total {
            return Ok(None);
        }
        let (Some(rate), Some(transformation), Some(previous), Some((_, last_output))) =
            (self.rate, &self.transformation, previous, &self.last_computed)
        else {
            return Ok(None);
        };
        let scale = mean_abs(last_output)?;
        if scale == 0.0 {
            return Ok(None);
        }
        self.accumulated += rate * mean_abs(&(input - previous)?)? / scale;
        if self.accumulated >= self.settings.threshold {
            return Ok(None);
        }
        self.stats.reused_steps += 1;
        Ok(Some((input + transformation)?))
    }

    /// Records a computed step: its latents and the transformer's (guided) prediction.
    pub fn record(&mut self, input: &Tensor, output: &Tensor) -> Result<()> {
        if let Some((last_input, last_output)) = &self.last_computed {
            let input_change = mean_abs(&(input - last_input)?)?;
            if input_change > 0.0 {
                self.rate = Some(mean_abs(&(output - last_output)?)? / input_change);
            }
        }
        self.transformation = Some((output - input)?);
        self.last_computed = Some((input.clone(), output.clone()));
        self.accumulated = 0.0;
        self.stats.computed_steps += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A "transformer" whose output drifts slowly: reused while the estimated change is small,
    /// recomputed when it adds up, never during warm-up or at the last step.
    #[test]
    fn reuses_only_while_the_estimated_change_stays_under_the_threshold() {
        let device = Device::Cpu;
        let base = Tensor::randn(0f32, 1.0, (1, 4, 2, 3, 3), &device).unwrap();
        let run = |threshold: f64| {
            let mut cache = StepCache::new(StepCacheSettings { threshold, warmup_steps: 2 });
            let mut decisions = Vec::new();
            for step in 0..20 {
                let input = (&base * (1.0 - step as f64 * 0.01)).unwrap();
                let reused = cache.reuse(&input, step, 20).unwrap();
                decisions.push(reused.is_some());
                if reused.is_none() {
                    let output = (&input * 2.0).unwrap();
                    cache.record(&input, &output).unwrap();
                }
            }
            (decisions, cache.stats)
        };
        let (never, stats) = run(0.0);
        assert!(never.iter().all(|r| !r));
        assert_eq!(stats, DenoiseStats { computed_steps: 20, reused_steps: 0 });
        let (some, stats) = run(0.05);
        assert!(!some[0] && !some[1] && !some[19], "{some:?}");
        assert!(stats.reused_steps > 0 && stats.computed_steps > 3, "{stats:?}");
        let (more, more_stats) = run(0.5);
        assert!(more_stats.reused_steps > stats.reused_steps, "{more:?}");
    }
}
