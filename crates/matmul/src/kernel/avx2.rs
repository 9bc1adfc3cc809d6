//! The AVX2+FMA kernel: a 16 × 6 tile in 12 ymm accumulators, vectors along m (two 8-lane
//! vectors of A times six broadcasts of B a step). It has no fast packing or merging of its own:
//! the loop nest packs and merges for it element by element.

#![allow(clippy::needless_range_loop)] // Register tiles read best as indexed loops.

use super::MicroKernel;
use std::arch::x86_64::*;

/// The 16 × 6 tile.
pub(crate) struct Avx2Fma;

impl MicroKernel for Avx2Fma {
    const MR: usize = 16;
    const NR: usize = 6;
    /// The same blocking as the AVX-512 kernels (not tuned apart on an AVX2 machine).
    const KC: usize = 384;
    /// As [`Avx2Fma::KC`].
    const MC: usize = 256;
    /// As [`Avx2Fma::KC`].
    const NC: usize = 2048;

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
        // SAFETY: as the trait's contract; the CPU supports AVX2 and FMA (also the contract).
        unsafe { avx2_16x6(kc, a, b, out) }
    }
}

/// `out[j·16 + i] = Σ_p a[16p + i]·b[6p + j]`: for each step, two vectors of A times six
/// broadcast values of B.
///
/// # Safety
/// `a` holds `16·kc` floats, `b` `6·kc`, `out` 96; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_16x6(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
    // SAFETY: every load reads steps p < kc of the slivers and every store one of the 96 floats of
    // `out` (the caller's contract).
    unsafe {
        const NR: usize = Avx2Fma::NR;
        let mut lo = [_mm256_setzero_ps(); NR];
        let mut hi = [_mm256_setzero_ps(); NR];
        for p in 0..kc {
            let a_lo = _mm256_loadu_ps(a.add(p * 16));
            let a_hi = _mm256_loadu_ps(a.add(p * 16 + 8));
            let b_row = b.add(p * NR);
            for j in 0..NR {
                let bj = _mm256_set1_ps(*b_row.add(j));
                lo[j] = _mm256_fmadd_ps(a_lo, bj, lo[j]);
                hi[j] = _mm256_fmadd_ps(a_hi, bj, hi[j]);
            }
        }
        for j in 0..NR {
            _mm256_storeu_ps(out.add(j * 16), lo[j]);
            _mm256_storeu_ps(out.add(j * 16 + 8), hi[j]);
        }
    }
}
