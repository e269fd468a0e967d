//! `reel`: generate videos from text with open diffusion-transformer models, on your own machines.

mod commands;

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
    /// Serve the OpenAI-compatible Videos API and the web studio (not built yet)
    Serve(commands::planned::Planned),
    /// Run a worker that takes generation jobs from the studio's queue (not built yet)
    Worker(commands::planned::Planned),
    /// Estimate the compute, time, cost and energy of a video before making it (not built yet)
    Estimate(commands::planned::Planned),
    /// List the models reel knows, with their sizes
    Models(commands::models::ModelsArgs),
    /// Measure reel's speed on this machine
    Bench(commands::bench::BenchArgs),
    /// Train the bundled demo model (not built yet)
    Train(commands::planned::Planned),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Serve(_) => commands::planned::not_built("serve", "the studio"),
        Command::Worker(_) => commands::planned::not_built("worker", "the studio"),
        Command::Estimate(_) => commands::planned::not_built("estimate", "the estimator"),
        Command::Train(_) => commands::planned::not_built("train", "the bundled demo model"),
        Command::Models(args) => commands::models::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
