//! Seeded Gaussian noise that reproduces PyTorch's CPU generator: `torch.manual_seed(seed)` (or a
//! `torch.Generator("cpu").manual_seed(seed)`) followed by `torch.randn(shape)` in f32 gives the
//! same values, to float rounding (torch's vectorised log/sin/cos differ from libm in the last bit).
//!
//! So a seed gives the same video in reel on every machine and device (noise is drawn on the CPU),
//! and the same initial latents as diffusers' `WanPipeline` called with `generator=
//! torch.Generator("cpu").manual_seed(seed)`.

use candle_core::{Device, Shape, Tensor};

use crate::Result;

/// The 32-bit Mersenne Twister (mt19937), as `at::mt19937` seeds and runs it.
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u64) -> Self {
        let mut state = [0u32; 624];
        state[0] = (seed & 0xffff_ffff) as u32;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `at::uniform_real_distribution<float>(0, 1)`: 24 random bits scaled to [0, 1).
    fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & ((1 << 24) - 1)) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Box-Muller over 16 uniforms: pairs (j, j + 8), as torch's `normal_fill_16`.
fn normal_fill_16(data: &mut [f32]) {
    for j in 0..8 {
        let u1 = 1.0 - data[j];
        let u2 = data[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = (2.0 * std::f64::consts::PI) as f32 * u2;
        data[j] = radius * theta.cos();
        data[j + 8] = radius * theta.sin();
    }
}

/// `count` standard normal samples, in the order `torch.randn` fills a contiguous f32 tensor.
pub fn torch_randn(seed: u64, count: usize) -> Vec<f32> {
    let mut rng = Mt19937::new(seed);
    if count < 16 {
        // torch draws small tensors with another algorithm; latents are never this small.
        return small_normals(&mut rng, count);
    }
    let mut data: Vec<f32> = (0..count).map(|_| rng.uniform_f32()).collect();
    for start in (0..count - 15).step_by(16) {
        normal_fill_16(&mut data[start..start + 16]);
    }
    if !count.is_multiple_of(16) {
        // As torch does: the last 16 values are drawn again and transformed together.
        let tail = &mut data[count - 16..];
        for value in tail.iter_mut() {
            *value = rng.uniform_f32();
        }
        normal_fill_16(tail);
    }
    data
}

/// Fewer than 16 values: plain Box-Muller pairs (reproducible in reel, not equal to torch's).
fn small_normals(rng: &mut Mt19937, count: usize) -> Vec<f32> {
    let mut data: Vec<f32> = (0..16).map(|_| rng.uniform_f32()).collect();
    normal_fill_16(&mut data);
    data.truncate(count);
    data
}

/// A noise tensor of `shape` from `seed`, drawn on the CPU and moved to `device`.
pub fn seeded_noise(seed: u64, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let values = torch_randn(seed, shape.elem_count());
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mersenne_twister_matches_the_reference_sequence() {
        // The 10000th output of mt19937 seeded with 5489 is 4123659995 (C++ standard, [rand.predef]).
        let mut rng = Mt19937::new(5489);
        let value = (0..10000).map(|_| rng.next_u32()).last().unwrap();
        assert_eq!(value, 4_123_659_995);
    }
}
