//! `reel film`: a storyboard becomes one narrated, subtitled film.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use reel_film::cache::ShotCache;
use reel_film::render::PipelineRenderer;
use reel_film::{make_film, FilmEvent, FilmOptions, Storyboard};
use reel_models::device::{parse_device, DtypeChoice};
use reel_models::hub::HubSettings;

use super::progress::StageBars;

#[derive(Args)]
pub struct FilmArgs {
    /// The storyboard: YAML or JSON (docs/storyboard.md describes it)
    storyboard: PathBuf,
    /// The film (.mp4); subtitles are written beside it as .srt and .vtt
    #[arg(long, short, default_value = "film.mp4")]
    output: PathBuf,
    /// Folder of rendered shots reused when a shot is unchanged [default: $REEL_CACHE_DIR/shots,
    /// else ~/.cache/reel/shots]
    #[arg(long, conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Render every shot, reading and storing nothing in the shot cache
    #[arg(long)]
    no_cache: bool,
    /// Compute dtype of the text encoder and transformer: f32, bf16, f16 or auto (as `reel
    /// generate`'s)
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// cpu, cuda, cuda:N or metal
    #[arg(long, default_value = "cpu")]
    device: String,
    /// MP4 quality: the H.264 quantiser, 0 (best, largest) to 51 (smallest)
    #[arg(long, default_value_t = reel_media::mp4::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(0..=51))]
    quality: u8,
    /// No progress bars
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: FilmArgs) -> anyhow::Result<()> {
    let storyboard = Storyboard::read(&args.storyboard)?;
    let device = parse_device(&args.device)?;
    let dtype = DtypeChoice::parse(&args.dtype)?;
    let mut settings = HubSettings::from_env();
    settings.progress = !args.quiet;
    let mut renderer = PipelineRenderer::open(&storyboard.model, dtype, &device, &settings)
        .with_context(|| format!("cannot open the storyboard's model '{}'", storyboard.model))?;
    let cache = match (args.no_cache, args.cache) {
        (true, _) => None,
        (false, Some(dir)) => Some(ShotCache::new(dir)),
        (false, None) => Some(ShotCache::new(ShotCache::default_dir())),
    };
    let options = FilmOptions { output: args.output.clone(), cache, mp4_quality: args.quality };

    let mut bars = StageBars::new(args.quiet);
    let quiet = args.quiet;
    let report = make_film(&storyboard, &mut renderer, &options, &mut |event| match event {
        FilmEvent::ShotStarted { shot, shots, cached } if !quiet => {
            bars.finish();
            let how = if cached { "unchanged, from the cache" } else { "rendering" };
            eprintln!("shot {}/{shots}: {how}", shot + 1);
        }
        FilmEvent::ShotWarning { shot, message } => eprintln!("warning: shot {}: {message}", shot + 1),
        FilmEvent::Rendering { progress, .. } => bars.update(progress),
        FilmEvent::Assembling if !quiet => {
            bars.finish();
            eprintln!("assembling the film");
        }
        _ => {}
    })?;
    bars.finish();

    for warning in &report.timeline.warnings {
        eprintln!("warning: {warning}");
    }
    if !args.quiet {
        let timeline = &report.timeline;
        eprintln!(
            "{} shots ({} rendered, {} from the cache), {:.2} s, {} frames of {}x{} at {} fps",
            timeline.shots.len(),
            report.rendered,
            report.reused,
            timeline.duration(),
            timeline.total_frames,
            report.width,
            report.height,
            timeline.fps
        );
        for (i, shot) in timeline.shots.iter().enumerate().filter(|(_, s)| s.extended_by > 0) {
            eprintln!("shot {} lengthened by {:.2} s to fit its narration", i + 1, timeline.seconds(shot.extended_by));
        }
    }
    for file in &report.files {
        println!("{}", file.display());
    }
    Ok(())
}
