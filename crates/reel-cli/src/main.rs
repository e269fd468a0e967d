//! `reel`: generate videos from text with open diffusion-transformer models, on your own machines.

mod commands;

/// Tensor code allocates and frees large buffers at a high rate. glibc hands every buffer over
/// 128 KiB back to the kernel when freed, so the next one page-faults afresh; keeping buffers up to
/// 32 MiB in the heap makes training steps about 15% faster.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocation thresholds; it is called before any threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "reel", version, about = "A self-hosted text-to-video studio", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a video from a text prompt
    Generate(commands::generate::GenerateArgs),
    /// Continue a finished video for a few more seconds, from its last frames
    Extend(commands::extend::ExtendArgs),
    /// Make a narrated, subtitled film from a storyboard of shots
    Film(commands::film::FilmArgs),
    /// Serve the OpenAI-compatible Videos API, its job queue and the web studio
    Serve(commands::studio::ServeArgs),
    /// Run workers that take generation jobs from a studio's queue
    Worker(commands::studio::WorkerArgs),
    /// Manage the studio's API keys
    Keys(commands::studio::KeysArgs),
    /// Estimate the compute, time, cost and energy of a video before making it
    Estimate(commands::estimate::EstimateArgs),
    /// List the models reel knows, with their sizes
    Models(commands::models::ModelsArgs),
    /// Measure reel's speed on this machine
    Bench(commands::bench::BenchArgs),
    /// Train the bundled demo model on its procedural world (resumable)
    Train(commands::train::TrainArgs),
    /// Evaluate a model: the demo model's prompt adherence on held-out prompts
    Eval(commands::eval::EvalArgs),
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Extend(args) => commands::extend::run(args),
        Command::Film(args) => commands::film::run(args),
        Command::Serve(args) => commands::studio::serve(args),
        Command::Worker(args) => commands::studio::worker(args),
        Command::Keys(args) => commands::studio::keys(args),
        Command::Estimate(args) => commands::estimate::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {}", describe(&error));
        std::process::exit(1);
    }
}

/// The error and its causes, joined by ": ", leaving out a cause whose text the message already
/// holds (errors that name their cause in their own message would otherwise say it twice).
fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn an_error_that_names_its_cause_says_it_once_and_context_keeps_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let named = reel_media::MediaError::Write { path: "out.mp4".into(), source: io };
        let error = anyhow::Error::new(named).context("cannot make the video");
        assert_eq!(describe(&error), "cannot make the video: cannot write out.mp4: permission denied");
        let plain = anyhow::anyhow!("disk full").context("cannot store the shot");
        assert_eq!(describe(&plain), "cannot store the shot: disk full");
    }
}
