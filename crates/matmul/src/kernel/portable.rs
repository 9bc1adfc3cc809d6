//! The portable kernel: an 8 × 4 tile in plain Rust arrays that the compiler keeps in vector
//! registers on any target. It runs wherever neither AVX-512 nor AVX2+FMA is present.

use super::MicroKernel;

/// The portable kernel: arrays the compiler keeps in vector registers on any target.
pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 8;
    const NR: usize = 4;
    /// The same blocking as the AVX-512 kernels (not tuned apart for this kernel).
    const KC: usize = 384;
    /// As [`Portable::KC`].
    const MC: usize = 256;
    /// As [`Portable::KC`].
    const NC: usize = 2048;

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
        // SAFETY: `a` holds kc·MR and `b` kc·NR floats and `out` MR·NR (the trait's contract);
        // unaligned reads are fine for any address.
        unsafe {
            const MR: usize = Portable::MR;
            const NR: usize = Portable::NR;
            let mut acc = [[0.0f32; MR]; NR];
            for p in 0..kc {
                let a_col: [f32; MR] = std::ptr::read_unaligned(a.add(p * MR) as *const [f32; MR]);
                let b_row: [f32; NR] = std::ptr::read_unaligned(b.add(p * NR) as *const [f32; NR]);
                for j in 0..NR {
                    for i in 0..MR {
                        acc[j][i] += a_col[i] * b_row[j];
                    }
                }
            }
            for (j, column) in acc.iter().enumerate() {
                std::ptr::copy_nonoverlapping(column.as_ptr(), out.add(j * MR), MR);
            }
        }
    }
}
