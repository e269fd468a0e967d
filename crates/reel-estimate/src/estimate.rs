//! An estimate: the work of each stage for one video, and what it takes on given hardware.

use serde::Serialize;

use crate::cost::{text_encoder, transformer_forward, vae_decode, vae_parameters, Work};
use crate::spec::ModelSpec;
use crate::{EstimateError, Result};

/// The video to estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VideoSpec {
    pub width: usize,
    pub height: usize,
    /// 4k+1 for Wan's VAE.
    pub frames: usize,
    pub fps: f64,
    pub steps: usize,
    /// Classifier-free guidance above 1 runs the transformer twice per step.
    pub guidance: f64,
    /// Fraction of transformer evaluations served from a step cache instead of computed (0 to 1;
    /// TeaCache-style methods reach 0.3 to 0.6; reel's own sampler computes every step).
    pub step_cache: f64,
    /// Bytes per weight and activation of the text encoder and transformer (2 for bf16).
    pub dtype_bytes: usize,
}

/// The hardware that runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    pub name: String,
    /// Peak dense FLOP/s of one device.
    pub peak_flops: f64,
    pub memory_bytes: f64,
    pub watts: f64,
    pub count: usize,
    /// Model FLOPs utilisation: the share of the peak that the work achieves.
    pub utilisation: f64,
    /// How much of the ideal speed-up `count` devices give (sequence parallelism spends some time
    /// exchanging activations); 1 for one device.
    pub parallel_efficiency: f64,
    /// Rates measured on this machine, by the width of the products; without them every product
    /// runs at the peak times the utilisation.
    pub measured: Option<MeasuredRates>,
    /// Fixed time per layer call, whatever its size: framework and memory overheads that dominate
    /// small models on CPUs (measured there; negligible on GPUs, taken as 0).
    pub overhead: CallOverhead,
}

/// Achieved FLOP/s measured on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeasuredRates {
    /// Matrix products of (rows x width) by (width x width): for each measured row count, its
    /// (width, FLOP/s) pairs in increasing width; row counts increase.
    pub matmul: Vec<(usize, Vec<(usize, f64)>)>,
    /// 3x3x3 convolutions of `width` channels to `width` channels, in f32: (width, FLOP/s).
    pub conv: Vec<(usize, f64)>,
}

impl MeasuredRates {
    /// The matrix-product rate at `rows` x `width`, interpolated on log scales (clamped outside).
    pub fn matmul_at(&self, rows: usize, width: usize) -> f64 {
        let by_rows: Vec<(usize, f64)> = self.matmul.iter().map(|(r, table)| (*r, interpolate(table, width))).collect();
        interpolate(&by_rows, rows)
    }

    pub fn conv_at(&self, width: usize) -> f64 {
        interpolate(&self.conv, width)
    }
}

/// The value at `x` of a table of (x, value) pairs in increasing x, interpolated between them on
/// log scales and clamped outside them.
fn interpolate(table: &[(usize, f64)], x: usize) -> f64 {
    let lx = (x.max(1) as f64).ln();
    let (first, last) = (table.first().expect("a measured table"), table.last().expect("a measured table"));
    if lx <= (first.0 as f64).ln() {
        return first.1;
    }
    for pair in table.windows(2) {
        let ((x0, v0), (x1, v1)) = (pair[0], pair[1]);
        let (l0, l1) = ((x0 as f64).ln(), (x1 as f64).ln());
        if lx <= l1 {
            let t = (lx - l0) / (l1 - l0);
            return (v0.ln() + t * (v1.ln() - v0.ln())).exp();
        }
    }
    last.1
}

/// Seconds each layer call costs beyond its arithmetic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallOverhead {
    /// Per transformer or text-encoder block.
    pub block_seconds: f64,
    /// Per VAE convolution (with its norm and activation).
    pub conv_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEstimate {
    pub stage: &'static str,
    pub flops: f64,
    pub seconds: f64,
    /// Weights of the stage's component in memory (one expert at a time for two-expert models).
    pub weight_bytes: f64,
    /// Largest working memory of the stage, on one device.
    pub activation_bytes: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub model: String,
    pub video: VideoSpec,
    pub hardware: Hardware,
    /// Video tokens the transformer attends over.
    pub tokens: usize,
    pub transformer_evaluations: f64,
    pub stages: Vec<StageEstimate>,
    pub total_flops: f64,
    pub seconds: f64,
    pub energy_kwh: f64,
    pub cost_usd: Option<f64>,
    /// Peak memory on one device: the largest stage (reel loads one component at a time).
    pub peak_memory_bytes: f64,
    pub fits: bool,
    pub assumptions: Vec<String>,
}

/// Estimates `video` made with `model` on `hardware`, priced at `price_per_hour` per device.
pub fn estimate(model: &ModelSpec, video: &VideoSpec, hardware: &Hardware, price_per_hour: Option<f64>) -> Result<Estimate> {
    let geometry = &model.latents;
    let (pt, ph, pw) = model.transformer.patch();
    // The same check, with the nearest valid values, as generation makes.
    let (latent_frames, latent_h, latent_w) = geometry
        .latent_dims(video.frames, video.height, video.width)
        .map_err(|e| EstimateError::Input(format!("{}: {e}", model.name)))?;
    if !(0.0..1.0).contains(&video.step_cache) || hardware.count == 0 || !(hardware.utilisation > 0.0 && hardware.utilisation <= 1.0) {
        return Err(EstimateError::Input("step cache must lie in [0, 1), the device count be 1 or more, and utilisation in (0, 1]".into()));
    }
    let tokens = latent_frames.div_ceil(pt) * (latent_h / ph) * (latent_w / pw);
    let guided = video.guidance > 1.0;
    let passes = if guided { 2.0 } else { 1.0 };
    let bytes = video.dtype_bytes as f64;

    let devices = hardware.count as f64 * if hardware.count > 1 { hardware.parallel_efficiency } else { 1.0 };
    // Seconds of arithmetic of `work` done by matrix products or (`convolutions`) by convolutions.
    let arithmetic = |work: &Work, convolutions: bool| -> f64 {
        work.flops_by_shape
            .iter()
            .map(|&(rows, width, flops)| {
                let rate = match &hardware.measured {
                    Some(rates) if convolutions => rates.conv_at(width),
                    Some(rates) => rates.matmul_at(rows, width),
                    None => hardware.peak_flops,
                };
                flops / (rate * hardware.utilisation * devices)
            })
            .sum()
    };
    let stage = |name: &'static str, flops: f64, seconds: f64, weight_bytes: f64, activation_bytes: f64| StageEstimate {
        stage: name,
        flops,
        seconds,
        weight_bytes,
        activation_bytes,
    };
    let overhead = hardware.overhead;

    let encoder = text_encoder(&model.text_encoder, model.text_tokens);
    let encoder_activations = model.text_tokens as f64 * (model.text_encoder.d_ff + 4 * model.text_encoder.d_model) as f64 * bytes;
    let forward = transformer_forward(&model.transformer, tokens, model.text_tokens);
    let evaluations = video.steps as f64 * passes * (1.0 - video.step_cache);
    let d = model.transformer.inner_dim() as f64;
    // Hidden states, q/k/v, the feed-forward's inner layer; sequence parallelism splits them.
    let transformer_activations = tokens as f64 * (6.0 * d + model.transformer.ffn_dim as f64) * bytes / hardware.count as f64;
    let decode = vae_decode(&model.vae, latent_frames, latent_h, latent_w);
    // One latent frame decodes to up to four frames at a time; the widest full-resolution maps
    // (several buffers of the decoder's base width) bound the working memory, in f32.
    let out_pixels = (video.width * video.height) as f64;
    let vae_activations = 4.0 * 4.0 * model.vae.decoder_base_dim() as f64 * out_pixels * 4.0;
    let stages = vec![
        stage(
            "text encoder",
            passes * encoder.flops,
            passes * (arithmetic(&encoder, false) + encoder.calls * overhead.block_seconds),
            encoder.parameters * bytes,
            encoder_activations,
        ),
        stage(
            "transformer",
            evaluations * forward.flops,
            evaluations * (arithmetic(&forward, false) + forward.calls * overhead.block_seconds),
            forward.parameters * bytes,
            transformer_activations,
        ),
        stage(
            "vae decode",
            decode.flops,
            arithmetic(&decode, true) + decode.calls * overhead.conv_seconds,
            vae_parameters(&model.vae) * 4.0,
            vae_activations,
        ),
    ];
    let total_flops: f64 = stages.iter().map(|s| s.flops).sum();
    let seconds: f64 = stages.iter().map(|s| s.seconds).sum();
    let peak_memory_bytes = stages.iter().map(|s| s.weight_bytes + s.activation_bytes).fold(0.0, f64::max);
    let device_hours = hardware.count as f64 * seconds / 3600.0;
    let mut assumptions = vec![
        match hardware.measured {
            Some(_) => format!("{:.0}% of the rates measured on this machine are achieved", hardware.utilisation * 100.0),
            None => format!("{:.0}% of the peak {:.0} TFLOP/s per device is achieved (model FLOPs utilisation)", hardware.utilisation * 100.0, hardware.peak_flops / 1e12),
        },
        format!("{} prompt tokens; the transformer attends over {tokens} video tokens", model.text_tokens),
        format!("{} transformer evaluations: {} steps{}{}", evaluations, video.steps, if guided { " x 2 for guidance" } else { "" },
            if video.step_cache > 0.0 { format!(", {:.0}% served from a step cache", video.step_cache * 100.0) } else { String::new() }),
        "components are loaded one at a time, so memory is that of the largest stage".into(),
        format!("weights and activations in {}-byte floats, the VAE in f32", video.dtype_bytes),
    ];
    if let Some(rates) = &hardware.measured {
        let list = |table: &[(usize, f64)]| table.iter().map(|(w, r)| format!("{w}: {:.0}", r / 1e9)).collect::<Vec<_>>().join(", ");
        let products: Vec<String> = rates.matmul.iter().map(|(rows, table)| format!("{rows} rows [{}]", list(table))).collect();
        assumptions.push(format!(
            "measured here, GFLOP/s by width: matrix products {}; convolutions [{}]",
            products.join(", "),
            list(&rates.conv)
        ));
        assumptions.push(format!(
            "measured here: {:.2} ms of overhead per transformer block call, {:.3} ms per VAE convolution call",
            overhead.block_seconds * 1e3,
            overhead.conv_seconds * 1e3
        ));
    }
    if model.experts == 2 {
        assumptions.push("two experts take turns; only one is in memory at a time".into());
    }
    if hardware.count > 1 {
        assumptions.push(format!(
            "{} devices share every stage by sequence parallelism at {:.0}% efficiency; each holds all weights",
            hardware.count,
            hardware.parallel_efficiency * 100.0
        ));
    }
    assumptions.push(format!("energy charges {:.0} W per device for the whole run", hardware.watts));
    Ok(Estimate {
        model: model.name.clone(),
        video: *video,
        hardware: hardware.clone(),
        tokens,
        transformer_evaluations: evaluations,
        stages,
        total_flops,
        seconds,
        energy_kwh: device_hours * hardware.watts / 1000.0,
        cost_usd: price_per_hour.map(|price| device_hours * price),
        peak_memory_bytes,
        fits: peak_memory_bytes <= hardware.memory_bytes,
        assumptions,
    })
}
