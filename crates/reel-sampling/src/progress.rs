//! The one progress type every stage reports through: the CLI draws it as a progress bar, the studio
//! stores it as job progress.

/// What a generation is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Loading a model component from disk (its name in the checkpoint folder).
    Load(&'static str),
    /// Encoding the prompt and the negative prompt.
    EncodePrompt,
    /// Encoding the frames a video must start with (an image, the end of a previous clip).
    EncodeFrames,
    /// Denoising: one step of the sampler, each a transformer evaluation (two with guidance).
    Denoise,
    /// Decoding latents to frames, one latent frame at a time.
    Decode,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Load(component) => write!(f, "loading {component}"),
            Stage::EncodePrompt => write!(f, "encoding the prompt"),
            Stage::EncodeFrames => write!(f, "encoding the given frames"),
            Stage::Denoise => write!(f, "denoising"),
            Stage::Decode => write!(f, "decoding"),
        }
    }
}

/// `done` of `total` units of `stage` are finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// Receives progress events; `&mut |_| {}` ignores them.
pub type OnProgress<'a> = &'a mut dyn FnMut(Progress);
