//! Choosing and configuring a scheduler from a checkpoint's `scheduler/scheduler_config.json`,
//! with the overrides a user may give (another scheduler, another shift).

use std::path::Path;

use serde::Deserialize;

use super::{FlowMatchEulerConfig, FlowMatchEulerScheduler, Scheduler, UniPcConfig, UniPcScheduler};
use crate::{Result, SamplingError};

/// The schedulers reel implements, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerChoice {
    /// `UniPCMultistepScheduler`, Wan's default.
    UniPc,
    /// `FlowMatchEulerDiscreteScheduler`.
    Euler,
}

impl std::str::FromStr for SchedulerChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "unipc" => Ok(Self::UniPc),
            "euler" => Ok(Self::Euler),
            other => Err(format!("unknown scheduler '{other}': expected unipc or euler")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerConfig {
    UniPc(UniPcConfig),
    FlowMatchEuler(FlowMatchEulerConfig),
}

#[derive(Deserialize)]
struct ClassName {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
}

impl SchedulerConfig {
    /// Reads a diffusers `scheduler_config.json`, choosing the scheduler by its `_class_name`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SamplingError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| match e {
            SamplingError::Config(msg) => SamplingError::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let invalid = |e: serde_json::Error| SamplingError::Config(format!("invalid scheduler config: {e}"));
        let ClassName { class_name } = serde_json::from_str(text).map_err(invalid)?;
        let config = match class_name.as_deref() {
            Some("UniPCMultistepScheduler") => Self::UniPc(serde_json::from_str(text).map_err(invalid)?),
            Some("FlowMatchEulerDiscreteScheduler") => {
                Self::FlowMatchEuler(serde_json::from_str(text).map_err(invalid)?)
            }
            other => {
                return Err(SamplingError::Config(format!(
                    "scheduler {other:?} is not supported: reel implements UniPCMultistepScheduler \
                     and FlowMatchEulerDiscreteScheduler (choose one with --scheduler)"
                )))
            }
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::UniPc(c) => c.validate(),
            Self::FlowMatchEuler(c) => c.validate(),
        }
    }

    pub fn choice(&self) -> SchedulerChoice {
        match self {
            Self::UniPc(_) => SchedulerChoice::UniPc,
            Self::FlowMatchEuler(_) => SchedulerChoice::Euler,
        }
    }

    /// The flow shift (`flow_shift` of UniPC, `shift` of flow Euler).
    pub fn shift(&self) -> f64 {
        match self {
            Self::UniPc(c) => c.flow_shift,
            Self::FlowMatchEuler(c) => c.shift,
        }
    }

    pub fn num_train_timesteps(&self) -> usize {
        match self {
            Self::UniPc(c) => c.num_train_timesteps,
            Self::FlowMatchEuler(c) => c.num_train_timesteps,
        }
    }

    /// The same schedule with another shift.
    pub fn with_shift(mut self, shift: f64) -> Result<Self> {
        match &mut self {
            Self::UniPc(c) => c.flow_shift = shift,
            Self::FlowMatchEuler(c) => c.shift = shift,
        }
        self.validate()?;
        Ok(self)
    }

    /// Another scheduler with this one's training timesteps and shift (both are flow matching with
    /// a shifted schedule, as Wan's own code offers them).
    pub fn with_choice(self, choice: SchedulerChoice) -> Self {
        if choice == self.choice() {
            return self;
        }
        let (train, shift) = (self.num_train_timesteps(), self.shift());
        match choice {
            SchedulerChoice::UniPc => {
                let mut c = UniPcConfig::wan(shift);
                c.num_train_timesteps = train;
                Self::UniPc(c)
            }
            SchedulerChoice::Euler => Self::FlowMatchEuler(FlowMatchEulerConfig {
                num_train_timesteps: train,
                shift,
                ..FlowMatchEulerConfig::default()
            }),
        }
    }

    /// A scheduler set up for `steps` inference steps.
    pub fn build(&self, steps: usize) -> Result<Box<dyn Scheduler>> {
        Ok(match self {
            Self::UniPc(c) => Box::new(UniPcScheduler::new(c, steps)?),
            Self::FlowMatchEuler(c) => Box::new(FlowMatchEulerScheduler::new(c, steps)?),
        })
    }
}
