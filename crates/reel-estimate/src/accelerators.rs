//! Accelerators an estimate can assume: peak dense bf16 tensor throughput (no sparsity), memory
//! and board power, from the vendors' data sheets.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accelerator {
    /// The name `--gpu` takes.
    pub name: &'static str,
    pub description: &'static str,
    /// Peak dense bf16 tensor FLOP/s.
    pub peak_flops: f64,
    pub memory_bytes: f64,
    /// Board power at full load, in watts (what energy estimates charge).
    pub watts: f64,
}

const T: f64 = 1e12;
const GB: f64 = 1e9;

/// The table. H800 and A800 are the export versions of H100 and A100: the same compute, slower
/// links between GPUs.
pub const ACCELERATORS: [Accelerator; 7] = [
    Accelerator { name: "h100", description: "NVIDIA H100 SXM5 80 GB", peak_flops: 989.4 * T, memory_bytes: 80.0 * GB, watts: 700.0 },
    Accelerator { name: "h200", description: "NVIDIA H200 SXM 141 GB", peak_flops: 989.4 * T, memory_bytes: 141.0 * GB, watts: 700.0 },
    Accelerator { name: "h800", description: "NVIDIA H800 SXM5 80 GB", peak_flops: 989.4 * T, memory_bytes: 80.0 * GB, watts: 700.0 },
    Accelerator { name: "a100", description: "NVIDIA A100 SXM4 80 GB", peak_flops: 312.0 * T, memory_bytes: 80.0 * GB, watts: 400.0 },
    Accelerator { name: "a800", description: "NVIDIA A800 SXM4 80 GB", peak_flops: 312.0 * T, memory_bytes: 80.0 * GB, watts: 400.0 },
    Accelerator { name: "l40s", description: "NVIDIA L40S 48 GB", peak_flops: 362.05 * T, memory_bytes: 48.0 * GB, watts: 350.0 },
    Accelerator { name: "rtx4090", description: "NVIDIA GeForce RTX 4090 24 GB (bf16 with f32 accumulation)", peak_flops: 165.2 * T, memory_bytes: 24.0 * GB, watts: 450.0 },
];

/// An accelerator of the table by name (case does not matter).
pub fn accelerator(name: &str) -> Option<Accelerator> {
    ACCELERATORS.iter().find(|a| a.name.eq_ignore_ascii_case(name)).copied()
}
