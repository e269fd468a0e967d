//! `reel eval demo`: scores the demo model's prompt adherence on held-out prompts.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use reel_demo::continuity::evaluate_continuity;
use reel_demo::eval::{cases, comparison_sheet, evaluate, first_frame_generator, held_out_cases, model_generator, vae_round_trip, Case, CaseGenerator, Sampling};
use reel_demo::world::Split;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    target: EvalTarget,
}

#[derive(Subcommand)]
enum EvalTarget {
    /// Generate clips for held-out prompts and score colour, shape, count, motion and camera
    Demo(DemoEval),
    /// Start the demo model from the world's first frames of held-out prompts, continue for several
    /// windows, and score what it kept and how smooth the joins are
    Continuity(ContinuityEval),
}

/// Sampling settings to evaluate the model under, in place of its own (`reel.json`, scheduler config).
#[derive(Args)]
struct SamplingArgs {
    /// Denoising steps [default: the model's]
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale [default: the model's]
    #[arg(long)]
    guidance: Option<f64>,
    /// Flow shift of the schedule [default: the checkpoint's]
    #[arg(long)]
    shift: Option<f64>,
    /// Generate with the step cache at this threshold (see `reel generate --step-cache`)
    #[arg(long, value_name = "THRESHOLD")]
    step_cache: Option<f64>,
}

impl SamplingArgs {
    fn sampling(&self) -> Sampling {
        Sampling { steps: self.steps, guidance: self.guidance, shift: self.shift, step_cache: self.step_cache }
    }

    /// The settings given, for the report's heading ("the model's" when none is).
    fn describe(&self) -> String {
        let given: Vec<String> = [
            self.steps.map(|v| format!("{v} steps")),
            self.guidance.map(|v| format!("guidance {v}")),
            self.shift.map(|v| format!("shift {v}")),
            self.step_cache.map(|v| format!("step cache {v}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.is_empty() { "the model's".into() } else { format!("{}, the model's otherwise", given.join(", ")) }
    }
}

/// The [`SamplingArgs`] flags: they change how the model generates, so they mean nothing where no
/// model generates (`--reference`, `--vae-only`).
const SAMPLING_FLAGS: [&str; 4] = ["steps", "guidance", "shift", "step_cache"];

#[derive(Args)]
struct ContinuityEval {
    /// Checkpoint to evaluate [default: the bundled demo model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Held-out prompts
    #[arg(long, default_value_t = 20)]
    count: usize,
    /// Seed choosing the prompts
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Windows per video
    #[arg(long, default_value_t = 3)]
    windows: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Also write the report as JSON
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print each prompt's scores as it is done
    #[arg(long, short)]
    verbose: bool,
}

fn run_continuity(args: ContinuityEval) -> anyhow::Result<()> {
    let dir = match &args.model {
        Some(dir) => dir.clone(),
        None => reel_demo::bundled::checkpoint_dir().context("the bundled demo model is unavailable")?,
    };
    let generator = CaseGenerator::open(&dir, args.sampling.sampling()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cases = held_out_cases(args.count, args.seed);
    let report = evaluate_continuity(&generator, &cases, args.windows, &mut |i, score| {
        if args.verbose {
            eprintln!("{:>3} {score:?}", i + 1);
        }
    })
    .map_err(|e| anyhow::anyhow!("continuity evaluation failed: {e}"))?;
    println!("sampling: {}", args.sampling.describe());
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[derive(Args)]
struct DemoEval {
    /// Checkpoint to evaluate [default: the bundled demo model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Held-out prompts
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Seed choosing the prompts
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which prompts: combinations held out of training (the targets' measure), or combinations
    /// seen in training (new scenes and captions), to tell learning from generalisation
    #[arg(long, value_enum, default_value_t = Prompts::HeldOut)]
    prompts: Prompts,
    /// Score the world's own renders instead of a model: the evaluator's ceiling
    #[arg(long, conflicts_with_all = SAMPLING_FLAGS)]
    reference: bool,
    /// Score the world's renders passed through the checkpoint's VAE alone (encode, decode): the VAE's ceiling
    #[arg(long, conflicts_with = "reference", conflicts_with_all = SAMPLING_FLAGS)]
    vae_only: bool,
    /// Start each clip from the world's own first frame of its prompt (image-to-video), so that the
    /// objects are given in place and the scores tell whether the model moves them as asked
    #[arg(long, conflicts_with_all = ["reference", "vae_only"])]
    from_first_frame: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Also write the report (every prompt, what was seen, the scores) as JSON
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write each prompt's clip as DIR/NNN.png: the world's render of the prompt above, the scored frames below
    #[arg(long, value_name = "DIR")]
    frames: Option<PathBuf>,
    /// Print each prompt's scores as it is done
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Prompts {
    HeldOut,
    Seen,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let args = match args.target {
        EvalTarget::Demo(args) => args,
        EvalTarget::Continuity(args) => return run_continuity(args),
    };
    let (split, described) = match args.prompts {
        Prompts::HeldOut => (Split::HeldOut, "combinations held out of training"),
        Prompts::Seen => (Split::Train, "combinations seen in training"),
    };
    let cases = cases(args.count, args.seed, split);
    let mut on_case = |i: usize, score: &reel_demo::eval::CaseScore| {
        if args.verbose {
            eprintln!("{:>3} {:?} colour {:.2} shape {:.2} count {} motion {:?} camera {:?} | {} -> {:?}",
                i + 1, score.kind, score.colour, score.shape, score.count, score.motion, score.camera, score.prompt, score.seen);
        }
    };
    let mut generate: Box<dyn FnMut(&Case) -> Result<Vec<Vec<u8>>, BoxError>> = if args.reference {
        Box::new(|case: &Case| Ok(case.scene.render()))
    } else {
        let dir = match &args.model {
            Some(dir) => dir.clone(),
            None => reel_demo::bundled::checkpoint_dir().context("the bundled demo model is unavailable")?,
        };
        if args.vae_only {
            Box::new(vae_round_trip(&dir).map_err(|e| anyhow::anyhow!("{e}"))?)
        } else if args.from_first_frame {
            Box::new(first_frame_generator(&dir, args.sampling.sampling()).map_err(|e| anyhow::anyhow!("{e}"))?)
        } else {
            Box::new(model_generator(&dir, args.sampling.sampling()).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
    };
    if let Some(dir) = &args.frames {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut written = 0;
    let report = evaluate(
        &cases,
        &mut |case| {
            let frames = generate(case)?;
            if let Some(dir) = &args.frames {
                written += 1;
                let (sheet, width, height) = comparison_sheet(case, &frames);
                reel_media::png::write_png(&sheet, width as u32, height as u32, &dir.join(format!("{written:03}.png")))?;
            }
            Ok(frames)
        },
        &mut on_case,
    )
    .map_err(|e| anyhow::anyhow!("evaluation failed: {e}"))?;
    println!("prompts: {described}");
    if !args.reference && !args.vae_only {
        println!("sampling: {}", args.sampling.describe());
    }
    if args.from_first_frame {
        println!("each clip started from the world's own first frame of its prompt");
    }
    print!("{}", report.table());
    let misses = report.misses(0.0);
    if !misses.is_empty() {
        println!("below target: {}", misses.join(", "));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
