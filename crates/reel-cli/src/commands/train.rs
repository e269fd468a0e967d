//! `reel train`: trains the demo model (VAE, then transformer and text encoder) on the procedural
//! world, resumably, with a progress bar and a loss log (`WORK/loss.jsonl`).

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reel_demo::train::{score_and_describe, train_stages, TrainEvent, TrainSettings};
use reel_demo::world::ObjectCounts;

#[derive(Args)]
pub struct TrainArgs {
    /// Folder the trained checkpoint is written to
    #[arg(long, default_value = "models/demo")]
    out: PathBuf,
    /// Folder for resumable state and the loss log; run again with the same folder to continue
    #[arg(long, default_value = "target/demo-train")]
    work: PathBuf,
    /// Seed of the data, the initialisation and the noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// VAE training steps (its phases of 5-, 9- and 17-frame clips keep their shares)
    #[arg(long)]
    vae_steps: Option<usize>,
    /// Peak learning rate of the VAE
    #[arg(long)]
    vae_lr: Option<f64>,
    /// Start the VAE's training from this demo checkpoint's VAE (same configuration) instead of at random
    #[arg(long, value_name = "DIR")]
    vae_from: Option<PathBuf>,
    /// With --vae-from: train only that VAE's decoder, so its encoder, latents and normalisation (and a
    /// transformer trained on them, with --from) stay valid
    #[arg(long, requires = "vae_from")]
    vae_decoder_only: bool,
    /// With --vae-decoder-only: train a new decoder of this base width from scratch (wider than the
    /// encoder, as Wan 2.2's VAE), in place of the old decoder
    #[arg(long, value_name = "WIDTH", requires = "vae_decoder_only")]
    vae_decoder_width: Option<usize>,
    /// With --vae-decoder-only: add noise to the latents the decoder learns from, each clip's level drawn
    /// up to this many of each channel's standard deviations, so that it draws clean objects from the
    /// inexact latents the transformer makes [default: 0, none]
    #[arg(long, value_name = "LEVEL", requires = "vae_decoder_only")]
    vae_latent_noise: Option<f64>,
    /// Weight of a loss on the VAE's error between neighbouring pixels (the L1 of the
    /// reconstruction's horizontal and vertical steps against the clip's), added to the pixel loss:
    /// it costs the blur that rounds a star's points and a square's corners [default: 0, none]
    #[arg(long, value_name = "WEIGHT")]
    vae_edge_loss: Option<f64>,
    /// With --from: train a new VAE from scratch in place of that checkpoint's, and continue its
    /// transformer and text encoder on the new latents
    #[arg(long, requires = "from", conflicts_with = "vae_from")]
    new_vae: bool,
    /// Training clips encoded for the transformer
    #[arg(long)]
    pool: Option<usize>,
    /// Relative weights of clips with one, two and three objects in the pool, such as 1,1,1 for a
    /// third each: more clips with several objects teach which words belong to which object
    /// [default: the world's own 6,3,1]
    #[arg(long, value_name = "ONE,TWO,THREE", value_delimiter = ',')]
    pool_objects: Option<Vec<f32>>,
    /// Transformer training steps (0 with --from keeps that checkpoint's transformer and text encoder)
    #[arg(long)]
    transformer_steps: Option<usize>,
    /// Clips per transformer step
    #[arg(long)]
    transformer_batch: Option<usize>,
    /// Peak learning rate of the transformer and text encoder
    #[arg(long)]
    transformer_lr: Option<f64>,
    /// Decay of the moving average (EMA) of the transformer's and text encoder's weights that the
    /// checkpoint is written with; 0 writes the last step's weights [default: 0.999]
    #[arg(long, value_name = "DECAY")]
    transformer_ema: Option<f64>,
    /// Transformer layers: of a new transformer, or, with --from, a deeper one grown from that
    /// checkpoint's (each new layer a copy of the one before it that starts by adding nothing)
    /// [default: the checkpoint's, or 4]
    #[arg(long, value_name = "LAYERS")]
    transformer_layers: Option<usize>,
    /// Text encoder layers: of a new text encoder, or, with --from, a deeper one grown from that
    /// checkpoint's the same way [default: the checkpoint's, or 2]
    #[arg(long, value_name = "LAYERS")]
    text_encoder_layers: Option<usize>,
    /// Continue from this demo checkpoint: train its transformer and text encoder further, and keep its
    /// VAE unless --vae-from is given
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Flow shift of the noise levels the transformer trains at, written into the checkpoint's
    /// scheduler so that it samples at the same; lower trains more at low noise, where the small
    /// details are drawn [default: the --from checkpoint's, or 3]
    #[arg(long, value_name = "SHIFT")]
    flow_shift: Option<f64>,
    /// No progress bars (the loss log is still written)
    #[arg(long, short)]
    quiet: bool,
    /// Run the training stages only, in this process as it is configured (see `run`)
    #[arg(long, hide = true)]
    stages_only: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut settings = TrainSettings::new(args.out.clone(), args.work.clone());
    settings.seed = args.seed;
    settings.vae_steps = args.vae_steps.unwrap_or(settings.vae_steps);
    settings.vae_lr = args.vae_lr.unwrap_or(settings.vae_lr);
    settings.vae_from = args.vae_from.clone();
    settings.vae_decoder_only = args.vae_decoder_only;
    settings.vae_decoder_width = args.vae_decoder_width;
    settings.vae_latent_noise = args.vae_latent_noise.unwrap_or(settings.vae_latent_noise);
    settings.vae_edge_loss = args.vae_edge_loss.unwrap_or(settings.vae_edge_loss);
    settings.new_vae = args.new_vae;
    settings.pool = args.pool.unwrap_or(settings.pool);
    if let Some(weights) = &args.pool_objects {
        let weights: [f32; 3] = weights.as_slice().try_into().map_err(|_| anyhow::anyhow!("--pool-objects takes three weights (one, two and three objects), as in 1,1,1"))?;
        settings.pool_objects = ObjectCounts::from_weights(weights).map_err(|e| anyhow::anyhow!("--pool-objects: {e}"))?;
    }
    settings.transformer_steps = args.transformer_steps.unwrap_or(settings.transformer_steps);
    settings.transformer_batch = args.transformer_batch.unwrap_or(settings.transformer_batch);
    settings.transformer_lr = args.transformer_lr.unwrap_or(settings.transformer_lr);
    settings.transformer_ema = args.transformer_ema.unwrap_or(settings.transformer_ema);
    settings.transformer_layers = args.transformer_layers;
    settings.text_encoder_layers = args.text_encoder_layers;
    settings.from = args.from.clone();
    settings.flow_shift = args.flow_shift;
    anyhow::ensure!(settings.transformer_batch > 0 && settings.pool > 0, "the batch and the pool must be positive");
    anyhow::ensure!(settings.vae_steps > 0, "--vae-steps must be positive");
    anyhow::ensure!(settings.vae_decoder_width != Some(0), "--vae-decoder-width must be positive");
    anyhow::ensure!(
        (0.0..1.0).contains(&settings.transformer_ema),
        "--transformer-ema must be at least 0 and below 1 (0.999 averages over about the last thousand steps)"
    );

    let mut bar: Option<ProgressBar> = None;
    let mut average = 0.0;
    let mut show = |event| match event {
        TrainEvent::Stage { name, total, done } => {
            if let Some(bar) = bar.take() {
                bar.finish();
            }
            average = 0.0;
            if args.quiet {
                eprintln!("{name}: {done}/{total}");
                return;
            }
            let new = ProgressBar::new(total as u64);
            new.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} {elapsed_precise} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            new.set_prefix(name);
            new.set_position(done as u64);
            bar = Some(new);
        }
        TrainEvent::Step { step, loss, .. } => {
            average = if average == 0.0 { loss } else { 0.98 * average + 0.02 * loss };
            if let Some(bar) = &bar {
                bar.set_position(step as u64);
                if loss > 0.0 {
                    bar.set_message(format!("loss {average:.4}"));
                }
            }
        }
    };
    // Training splits each batch over the cores (reel_demo::shards), which pays only with candle's
    // element-wise thread pool off, while generating (the scoring at the end) is faster with it on;
    // a process sets the pool once, so the stages run in a child process with it off.
    let pool_on = std::env::var_os("CANDLE_NUM_THREADS").is_none() && candle_core::utils::get_num_threads() > 1;
    if pool_on && !args.stages_only {
        let status = Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .arg("--stages-only")
            .env("CANDLE_NUM_THREADS", "1")
            .status()?;
        anyhow::ensure!(status.success(), "training failed ({status}; its error is above)");
    } else {
        train_stages(&settings, &mut show).map_err(|e| anyhow::anyhow!("training failed: {e}"))?;
    }
    if !args.stages_only {
        score_and_describe(&settings, &mut show).map_err(|e| anyhow::anyhow!("scoring the trained model failed: {e}"))?;
        println!("{}", args.out.display());
    }
    drop(show);
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(())
}
