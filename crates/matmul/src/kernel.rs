//! Micro-kernels: `MR × NR` register tiles of `C += Apanel · Bpanel` over `kc` steps.
//!
//! Vectors run along **m** (the rows of C), not along n. The network's products have n = 50
//! (the hidden width) or 10, which would fill only 50 of 64 lanes of 16-wide vectors laid along
//! n; laid along m (the batch, a multiple of 16 in practice) every lane works, and NR is chosen
//! so that 50 is a whole number of tiles (AVX-512: NR = 10).
//!
//! Packed layouts (see `pack.rs`): the A sliver holds, for each step p, MR consecutive values
//! `A[i0..i0+MR, p]`; the B sliver holds, for each p, NR consecutive values `B[p, j0..j0+NR]`.
//! The kernel writes its tile to `out` column by column (`out[j·MR + i]`); the driver then
//! merges it into C with α and β.

/// A register-blocked micro-kernel for one instruction set.
pub(crate) trait MicroKernel {
    /// Rows of the tile (the vector direction).
    const MR: usize;
    /// Columns of the tile.
    const NR: usize;
    /// `out[j·MR + i] = Σ_p a[p·MR + i] · b[p·NR + j]` for the whole tile.
    ///
    /// # Safety
    /// `a` holds `kc·MR` floats, `b` holds `kc·NR` floats, `out` holds `MR·NR` floats, and the
    /// CPU supports the kernel's instruction set.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32);
}

/// Which micro-kernel runs. [`detect`] picks the best one this CPU supports; tests force each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// 32 × 10 tile in 20 zmm accumulators (x86-64 with AVX-512F).
    Avx512,
    /// 16 × 6 tile in 12 ymm accumulators (x86-64 with AVX2 and FMA).
    Avx2Fma,
    /// 8 × 4 tile in plain Rust that the compiler vectorizes for any target.
    Portable,
}

impl Kernel {
    /// Every kernel, best first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable];

    /// Whether this CPU can run it (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            Kernel::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The tile shape `(MR, NR)`.
    pub fn tile(self) -> (usize, usize) {
        match self {
            Kernel::Avx512 => (Avx512::MR, Avx512::NR),
            Kernel::Avx2Fma => (Avx2Fma::MR, Avx2Fma::NR),
            Kernel::Portable => (Portable::MR, Portable::NR),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2Fma => "avx2-fma",
            Kernel::Portable => "portable",
        }
    }
}

/// The best kernel this CPU supports, detected once. `BACKPROP_MATMUL_KERNEL=avx512|avx2-fma|portable`
/// forces one (an unsupported choice falls back to detection).
pub fn detect() -> Kernel {
    static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let forced = std::env::var("BACKPROP_MATMUL_KERNEL").ok();
        Kernel::ALL
            .into_iter()
            .find(|k| forced.as_deref() == Some(k.name()) && k.is_supported())
            .or_else(|| Kernel::ALL.into_iter().find(|k| k.is_supported()))
            .unwrap_or(Kernel::Portable)
    })
}

/// The portable kernel: arrays the compiler keeps in vector registers on any target.
pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 8;
    const NR: usize = 4;

    #[inline]
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
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

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2Fma, Avx512};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx512 = Portable;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx2Fma = Portable;

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // Register tiles read best as indexed loops.
mod x86 {
    use super::MicroKernel;
    use std::arch::x86_64::*;

    pub(crate) struct Avx512;

    impl MicroKernel for Avx512 {
        const MR: usize = 32;
        const NR: usize = 10;

        #[inline]
        unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
            avx512_32x10(kc, a, b, out)
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_32x10(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
        const NR: usize = Avx512::NR;
        let mut lo = [_mm512_setzero_ps(); NR];
        let mut hi = [_mm512_setzero_ps(); NR];
        for p in 0..kc {
            let a_lo = _mm512_loadu_ps(a.add(p * 32));
            let a_hi = _mm512_loadu_ps(a.add(p * 32 + 16));
            let b_row = b.add(p * NR);
            for j in 0..NR {
                let bj = _mm512_set1_ps(*b_row.add(j));
                lo[j] = _mm512_fmadd_ps(a_lo, bj, lo[j]);
                hi[j] = _mm512_fmadd_ps(a_hi, bj, hi[j]);
            }
        }
        for j in 0..NR {
            _mm512_storeu_ps(out.add(j * 32), lo[j]);
            _mm512_storeu_ps(out.add(j * 32 + 16), hi[j]);
        }
    }

    pub(crate) struct Avx2Fma;

    impl MicroKernel for Avx2Fma {
        const MR: usize = 16;
        const NR: usize = 6;

        #[inline]
        unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
            avx2_16x6(kc, a, b, out)
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_16x6(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
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
