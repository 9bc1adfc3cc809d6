//! Micro-kernels: `MR × NR` register tiles of `C += Apanel · Bpanel` over `kc` steps, one file
//! per instruction set, each with the blocking of the loop nest that suits it:
//!
//! - `avx512.rs`: 32 × 10 (vectors along m) and 14 × 32 (vectors along n), with fast packing
//!   and masked merges into a row-major C; also the vector helpers of `direct.rs`.
//! - `avx2.rs`: 16 × 6 with AVX2 and FMA.
//! - `portable.rs`: 8 × 4 in plain Rust, for any target.
//!
//! Which kernel may run is detected here ([`Cpu::detect`], [`detect`]); which one does run for
//! a product is the plan's choice (`plan.rs`).
//!
//! Packed layouts (written by `gemm.rs`): the A sliver holds, for each step p, MR consecutive
//! values `A[i0..i0+MR, p]`; the B sliver holds, for each p, NR consecutive values
//! `B[p, j0..j0+NR]`. The kernel writes its tile to `out` column by column (`out[j·MR + i]`);
//! the loop nest then merges it into C with α and β.

mod portable;
pub(crate) use portable::Portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2Fma;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{first_lanes, merge_vector, transpose_16x16, Avx512, Avx512Wide};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx512 = Portable;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx512Wide = Portable;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx2Fma = Portable;

/// A register-blocked micro-kernel for one instruction set.
pub(crate) trait MicroKernel {
    /// Rows of the tile (the vector direction).
    const MR: usize;
    /// Columns of the tile.
    const NR: usize;
    /// LOOP 4: the most depth of a packed panel; k is cut into equal panels of at most KC
    /// (`gemm::panel_depth`).
    const KC: usize;
    /// LOOP 3: the most rows of a packed A block (rounded down to whole MR slivers).
    const MC: usize;
    /// LOOP 5: the most columns of a packed B panel (rounded down to whole NR slivers).
    const NC: usize;
    /// `out[j·MR + i] = Σ_p a[p·MR + i] · b[p·NR + j]` for the whole tile.
    ///
    /// # Safety
    /// `a` holds `kc·MR` floats, `b` holds `kc·NR` floats, `out` holds `MR·NR` floats, and the
    /// CPU supports the kernel's instruction set.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32);

    /// Packs one full MR-tall sliver of a **row-major** A (`a` points at `A[i0, p0]`, rows `rs`
    /// apart) into `out` (`kc·MR` floats, p-major), if this kernel has a fast way to; returns
    /// whether it did. The fast way must give the same values as the scalar packing.
    ///
    /// # Safety
    /// The MR rows of `kc` floats exist, and the CPU supports the kernel's instruction set.
    unsafe fn pack_a_row_major(_kc: usize, _a: *const f32, _rs: isize, _out: *mut f32) -> bool {
        false
    }

    /// Packs one full NR-wide sliver of a **column-major** B (`b` points at `B[p0, j0]`,
    /// columns `cs` apart, each contiguous along k) into `out` (`kc·NR` floats, p-major), if
    /// this kernel has a fast way to; returns whether it did. Same values as the scalar packing.
    ///
    /// # Safety
    /// The NR columns of `kc` floats exist, and the CPU supports the kernel's instruction set.
    unsafe fn pack_b_col_major(_kc: usize, _b: *const f32, _cs: isize, _out: *mut f32) -> bool {
        false
    }

    /// Runs the kernel and merges the first `rows × cols` of its tile (at most MR × NR; the
    /// edge tiles of C are smaller) straight into a **row-major** C (`c` points at the tile's
    /// first element, rows `rs` apart): `C ← β·C + α·T`, or `α·T` when β = 0, with the same
    /// roundings as the scalar merge. Returns whether it did.
    ///
    /// # Safety
    /// As [`MicroKernel::run`], and the `rows × cols` elements of C exist.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_into_row_major(
        _kc: usize,
        _a: *const f32,
        _b: *const f32,
        _c: *mut f32,
        _rs: isize,
        _alpha: f32,
        _beta: f32,
        _rows: usize,
        _cols: usize,
    ) -> bool {
        false
    }
}

/// Which micro-kernel runs. [`detect`] picks the best one this CPU supports; tests force each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AVX-512F, choosing per product: the unpacked paths for the network's skinny products,
    /// else the packed loop nest with the tile that fills its vectors best
    /// ([`Kernel::Avx512Tall`] or [`Kernel::Avx512Wide`]). What [`detect`] picks on such CPUs.
    Avx512,
    /// The packed loop nest with the 32 × 10 tile (vectors along m) in 20 zmm accumulators,
    /// whatever the shape.
    Avx512Tall,
    /// The packed loop nest with the 14 × 32 tile (vectors along n) in 28 zmm accumulators,
    /// whatever the shape.
    Avx512Wide,
    /// 16 × 6 tile in 12 ymm accumulators (x86-64 with AVX2 and FMA).
    Avx2Fma,
    /// 8 × 4 tile in plain Rust that the compiler vectorizes for any target.
    Portable,
}

/// The instruction sets of a CPU that the kernels use. An input of the plan rather than read
/// inside it, so that its decisions for every CPU can be tested on any one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpu {
    /// AVX-512F: the 32 × 10 and 14 × 32 tiles and the unpacked paths.
    pub avx512f: bool,
    /// AVX2 and FMA both: the 16 × 6 tile.
    pub avx2_fma: bool,
}

impl Cpu {
    /// An AVX-512 CPU (which has AVX2 and FMA too).
    pub const AVX512: Cpu = Cpu {
        avx512f: true,
        avx2_fma: true,
    };
    /// An x86-64 CPU with AVX2 and FMA but no AVX-512 (AMD Zen 1-3, Intel client CPUs).
    pub const AVX2_FMA: Cpu = Cpu {
        avx512f: false,
        avx2_fma: true,
    };
    /// Neither: only the portable kernel runs.
    pub const NONE: Cpu = Cpu {
        avx512f: false,
        avx2_fma: false,
    };

    /// What this CPU offers (checked at run time; the standard library caches the answer).
    pub fn detect() -> Cpu {
        #[cfg(target_arch = "x86_64")]
        {
            Cpu {
                avx512f: std::is_x86_feature_detected!("avx512f"),
                avx2_fma: std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Cpu::NONE
        }
    }
}

impl Kernel {
    /// Every kernel, best first.
    pub const ALL: [Kernel; 5] = [
        Kernel::Avx512,
        Kernel::Avx512Tall,
        Kernel::Avx512Wide,
        Kernel::Avx2Fma,
        Kernel::Portable,
    ];

    /// Whether this CPU can run it (checked at run time).
    pub fn is_supported(self) -> bool {
        self.runs_on(Cpu::detect())
    }

    /// Whether a CPU with these instruction sets can run it.
    pub fn runs_on(self, cpu: Cpu) -> bool {
        match self {
            Kernel::Avx512 | Kernel::Avx512Tall | Kernel::Avx512Wide => cpu.avx512f,
            Kernel::Avx2Fma => cpu.avx2_fma,
            Kernel::Portable => true,
        }
    }

    /// The tile shape `(MR, NR)` of the packed loop nest (for [`Kernel::Avx512`], the 32 × 10
    /// one it uses on narrow products).
    pub fn tile(self) -> (usize, usize) {
        match self {
            Kernel::Avx512 | Kernel::Avx512Tall => (Avx512::MR, Avx512::NR),
            Kernel::Avx512Wide => (Avx512Wide::MR, Avx512Wide::NR),
            Kernel::Avx2Fma => (Avx2Fma::MR, Avx2Fma::NR),
            Kernel::Portable => (Portable::MR, Portable::NR),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx512Tall => "avx512-tall",
            Kernel::Avx512Wide => "avx512-wide",
            Kernel::Avx2Fma => "avx2-fma",
            Kernel::Portable => "portable",
        }
    }
}

/// The best kernel this CPU supports, detected once.
/// `BACKPROP_MATMUL_KERNEL=avx512|avx512-tall|avx512-wide|avx2-fma|portable`
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
