//! The model card written next to the trained weights: what the model is, what it learned from,
//! how it was trained and how it scores.

use std::path::Path;

use reel_models::umt5::Umt5Config;
use reel_models::wan::{WanTransformerConfig, WanVaeConfig};
use reel_models::weights::ComponentFolder;

use crate::eval::{Report, TARGETS};
use crate::train::TrainSettings;
use crate::world::{ObjectCounts, HELD_OUT_COLOUR_SHAPE, HELD_OUT_SHAPE_MOTION};

/// Parameters stored in a component's safetensors files.
fn parameters(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .filter_map(|e| candle_core::safetensors::load(e.path(), &candle_core::Device::Cpu).ok())
        .map(|tensors| tensors.values().map(|t| t.elem_count()).sum::<usize>())
        .sum()
}

/// Steps and seconds each stage took, from the loss log. A resumed run's clock starts again at
/// zero, so each stretch of rising seconds is one sitting and the stage's time is their sum.
fn stage_seconds(work: &Path) -> Vec<(String, usize, f64)> {
    let Ok(text) = std::fs::read_to_string(work.join("loss.jsonl")) else { return vec![] };
    // Per stage: last step, seconds of the finished sittings, seconds into the current one.
    let mut stages: Vec<(String, usize, f64, f64)> = Vec::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let stage = row["stage"].as_str().unwrap_or_default().to_string();
        let step = row["step"].as_u64().unwrap_or(0) as usize;
        let seconds = row["extra"]["seconds"].as_f64().unwrap_or(0.0);
        match stages.iter_mut().find(|entry| entry.0 == stage) {
            Some(entry) => {
                entry.1 = entry.1.max(step);
                if seconds < entry.3 {
                    entry.2 += entry.3;
                }
                entry.3 = seconds;
            }
            None => stages.push((stage, step, 0.0, seconds)),
        }
    }
    stages.into_iter().map(|(stage, steps, finished, current)| (stage, steps, finished + current)).collect()
}

fn final_loss(work: &Path, stage: &str) -> Option<f64> {
    let text = std::fs::read_to_string(work.join("loss.jsonl")).ok()?;
    let losses: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|row| row["stage"] == stage)
        .filter_map(|row| row["loss"].as_f64())
        .collect();
    let tail = &losses[losses.len().saturating_sub(50)..];
    (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64)
}

/// Heading of the part of a card's "Training" section that holds the runs its checkpoint continued.
const EARLIER_RUNS: &str = "### Earlier runs";

/// How a checkpoint was made, from its card's "Training" section: the text of the run that wrote
/// it, then those of the runs it continued, newest first (empty without a card).
fn training_runs(checkpoint: &Path) -> Vec<String> {
    let Ok(card) = std::fs::read_to_string(checkpoint.join("README.md")) else { return vec![] };
    let Some(start) = card.find("## Training\n").map(|i| i + "## Training\n".len()) else { return vec![] };
    let end = card[start..].find("\n## ").map_or(card.len(), |i| start + i);
    let section = &card[start..end];
    let (own, earlier) = section.split_once(&format!("\n{EARLIER_RUNS}\n")).unwrap_or((section, ""));
    let mut runs = vec![own.trim().to_string()];
    // Each earlier run is a "#### Run N" heading and its text; what precedes the first is an introduction.
    runs.extend(earlier.split("\n#### Run ").skip(1).filter_map(|run| run.split_once('\n')).map(|(_, text)| text.trim().to_string()));
    runs
}

/// The "Earlier runs" part of a continued checkpoint's card: `runs` (newest first) numbered from
/// the oldest, run 1.
fn earlier_runs_section(runs: &[String]) -> String {
    let listed: String = runs.iter().enumerate().map(|(i, text)| format!("#### Run {}\n\n{text}\n\n", runs.len() - i)).collect();
    format!("{EARLIER_RUNS}\n\nThe checkpoint this run continued, newest run first; each run continued the one below it.\n\n{listed}")
}

/// The pool's mix of object counts, in words, where it is not the world's own.
fn pool_mix(counts: ObjectCounts) -> String {
    if counts == ObjectCounts::WORLD {
        return String::new();
    }
    let percent = |counts: ObjectCounts| counts.shares().map(|share| format!("{:.0}%", 100.0 * share));
    let ([one, two, three], [world_one, world_two, world_three]) = (percent(counts), percent(ObjectCounts::WORLD));
    format!(" (drawn with one, two and three objects {one}, {two} and {three} of the time; the world's own mix is {world_one}, {world_two} and {world_three})")
}

/// How the transformer and the text encoder were trained, in words (nothing when a continued run kept them).
fn transformer_recipe(settings: &TrainSettings, flow_shift: f64) -> String {
    if settings.transformer_steps == 0 {
        return String::new();
    }
    format!(
        "Transformer and text encoder together: {} steps of {} clips from a pool of {}\n\
encoded clips{}, flow matching (predict noise - latents at noise levels shifted by {}, as the sampler's; latent cells that show\n\
an object weigh {}x in the loss), AdamW with warm-up and cosine decay; in {:.0}% of the clips the first latent frame and in {:.0}% the first two are given clean at\n\
timestep 0 and left out of the loss (first-frame conditioning, as Wan 2.2 TI2V){}. ",
        settings.transformer_steps,
        settings.transformer_batch,
        settings.pool,
        pool_mix(settings.pool_objects),
        flow_shift,
        1.0 + crate::train::OBJECT_LOSS_WEIGHT,
        100.0 * crate::train::given_frames_share(1),
        100.0 * crate::train::given_frames_share(2),
        if settings.transformer_ema > 0.0 {
            format!("; the checkpoint holds a moving average of the weights (EMA, decay {})", settings.transformer_ema)
        } else {
            String::new()
        }
    )
}

/// The VAE's channel width, with the decoder's where it differs from the encoder's.
fn vae_width(config: &WanVaeConfig) -> String {
    match config.decoder_base_dim {
        Some(decoder) if decoder != config.base_dim => format!("base {}, decoder base {decoder}", config.base_dim),
        _ => format!("base {}", config.base_dim),
    }
}

fn component_config<T: serde::de::DeserializeOwned>(dir: &Path) -> std::io::Result<T> {
    ComponentFolder::open(dir).and_then(|folder| folder.config()).map_err(std::io::Error::other)
}

/// The depth of a model in the checkpoint a run continued and in the one it wrote.
#[derive(Debug, Clone, Copy)]
struct Depths {
    from: usize,
    to: usize,
}

/// What a continued run took from the checkpoint `from` (made by the newest of its `earlier_runs`
/// runs) and what it changed, growing its transformer and text encoder to the given depths.
fn continued_sentence(settings: &TrainSettings, from: &Path, earlier_runs: usize, transformer: Depths, text_encoder: Depths) -> String {
    let checkpoint = match earlier_runs {
        0 => format!("the checkpoint in {}", from.display()),
        run => format!("the checkpoint made by run {run} below (read from {})", from.display()),
    };
    let vae = match &settings.vae_from {
        Some(_) if settings.vae_decoder_width.is_some() => "its VAE's decoder was replaced by the new one trained above, its encoder and normalisation were kept,",
        Some(_) if settings.vae_decoder_only => "its VAE's decoder was fine-tuned as above, its encoder and normalisation were kept,",
        Some(_) => "its VAE was fine-tuned as above, its latent normalisation recomputed,",
        None if settings.new_vae => "its VAE was replaced by the one trained above,",
        None => "its VAE and normalisation were kept",
    };
    let grown = |what: &str, depths: Depths| match depths.to > depths.from {
        true => format!("{what}, grown from {} to {} layers,", depths.from, depths.to),
        false => what.to_string(),
    };
    let models = format!("{} and {}", grown("transformer", transformer), grown("text encoder", text_encoder));
    let how_grown = match transformer.to > transformer.from || text_encoder.to > text_encoder.from {
        true => "Each new layer is a copy of the one before it whose outputs start at zero, so that the grown model starts as the same function. ",
        false => "",
    };
    let trained = match settings.transformer_steps {
        0 => "were kept".to_string(),
        _ => format!("were trained for the steps below, at a peak learning rate of {}", settings.transformer_lr),
    };
    format!("This run continued {checkpoint}: {vae} and its {models} {trained}. {how_grown}")
}

pub fn write_card(settings: &TrainSettings, report: &Report) -> std::io::Result<()> {
    let out = &settings.out;
    let (text, dit, vae) = (parameters(&out.join("text_encoder")), parameters(&out.join("transformer")), parameters(&out.join("vae")));
    let held_cs: Vec<String> = HELD_OUT_COLOUR_SHAPE.iter().map(|(c, s)| format!("{} {}", c.name(), s.name())).collect();
    let held_sm: Vec<String> = HELD_OUT_SHAPE_MOTION.iter().map(|(s, m)| format!("{} {m:?}", s.name())).collect();
    let stages: String = stage_seconds(&settings.work)
        .iter()
        .map(|(stage, steps, seconds)| {
            let time = if *seconds > 0.0 { format!(", {:.0} min", seconds / 60.0) } else { String::new() };
            let loss = final_loss(&settings.work, stage).map(|l| format!(", final loss {l:.4}")).unwrap_or_default();
            format!("- {stage}: {steps} steps{time}{loss}\n")
        })
        .collect();
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    let vae_config: WanVaeConfig = component_config(&out.join("vae"))?;
    let dit_config: WanTransformerConfig = component_config(&out.join("transformer"))?;
    let text_config: Umt5Config = component_config(&out.join("text_encoder"))?;
    let flow_shift = crate::model::checkpoint_flow_shift(out).map_err(std::io::Error::other)?;
    let earlier_runs = settings.from.as_deref().map(training_runs).unwrap_or_default();
    let card = format!(
        "# reel demo model\n\n\
A small text-to-video model trained by reel (`reel train`) on a procedural world of coloured shapes,\n\
so that `reel generate` works offline in seconds. It has the architecture of Wan 2.1 at a tiny size\n\
and is stored in the diffusers layout, so reel runs it through exactly the pipeline it runs for\n\
published Wan checkpoints.\n\n\
## Components\n\n\
| component | class | parameters |\n| --- | --- | --- |\n\
| text_encoder | UMT5EncoderModel ({text_layers} layers, d_model {text_width}) with a word-level tokenizer | {text} |\n\
| transformer | WanTransformer3DModel ({layers} layers, {heads} heads of {head_dim}, patch {patch}) | {dit} |\n\
| vae | AutoencoderKLWan (Wan 2.1 style, {vae_width}, 4x in space and time, {latent_channels} latent channels) | {vae} |\n\
| scheduler | UniPCMultistepScheduler, flow prediction, shift {shift} | |\n\n\
Videos: 17 frames of 64x64 at 8 fps (`reel.json` holds these defaults, {steps} steps, guidance {guidance}).\n\n\
## Data\n\n\
Procedural clips (crates/reel-demo/src/world.rs): one to three objects (circle, square, triangle, star,\n\
ring) in nine colours and three sizes, moving left, right, up, down, diagonally, bouncing, growing,\n\
shrinking, rotating or still, never touching one another, over solid, gradient, striped or checkered\n\
dark backdrops, with a static, panning or zooming camera. Captions come from a grammar with synonyms and three word orders; 10% are\n\
dropped (empty prompt) for classifier-free guidance. These combinations never occur in training:\n\
{held_cs}; and {held_sm}.\n\n\
## Training\n\n\
Seed {seed}. VAE: {vae_recipe}.\n\
{transformer_recipe}{continued}On a 2-core CPU:\n\n{stages}\n{earlier}\
## Evaluation\n\n\
`reel eval demo --count {cases}`: {cases} prompts with held-out combinations; objects are found by colour\n\
in the generated frames and scored against the prompt.\n\n\
| metric | score | target |\n| --- | --- | --- |\n\
| colour | {colour} | {t_colour} |\n| shape | {shape} | {t_shape} |\n| count | {count} | {t_count} |\n\
| motion direction | {motion} | {t_motion} |\n| camera move | {camera} | |\n| frame-to-frame consistency | {consistency} | |\n\n\
Generation time: {secs:.2} s per clip ({steps} steps with guidance, f32, this CPU).\n",
        continued = match &settings.from {
            Some(from) => {
                let transformer = Depths { from: component_config::<WanTransformerConfig>(&from.join("transformer"))?.num_layers, to: dit_config.num_layers };
                let text_encoder = Depths { from: component_config::<Umt5Config>(&from.join("text_encoder"))?.num_layers, to: text_config.num_layers };
                continued_sentence(settings, from, earlier_runs.len(), transformer, text_encoder)
            }
            None => String::new(),
        },
        earlier = if earlier_runs.is_empty() { String::new() } else { earlier_runs_section(&earlier_runs) },
        layers = dit_config.num_layers,
        text_layers = text_config.num_layers,
        text_width = text_config.d_model,
        heads = dit_config.num_attention_heads,
        head_dim = dit_config.attention_head_dim,
        patch = dit_config.patch_size.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("x"),
        vae_width = vae_width(&vae_config),
        latent_channels = vae_config.z_dim,
        shift = flow_shift,
        steps = crate::model::DEFAULT_STEPS,
        guidance = crate::model::DEFAULT_GUIDANCE,
        held_cs = held_cs.join(", "),
        held_sm = held_sm.join(", "),
        seed = settings.seed,
        vae_recipe = crate::train::vae_recipe(settings),
        transformer_recipe = transformer_recipe(settings, flow_shift),
        cases = report.cases,
        colour = pct(report.colour),
        shape = pct(report.shape),
        count = pct(report.count),
        motion = pct(report.motion),
        camera = pct(report.camera),
        consistency = pct(report.consistency),
        t_colour = pct(TARGETS.colour),
        t_shape = pct(TARGETS.shape),
        t_count = pct(TARGETS.count),
        t_motion = pct(TARGETS.motion),
        secs = report.seconds_per_clip,
    );
    std::fs::write(out.join("README.md"), card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_stage_adds_up_the_time_of_each_sitting() {
        let dir = std::env::temp_dir().join(format!("reel-card-time-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row = |stage: &str, step: usize, seconds: f64| format!("{{\"stage\":\"{stage}\",\"step\":{step},\"loss\":0.5,\"extra\":{{\"seconds\":{seconds}}}}}\n");
        // The VAE in one sitting; the transformer stopped after step 3 and resumed from step 2.
        let log = [row("vae", 1, 4.0), row("vae", 2, 9.0), row("transformer", 1, 2.0), row("transformer", 2, 4.5), row("transformer", 3, 6.5),
            row("transformer", 3, 2.5), row("transformer", 4, 4.0)].concat();
        std::fs::write(dir.join("loss.jsonl"), log).unwrap();
        assert_eq!(stage_seconds(&dir), vec![("vae".to_string(), 2, 9.0), ("transformer".to_string(), 4, 10.5)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_card_names_a_decoder_wider_than_the_encoder() {
        let mut config = crate::model::vae_config(vec![0.0; 8], vec![1.0; 8]);
        assert_eq!(vae_width(&config), "base 8");
        config.decoder_base_dim = Some(8);
        assert_eq!(vae_width(&config), "base 8");
        config.decoder_base_dim = Some(16);
        assert_eq!(vae_width(&config), "base 8, decoder base 16");
    }

    #[test]
    fn a_continued_card_says_what_the_run_kept_and_grew() {
        let mut settings = TrainSettings::new("out".into(), "work".into());
        settings.transformer_lr = 2e-4;
        let (four, six, two) = (Depths { from: 4, to: 4 }, Depths { from: 4, to: 6 }, Depths { from: 2, to: 2 });
        let grown = continued_sentence(&settings, Path::new("earlier"), 3, six, two);
        assert!(grown.starts_with("This run continued the checkpoint made by run 3 below (read from earlier)"), "{grown}");
        assert!(grown.contains("its VAE and normalisation were kept and its transformer, grown from 4 to 6 layers, and text encoder were trained"), "{grown}");
        assert!(grown.contains("were trained for the steps below, at a peak learning rate of 0.0002"), "{grown}");
        assert!(grown.contains("Each new layer is a copy"), "{grown}");
        let text_grown = continued_sentence(&settings, Path::new("earlier"), 3, four, Depths { from: 2, to: 4 });
        assert!(text_grown.contains("its transformer and text encoder, grown from 2 to 4 layers, were trained"), "{text_grown}");
        let kept = continued_sentence(&settings, Path::new("earlier"), 0, four, two);
        assert!(kept.starts_with("This run continued the checkpoint in earlier:"), "{kept}");
        assert!(!kept.contains("grown") && !kept.contains("copy"), "{kept}");
    }

    #[test]
    fn the_card_names_a_pool_mix_other_than_the_worlds() {
        let mut settings = TrainSettings::new("out".into(), "work".into());
        assert!(!transformer_recipe(&settings, 1.5).contains("drawn with"));
        settings.pool_objects = ObjectCounts::from_weights([2.0, 1.0, 1.0]).unwrap();
        let recipe = transformer_recipe(&settings, 1.5);
        assert!(recipe.contains("a pool of 2000\nencoded clips (drawn with one, two and three objects 50%, 25% and 25% of the time; the world's own mix is 60%, 30% and 10%)"), "{recipe}");
    }

    /// A continued card lists the runs of the checkpoint it continued after its own, flat and
    /// newest first, so that a chain of continuations reads as a list rather than nested quotes.
    #[test]
    fn a_continued_card_lists_the_runs_before_it() {
        let dir = std::env::temp_dir().join(format!("reel-card-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let card = |training: &str| format!("# m\n\n## Data\n\nclips\n\n## Training\n\n{training}\n## Evaluation\n\nscores\n");
        std::fs::write(dir.join("README.md"), card("Seed 3. VAE: 10 steps.\n\n- vae: 10 steps\n")).unwrap();
        assert_eq!(training_runs(&dir), vec!["Seed 3. VAE: 10 steps.\n\n- vae: 10 steps".to_string()]);

        let earlier = vec!["Run two's text.\n\n- transformer: 5 steps".to_string(), "Run one's text.".to_string()];
        let section = earlier_runs_section(&earlier);
        assert!(section.find("#### Run 2").unwrap() < section.find("#### Run 1").unwrap(), "{section}");
        std::fs::write(dir.join("README.md"), card(&format!("Run three's text.\n\n- transformer: 7 steps\n\n{section}"))).unwrap();
        assert_eq!(
            training_runs(&dir),
            vec!["Run three's text.\n\n- transformer: 7 steps".to_string(), earlier[0].clone(), earlier[1].clone()]
        );

        std::fs::write(dir.join("README.md"), "# m\n\nno sections\n").unwrap();
        assert!(training_runs(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
