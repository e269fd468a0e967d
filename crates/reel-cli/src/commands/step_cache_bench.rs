//! `reel bench step-cache`: what the step cache saves and what it costs on the demo model: for
//! each threshold, transformer evaluations saved, time per clip, PSNR of the frames against the
//! same prompts generated without the cache, and the prompt-adherence scores of `reel eval demo`.

use std::path::Path;
use std::time::Instant;

use reel_demo::eval::{held_out_cases, score, CaseGenerator, Report, Sampling};

/// PSNR in dB between two clips of RGB8 frames (infinite when equal).
fn psnr(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    let (mut squared, mut count) = (0f64, 0usize);
    for (fa, fb) in a.iter().zip(b) {
        for (x, y) in fa.iter().zip(fb) {
            squared += (*x as f64 - *y as f64).powi(2);
            count += 1;
        }
    }
    let mse = squared / count.max(1) as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

pub fn run(checkpoint: &Path, thresholds: &[f64], count: usize) -> anyhow::Result<()> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| anyhow::anyhow!("{e}");
    let cases = held_out_cases(count, 0);
    let mut uncached: Vec<Vec<Vec<u8>>> = Vec::new();
    println!("{count} held-out prompts of `reel eval demo`");
    println!(
        "{:<10} {:>9} {:>7} {:>9} {:>11} {:>7} {:>7} {:>7} {:>7}",
        "threshold", "steps run", "saved", "s/clip", "PSNR (dB)", "colour", "shape", "count", "motion"
    );
    for threshold in std::iter::once(None).chain(thresholds.iter().copied().map(Some)) {
        let generator = CaseGenerator::open(checkpoint, Sampling { step_cache: threshold, ..Default::default() }).map_err(err)?;
        let (mut computed, mut total, mut scores, mut psnrs) = (0usize, 0usize, Vec::new(), Vec::new());
        let started = Instant::now();
        for (i, case) in cases.iter().enumerate() {
            let generated = generator.generate(case).map_err(err)?;
            let frames = generated.rgb8()?;
            computed += generated.denoise_stats.computed_steps;
            total += generated.denoise_stats.computed_steps + generated.denoise_stats.reused_steps;
            scores.push(score(case, &frames));
            match threshold {
                None => uncached.push(frames),
                Some(_) => psnrs.push(psnr(&frames, &uncached[i])),
            }
        }
        let report = Report::new(scores, started.elapsed().as_secs_f64() / cases.len().max(1) as f64);
        let psnr = if psnrs.is_empty() {
            "reference".to_string()
        } else {
            let finite: Vec<f64> = psnrs.iter().copied().filter(|p| p.is_finite()).collect();
            if finite.is_empty() { "identical".into() } else { format!("{:.1}", finite.iter().sum::<f64>() / finite.len() as f64) }
        };
        println!(
            "{:<10} {:>9.1} {:>6.0}% {:>9.2} {:>11} {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}%",
            threshold.map_or("off".to_string(), |t| t.to_string()),
            computed as f64 / cases.len() as f64,
            100.0 * (1.0 - computed as f64 / total.max(1) as f64),
            report.seconds_per_clip,
            psnr,
            100.0 * report.colour,
            100.0 * report.shape,
            100.0 * report.count,
            100.0 * report.motion
        );
    }
    Ok(())
}
