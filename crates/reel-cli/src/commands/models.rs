//! `reel models`: the model configurations reel knows by name.

use clap::Args;
use reel_models::wan::published_models;

#[derive(Args)]
pub struct ModelsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let models = published_models();
    if args.json {
        let list: Vec<_> = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "repo_id": m.repo_id,
                    "transformer_parameters": m.transformer.parameter_count(),
                    "experts": m.experts,
                    "layers": m.transformer.num_layers,
                    "latent_channels": m.latents.channels,
                    "size_multiple": m.latents.size_multiple(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<18} {:<34} {:>11} {:>7} {:>6}", "MODEL", "HUB REPOSITORY", "TRANSFORMER", "EXPERTS", "LAYERS");
    for m in &models {
        let billions = m.transformer.parameter_count() as f64 / 1e9;
        println!(
            "{:<18} {:<34} {:>10.2}B {:>7} {:>6}",
            m.name, m.repo_id, billions, m.experts, m.transformer.num_layers
        );
    }
    println!("\nWeights are not bundled: point --model at a checkpoint folder in the diffusers layout.");
    Ok(())
}
