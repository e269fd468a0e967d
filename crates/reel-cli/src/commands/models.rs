//! `reel models`: the model configurations reel knows by name.

use clap::Args;
use reel_models::wan::{published_models, LatentGeometry, WanTransformerConfig};
use reel_sampling::checkpoint::WanCheckpoint;

/// The bundled demo model's transformer configuration and latent geometry, when this build
/// carries it.
fn bundled_demo() -> Option<(WanTransformerConfig, LatentGeometry)> {
    let checkpoint = WanCheckpoint::open(reel_demo::bundled::checkpoint_dir().ok()?).ok()?;
    Some((checkpoint.transformer_config().ok()?, checkpoint.geometry().ok()?))
}

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
            .chain(bundled_demo().map(|(demo, latents)| {
                serde_json::json!({
                    "name": "demo",
                    "repo_id": null,
                    "transformer_parameters": demo.parameter_count(),
                    "experts": 1,
                    "layers": demo.num_layers,
                    "latent_channels": latents.channels,
                    "size_multiple": latents.size_multiple(),
                })
            }))
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
    if let Some((demo, _)) = bundled_demo() {
        println!("{:<18} {:<34} {:>10.2}M {:>7} {:>6}", "demo", "(bundled with reel)", demo.parameter_count() as f64 / 1e6, 1, demo.num_layers);
    }
    println!("\nWeights of the published models are not bundled: point --model at a checkpoint folder in the");
    println!("diffusers layout or a hub id. `demo` is reel's own small model, built into the binary.");
    Ok(())
}
