//! `--compare diffusers`: runs the reference implementation's benchmark script on the same shape
//! in the same run, so that ratios compare figures measured on the same machine state.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// What the reference measured.
pub struct Reference {
    pub seconds: f64,
    pub peak_bytes: Option<u64>,
}

/// The benchmark scripts live in the source tree; run from the repository's root.
fn script(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = Path::new("scripts/bench").join(format!("{name}.py"));
    anyhow::ensure!(path.exists(), "{} not found: run `reel bench ... --compare diffusers` from the root of reel's source tree", path.display());
    Ok(path)
}

/// Fails fast, before reel's own measurement, when the reference cannot run here.
pub fn check_reference(python: &str, name: &str) -> anyhow::Result<()> {
    script(name)?;
    let output = Command::new(python)
        .args(["-c", "import torch, diffusers"])
        .output()
        .with_context(|| format!("cannot run {python}: give the Python that has torch and diffusers with --python"))?;
    anyhow::ensure!(
        output.status.success(),
        "{python} cannot import torch and diffusers: pip install -r scripts/fixtures/requirements.txt, or give another interpreter with --python"
    );
    Ok(())
}

/// Runs scripts/bench/`name`.py with `args`; returns its report's "diffusers" object.
fn run_script(python: &str, name: &str, args: &[String]) -> anyhow::Result<serde_json::Value> {
    let output = Command::new(python)
        .arg(script(name)?)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {python} (give the interpreter that has torch and diffusers with --python)"))?;
    anyhow::ensure!(
        output.status.success(),
        "the diffusers benchmark failed (does {python} have torch and diffusers? pip install -r scripts/fixtures/requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().context("the diffusers benchmark printed nothing")?;
    let mut report: serde_json::Value = serde_json::from_str(last).context("the diffusers benchmark's last line is not JSON")?;
    Ok(report["diffusers"].take())
}

fn shape_args(model: &str, shape: &super::bench::BenchShape, warmup: usize, runs: usize) -> Vec<String> {
    [
        ("--model", model.to_string()),
        ("--frames", shape.frames.to_string()),
        ("--width", shape.width.to_string()),
        ("--height", shape.height.to_string()),
        ("--warmup", warmup.to_string()),
        ("--runs", runs.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// One forward of diffusers' WanTransformer3DModel, timed by scripts/bench/transformer.py.
#[allow(clippy::too_many_arguments)]
pub fn diffusers_transformer(
    python: &str,
    model: &str,
    shape: &super::bench::BenchShape,
    text_tokens: usize,
    dtype: &str,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<Reference> {
    let mut args = shape_args(model, shape, warmup, runs);
    args.extend(["--text-tokens".into(), text_tokens.to_string(), "--dtype".into(), dtype.into()]);
    let report = run_script(python, "transformer", &args)?;
    Ok(Reference {
        seconds: report["seconds_per_forward"].as_f64().context("no seconds_per_forward in the diffusers report")?,
        peak_bytes: report["peak_resident_bytes"].as_u64(),
    })
}

/// One decode of diffusers' AutoencoderKLWan in f32, timed by scripts/bench/vae.py.
pub fn diffusers_vae(python: &str, model: &str, shape: &super::bench::BenchShape, warmup: usize, runs: usize) -> anyhow::Result<Reference> {
    let report = run_script(python, "vae", &shape_args(model, shape, warmup, runs))?;
    Ok(Reference {
        seconds: report["seconds_per_decode"].as_f64().context("no seconds_per_decode in the diffusers report")?,
        peak_bytes: report["peak_resident_bytes"].as_u64(),
    })
}

/// What diffusers' pipeline measured, by stage (encode, denoise, decode).
pub struct PipelineReference {
    pub stage_seconds: std::collections::BTreeMap<String, f64>,
    pub peak_bytes: Option<u64>,
}

/// diffusers' WanPipeline with random weights on the same work, timed by scripts/bench/pipeline.py.
pub fn diffusers_pipeline(python: &str, model: &str, shape: &super::bench::BenchShape, steps: usize, guidance: f64) -> anyhow::Result<PipelineReference> {
    let mut args = shape_args(model, shape, 0, 1);
    args.extend(["--steps".into(), steps.to_string(), "--guidance".into(), guidance.to_string()]);
    let report = run_script(python, "pipeline", &args)?;
    let stage_seconds = serde_json::from_value(report["stage_seconds"].clone()).context("no stage_seconds in the diffusers report")?;
    Ok(PipelineReference { stage_seconds, peak_bytes: report["peak_resident_bytes"].as_u64() })
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64))
}

/// reel against the reference, one row per measured part: (part, reel seconds, reference seconds, FLOPs).
pub fn print_table(rows: &[(&str, f64, f64, f64)], reel_peak: Option<u64>, reference_peak: Option<u64>) {
    println!("{:<22} {:>10} {:>12} {:>14} {:>14} {:>16}", "", "reel s", "diffusers s", "reel/diffusers", "reel GFLOP/s", "diffusers GFLOP/s");
    for (part, ours, theirs, flops) in rows {
        println!(
            "{part:<22} {ours:>10.3} {theirs:>12.3} {:>14.2} {:>14.0} {:>16.0}",
            ours / theirs,
            flops / ours / 1e9,
            flops / theirs / 1e9
        );
    }
    println!("peak resident memory: reel {}, diffusers {}", gib(reel_peak), gib(reference_peak));
}
