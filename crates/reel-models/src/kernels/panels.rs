//! The packed layout and loops shared by reel's matrix-product kernels (bf16 and int8).
//!
//! A weight `W` (out, in) is stored once, when its layer is built, as groups of consecutive input
//! values packed into one u32 (two bf16 for `vdpbf16ps`, four int8 for `vpdpbusd`: both
//! instructions multiply a group by a group and add the products to one 32-bit lane), in panels of
//! [`PANEL`] output columns: `panel[group][column]`. A micro-kernel keeps a [`MAX_ROWS`] x [`PANEL`]
//! block of 32-bit sums in registers, broadcasts one group of an input row against three vectors of
//! a panel per step, and walks the input dimension in blocks of [`BLOCK_GROUPS`] so that the
//! panel's slice stays in the core's caches. Output columns are shared out between threads.

use rayon::prelude::*;

/// Output columns per panel: three 16-lane vectors.
pub const PANEL: usize = 48;
/// Input rows per micro-kernel call (3 x 8 = 24 of the 32 vector registers hold sums).
pub const MAX_ROWS: usize = 8;
/// Groups of the input dimension per cache block (a 96 KiB panel slice).
const BLOCK_GROUPS: usize = 512;

/// Which micro-kernel multiplies the groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// `vdpbf16ps`: pairs of bf16, f32 sums.
    Bf16Pairs,
    /// `vpdpbusd`: quads of unsigned by signed int8, i32 sums.
    Int8Quads,
}

/// A weight matrix in the packed layout.
#[derive(Debug, Clone)]
pub struct Panels {
    pub out_dim: usize,
    /// Groups along the input dimension (the last one padded with zero values).
    pub groups: usize,
    /// `panels * groups * PANEL` u32; columns past `out_dim` are zero.
    data: Vec<u32>,
}

thread_local! {
    /// The sums of the last product on this thread, kept for the next: products of a model's size
    /// would otherwise map and fault in tens of MB of fresh pages each time.
    static SUMS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

thread_local! {
    /// One output row's f32 values while a kernel finishes it.
    static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch row, filled from `values` (no allocation per row).
pub fn with_row<R>(values: impl Iterator<Item = f32>, f: impl FnOnce(&mut [f32]) -> R) -> R {
    ROW.with(|row| {
        let mut row = row.borrow_mut();
        row.clear();
        row.extend(values);
        f(&mut row)
    })
}

struct SendPtr(*mut u32);
// SAFETY: threads write disjoint columns through it (see `Panels::product`).
unsafe impl Sync for SendPtr {}

impl Panels {
    /// Packs `out_dim` columns of `groups` groups; `group(column, g)` gives one packed group.
    pub fn pack(out_dim: usize, groups: usize, group: impl Fn(usize, usize) -> u32 + Sync) -> Self {
        let panels = out_dim.div_ceil(PANEL);
        let mut data = vec![0u32; panels * groups * PANEL];
        data.par_chunks_mut(groups * PANEL).enumerate().for_each(|(panel, dst)| {
            for column in 0..PANEL.min(out_dim - panel * PANEL) {
                for g in 0..groups {
                    dst[g * PANEL + column] = group(panel * PANEL + column, g);
                }
            }
        });
        Self { out_dim, groups, data }
    }

    /// Bytes held by the packed weight.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    fn panels(&self) -> usize {
        self.data.len() / (self.groups * PANEL)
    }

    /// Multiplies `rows` input rows (`groups` packed groups each, row-major) by the weight and
    /// hands each row's 32-bit sums (`out_dim` of them, as bits) to `finish(row, sums, out_row)`.
    /// Panics when the CPU lacks `instruction`.
    pub fn product<T: Copy + Default + Send>(
        &self,
        instruction: Instruction,
        x: &[u32],
        rows: usize,
        finish: impl Fn(usize, &[u32], &mut [T]) + Sync,
    ) -> Vec<T> {
        assert!(supports(instruction), "this CPU has no {instruction:?} instruction");
        assert_eq!(x.len(), rows * self.groups, "input of {} groups is not {rows} x {}", x.len(), self.groups);
        let width = self.panels() * PANEL;
        let mut sums = SUMS.take();
        // Every sum is written before it is read (the first input block stores, later ones add),
        // so a reused buffer needs no clearing.
        if sums.len() < rows * width {
            sums.resize(rows * width, 0);
        }
        let sums_ptr = SendPtr(sums.as_mut_ptr());
        let groups = self.groups;
        (0..self.panels()).into_par_iter().for_each(|panel| {
            let panel_data = &self.data[panel * groups * PANEL..][..groups * PANEL];
            let sums_ptr = &sums_ptr;
            for block in (0..groups).step_by(BLOCK_GROUPS) {
                let block_groups = BLOCK_GROUPS.min(groups - block);
                for row in (0..rows).step_by(MAX_ROWS) {
                    // SAFETY: each panel writes only its own PANEL columns of `sums`; the input
                    // rows hold `groups` u32 each; `supports(instruction)` was checked above.
                    unsafe {
                        let a = x.as_ptr().add(row * groups + block);
                        let b = panel_data.as_ptr().add(block * PANEL);
                        let c = sums_ptr.0.add(row * width + panel * PANEL);
                        x86::block(instruction, MAX_ROWS.min(rows - row), a, groups, b, block_groups, c, width, block > 0);
                    }
                }
            }
        });
        let out_dim = self.out_dim;
        let mut out = vec![T::default(); rows * out_dim];
        out.par_chunks_mut(out_dim).zip(sums[..rows * width].par_chunks(width)).enumerate().for_each(|(row, (dst, src))| {
            finish(row, &src[..out_dim], dst);
        });
        SUMS.set(sums);
        out
    }
}

/// Whether this CPU has `instruction` (and AVX-512 F).
pub fn supports(instruction: Instruction) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && match instruction {
                Instruction::Bf16Pairs => std::is_x86_feature_detected!("avx512bf16"),
                Instruction::Int8Quads => std::is_x86_feature_detected!("avx512vnni"),
            }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = instruction;
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Instruction, PANEL};

    /// Dispatches a block of `rows` (1..=8) input rows to the micro-kernel of that height.
    ///
    /// # Safety
    /// `a` points at `rows` rows of `lda` u32 groups (at least `groups` readable from each), `b`
    /// at `groups * PANEL` u32, `c` at `rows` rows of `ldc` u32 (at least PANEL writable from
    /// each), and the CPU has AVX-512 F and the instruction.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block(
        instruction: Instruction,
        rows: usize,
        a: *const u32,
        lda: usize,
        b: *const u32,
        groups: usize,
        c: *mut u32,
        ldc: usize,
        accumulate: bool,
    ) {
        macro_rules! by_height {
            ($kernel:ident) => {
                match rows {
                    8 => $kernel::<8>(a, lda, b, groups, c, ldc, accumulate),
                    7 => $kernel::<7>(a, lda, b, groups, c, ldc, accumulate),
                    6 => $kernel::<6>(a, lda, b, groups, c, ldc, accumulate),
                    5 => $kernel::<5>(a, lda, b, groups, c, ldc, accumulate),
                    4 => $kernel::<4>(a, lda, b, groups, c, ldc, accumulate),
                    3 => $kernel::<3>(a, lda, b, groups, c, ldc, accumulate),
                    2 => $kernel::<2>(a, lda, b, groups, c, ldc, accumulate),
                    1 => $kernel::<1>(a, lda, b, groups, c, ldc, accumulate),
                    _ => unreachable!("a block has 1 to 8 rows"),
                }
            };
        }
        unsafe {
            match instruction {
                Instruction::Bf16Pairs => by_height!(bf16_pairs),
                Instruction::Int8Quads => by_height!(int8_quads),
            }
        }
    }

    /// One micro-kernel per instruction: the same loop, a different multiply-add into 32-bit lanes.
    macro_rules! micro_kernel {
        ($name:ident, $features:literal, |$sum:ident, $group:ident, $column:ident| $multiply_add:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const ROWS: usize>(a: *const u32, lda: usize, b: *const u32, groups: usize, c: *mut u32, ldc: usize, accumulate: bool) {
                unsafe {
                    let mut sums = [[_mm512_setzero_si512(); 3]; ROWS];
                    if accumulate {
                        for (r, row) in sums.iter_mut().enumerate() {
                            for (j, sum) in row.iter_mut().enumerate() {
                                *sum = _mm512_loadu_si512(c.add(r * ldc + 16 * j) as *const __m512i);
                            }
                        }
                    }
                    for g in 0..groups {
                        let panel = b.add(g * PANEL);
                        let columns = [
                            _mm512_loadu_si512(panel as *const __m512i),
                            _mm512_loadu_si512(panel.add(16) as *const __m512i),
                            _mm512_loadu_si512(panel.add(32) as *const __m512i),
                        ];
                        for (r, row) in sums.iter_mut().enumerate() {
                            let $group = _mm512_set1_epi32(a.add(r * lda + g).read_unaligned() as i32);
                            for ($sum, $column) in row.iter_mut().zip(&columns) {
                                *$sum = $multiply_add;
                            }
                        }
                    }
                    for (r, row) in sums.iter().enumerate() {
                        for (j, sum) in row.iter().enumerate() {
                            _mm512_storeu_si512(c.add(r * ldc + 16 * j) as *mut __m512i, *sum);
                        }
                    }
                }
            }
        };
    }

    micro_kernel!(bf16_pairs, "avx512f,avx512bf16", |sum, group, column| _mm512_castps_si512(_mm512_dpbf16_ps(
        _mm512_castsi512_ps(*sum),
        std::mem::transmute::<__m512i, __m512bh>(group),
        std::mem::transmute::<__m512i, __m512bh>(*column)
    )));
    micro_kernel!(int8_quads, "avx512f,avx512vnni", |sum, group, column| _mm512_dpbusd_epi32(*sum, group, *column));
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block(_: super::Instruction, _: usize, _: *const u32, _: usize, _: *const u32, _: usize, _: *mut u32, _: usize, _: bool) {
        unreachable!("supports() is false off x86_64")
    }
}
