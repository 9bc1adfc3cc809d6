//! The AVX-512F kernels: two orientations of the packed tile, and the vector helpers (masks,
//! merges, the 16 × 16 register transpose) that the unpacked paths of `direct.rs` share.
//!
//! - **32 × 10, vectors along m** ([`Avx512`], 20 zmm accumulators): the network's products
//!   have n = 50 (the hidden width) or 10, which would fill only 50 of 64 lanes of 16-wide
//!   vectors laid along n; laid along m (the batch, a multiple of 16 in practice) every lane
//!   works, and NR = 10 makes 50 a whole number of tiles. The price: a row-major C is merged
//!   through a register transpose.
//! - **14 × 32, vectors along n** ([`Avx512Wide`], 28 zmm accumulators): for wide products
//!   (n = 256, 784, squares). Each step broadcasts 14 values of A and loads 32 of B; the tile's
//!   rows are rows of a row-major C, merged with plain vector loads and stores, and the A
//!   sliver streamed from L2 is 56 bytes a step instead of 128. On an Intel Xeon (Sapphire
//!   Rapids class) it ran the packed loop nest 3–13% faster than 32 × 10 on squares from 256
//!   to 2048 and on 1024 × 784 × 256 (best of three interleaved runs each).
//!
//! Both compute each element of C as the same chain of fused multiply-adds over p = 0, 1, ...
//! within the same panels of k (they share [`KC`]), so they give identical bits: which one the
//! plan picks never changes a result.

#![allow(clippy::needless_range_loop)] // Register tiles read best as indexed loops.

use super::MicroKernel;
use std::arch::x86_64::*;

/// LOOP 4 (the depth of a packed panel, at most; see `gemm::panel_depth`), for both tiles:
/// sharing it keeps their bits identical. The sliver that LOOP 1 keeps in L1 (32 × KC floats
/// for the 14 × 32 tile, 48 KiB; 10 × KC for the 32 × 10 one) shares the 48 KiB L1 with the
/// stream of the other operand. On an Intel Xeon, 384 ran the 14 × 32 tile at 1024³ faster
/// than 256 or 512.
pub(crate) const KC: usize = 384;
/// LOOP 3: rows of the packed A block (rounded down to whole slivers). MC × KC floats
/// (384 KiB) stay in L2 (1–2 MiB a core).
pub(crate) const MC: usize = 256;
/// LOOP 5: columns of the packed B panel (rounded down to whole slivers). KC × NC floats
/// (3 MiB) stay in L3.
pub(crate) const NC: usize = 2048;

/// The 32 × 10 tile, vectors along m.
pub(crate) struct Avx512;

impl MicroKernel for Avx512 {
    const MR: usize = 32;
    const NR: usize = 10;
    const KC: usize = KC;
    const MC: usize = MC;
    const NC: usize = NC;

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe { avx512_32x10(kc, a, b, out) }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn pack_a_row_major(kc: usize, a: *const f32, rs: isize, out: *mut f32) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            pack_32_vectors_p_major(kc, a, rs, out);
            true
        }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn pack_b_col_major(kc: usize, b: *const f32, cs: isize, out: *mut f32) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            pack_vectors_p_major::<{ Avx512::NR }>(kc, b, cs, out);
            true
        }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run_into_row_major(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: isize,
        alpha: f32,
        beta: f32,
        rows: usize,
        cols: usize,
    ) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            avx512_32x10_into_row_major(kc, a, b, c, rs, alpha, beta, rows, cols);
            true
        }
    }
}

/// The 32 × 10 kernel, then the tile transposed in registers (two 16 × 16 transposes, six
/// columns of zeros) and merged into 32 rows of C with 10-lane masked loads and stores.
///
/// # Safety
/// As [`MicroKernel::run_into_row_major`]: `a` holds `32·kc` floats, `b` `10·kc`, the `rows × cols`
/// elements of C from `c` (rows `rs` apart) exist and are writable, and the CPU supports AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_32x10_into_row_major(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rs: isize,
    alpha: f32,
    beta: f32,
    rows: usize,
    cols: usize,
) {
    // SAFETY: loads read the slivers within kc steps; each merge touches row i < rows of C in the
    // first cols ≤ 10 lanes only (masked), which exist (the caller's contract).
    unsafe {
        const NR: usize = Avx512::NR;
        let (lo, hi) = accumulate_32x10(kc, a, b);
        let mask = first_lanes(cols.min(NR));
        for (half, acc) in [lo, hi].into_iter().enumerate() {
            let rows_here = rows.saturating_sub(16 * half).min(16);
            if rows_here == 0 {
                break;
            }
            let mut r: [__m512; 16] = std::array::from_fn(|j| if j < NR { acc[j] } else { _mm512_setzero_ps() });
            transpose_16x16(&mut r);
            for (i, row) in r.iter().take(rows_here).enumerate() {
                merge_vector(c.offset((16 * half + i) as isize * rs), mask, alpha, beta, *row);
            }
        }
    }
}

/// The mask of the first `count` of 16 lanes (all 16 from 16 up).
#[inline(always)]
pub(crate) fn first_lanes(count: usize) -> __mmask16 {
    if count >= 16 {
        0xffff
    } else {
        ((1u32 << count) - 1) as u16
    }
}

/// Merges one vector of a tile into C at `dst`, in the lanes of `mask`: `β·C + α·T`, or
/// `α·T` when β = 0 (C is then not read, whatever it holds), rounded as the scalar merge:
/// one multiply, then one add. Every AVX-512 path merges through this.
///
/// # Safety
/// `dst` is valid for reads and writes of the lanes set in `mask` (masked lanes are neither read
/// nor written, wherever they point), and the CPU supports AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn merge_vector(dst: *mut f32, mask: __mmask16, alpha: f32, beta: f32, tile: __m512) {
    // SAFETY: the masked load and store touch only the lanes of `mask`, which the caller guarantees
    // are valid.
    unsafe {
        let scaled = _mm512_mul_ps(_mm512_set1_ps(alpha), tile);
        let value = if beta == 0.0 {
            scaled
        } else {
            _mm512_add_ps(
                _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, dst)),
                scaled,
            )
        };
        _mm512_mask_storeu_ps(dst, mask, value);
    }
}

/// The 32 × 10 register tile: `lo[j]` holds rows 0..16 of column j, `hi[j]` rows 16..32.
/// A (32 values a step, 128 bytes) streams from L2: fetched 8 steps ahead.
///
/// # Safety
/// `a` holds `32·kc` floats, `b` `10·kc`, and the CPU supports AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn accumulate_32x10(kc: usize, a: *const f32, b: *const f32) -> ([__m512; 10], [__m512; 10]) {
    // SAFETY: as the caller's contract, which is `accumulate_32_by`'s for N = 10.
    unsafe { accumulate_32_by::<{ Avx512::NR }>(kc, a, b, Streamed::Vectors, 8) }
}

/// Which operand of [`accumulate_32_by`] streams from L2 (the other stays in L1).
#[derive(Clone, Copy)]
enum Streamed {
    Vectors,
    Scalars,
}

/// The shared inner loop of both tiles: for p in 0..kc, two 16-lane vectors
/// `vectors[32p .. 32p+32]` times each of N broadcast scalars `scalars[Np + t]`, added
/// into `(lo[t], hi[t])` with one fused multiply-add per lane. The operand that streams
/// from L2 is fetched `steps_ahead` steps ahead of its use.
///
/// # Safety
/// `vectors` holds `32·kc` floats, `scalars` `N·kc`, and the CPU supports AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn accumulate_32_by<const N: usize>(
    kc: usize,
    vectors: *const f32,
    scalars: *const f32,
    streamed: Streamed,
    steps_ahead: usize,
) -> ([__m512; N], [__m512; N]) {
    // SAFETY: loads read steps p < kc of each operand only; the prefetch address is formed with
    // wrapping arithmetic and prefetches never fault.
    unsafe {
        let (streamed, stride) = match streamed {
            Streamed::Vectors => (vectors, 32),
            Streamed::Scalars => (scalars, N),
        };
        let mut lo = [_mm512_setzero_ps(); N];
        let mut hi = [_mm512_setzero_ps(); N];
        for p in 0..kc {
            // The last `steps_ahead` steps point past the sliver: `wrapping_add` forms such
            // an address without undefined behaviour, and a prefetch never faults.
            let ahead = streamed.wrapping_add((p + steps_ahead) * stride);
            for line in (0..stride).step_by(16) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
            }
            let v_lo = _mm512_loadu_ps(vectors.add(p * 32));
            let v_hi = _mm512_loadu_ps(vectors.add(p * 32 + 16));
            let step = scalars.add(p * N);
            for t in 0..N {
                let s = _mm512_set1_ps(*step.add(t));
                lo[t] = _mm512_fmadd_ps(v_lo, s, lo[t]);
                hi[t] = _mm512_fmadd_ps(v_hi, s, hi[t]);
            }
        }
        (lo, hi)
    }
}

/// [`accumulate_32_by`] for the first 16 of the 32 lanes only, scalars streamed: for an
/// edge tile whose columns fit one vector, half the multiply-adds (each lane the same chain
/// as in the full tile, so the same bits).
///
/// # Safety
/// `vectors` holds `32·kc` floats (only the first 16 of each step are read), `scalars` `N·kc`, and
/// the CPU supports AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn accumulate_16_by<const N: usize>(
    kc: usize,
    vectors: *const f32,
    scalars: *const f32,
    steps_ahead: usize,
) -> [__m512; N] {
    // SAFETY: as `accumulate_32_by`: loads stay within kc steps, the prefetch address is formed
    // with wrapping arithmetic.
    unsafe {
        let mut lo = [_mm512_setzero_ps(); N];
        for p in 0..kc {
            // Past the sliver for the last steps: see `accumulate_32_by`.
            let ahead = scalars.wrapping_add((p + steps_ahead) * N);
            for line in (0..N).step_by(16) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
            }
            let v_lo = _mm512_loadu_ps(vectors.add(p * 32));
            let step = scalars.add(p * N);
            for t in 0..N {
                lo[t] = _mm512_fmadd_ps(v_lo, _mm512_set1_ps(*step.add(t)), lo[t]);
            }
        }
        lo
    }
}

/// Transposes 32 vectors of kc contiguous values, `rs` apart, into p-major order (32 values
/// per step), 16 × 16 blocks at a time in registers (the last kc mod 16 steps one value at a
/// time). Packs 32 rows of a row-major A for the 32 × 10 tile, and 32 columns of a
/// column-major B (a `Wᵀ` view) for the 14 × 32 tile.
///
/// # Safety
/// The 32 vectors of `kc` floats from `a` (`rs` apart) exist, `out` holds `32·kc` floats, and the
/// CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack_32_vectors_p_major(kc: usize, a: *const f32, rs: isize, out: *mut f32) {
    // SAFETY: loads read p < kc of the 32 vectors, stores write steps p < kc of `out` (the caller's
    // contract); the prefetch address is formed with wrapping arithmetic.
    unsafe {
        let full = kc / 16 * 16;
        for half in 0..2 {
            let rows = a.offset(16 * half as isize * rs);
            let mut p = 0;
            while p < full {
                // Fetch each row 256 bytes ahead: 16 streams are more than the hardware
                // prefetcher follows well. Near the end of a row that address lies past it
                // (past the matrix, for the last row), so it is formed with wrapping
                // arithmetic, which is defined for any address; a prefetch never faults.
                for i in 0..16 {
                    let ahead = rows.wrapping_offset(i as isize * rs).wrapping_add(p + 64);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
                let mut r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(rows.offset(i as isize * rs).add(p)));
                transpose_16x16(&mut r);
                for (q, v) in r.iter().enumerate() {
                    _mm512_storeu_ps(out.add((p + q) * 32 + 16 * half), *v);
                }
                p += 16;
            }
            for p in full..kc {
                for i in 0..16 {
                    *out.add(p * 32 + 16 * half + i) = *rows.offset(i as isize * rs).add(p);
                }
            }
        }
    }
}

/// Transposes `N` ≤ 16 vectors of kc contiguous values, `cs` apart, into p-major order (N
/// values per step): 16 steps of k at a time through a 16 × 16 register transpose (16 − N
/// rows of zeros), each step's N values stored with a masked store. Packs 10 columns of a
/// column-major B (a `Wᵀ` view) for the 32 × 10 tile, and 14 rows of a row-major A for the
/// 14 × 32 tile.
///
/// # Safety
/// The `N` vectors of `kc` floats from `b` (`cs` apart) exist, `out` holds `N·kc` floats, and the
/// CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack_vectors_p_major<const N: usize>(kc: usize, b: *const f32, cs: isize, out: *mut f32) {
    // SAFETY: loads read p < kc of the N vectors, masked stores write the first N lanes of steps p
    // < kc of `out` (the caller's contract).
    unsafe {
        const { assert!(N <= 16) };
        let full = kc / 16 * 16;
        let mask = first_lanes(N);
        let mut p = 0;
        while p < full {
            let mut r: [__m512; 16] = std::array::from_fn(|j| {
                if j < N {
                    _mm512_loadu_ps(b.offset(j as isize * cs).add(p))
                } else {
                    _mm512_setzero_ps()
                }
            });
            transpose_16x16(&mut r);
            for (q, v) in r.iter().enumerate() {
                _mm512_mask_storeu_ps(out.add((p + q) * N), mask, *v);
            }
            p += 16;
        }
        for p in full..kc {
            for j in 0..N {
                *out.add(p * N + j) = *b.offset(j as isize * cs).add(p);
            }
        }
    }
}

/// In-register transpose of a 16 × 16 block: `r[i][j]` becomes `r[j][i]`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose_16x16(r: &mut [__m512; 16]) {
    // Stage 1: interleave pairs of rows (2 × 2 blocks of scalars).
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Stage 2: 4 × 4 blocks within each 128-bit lane.
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        r[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
        r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
        r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, d);
        r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
    }
    // Stage 3: 128-bit lanes between rows 4 apart.
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(r[i], r[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xDD>(r[i], r[i + 4]);
        t[i + 8] = _mm512_shuffle_f32x4::<0x88>(r[i + 8], r[i + 12]);
        t[i + 12] = _mm512_shuffle_f32x4::<0xDD>(r[i + 8], r[i + 12]);
    }
    // Stage 4: 256-bit halves between rows 8 apart.
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        r[i + 8] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[i + 8]);
    }
}

/// # Safety
/// `a` holds `32·kc` floats, `b` `10·kc`, `out` 320, and the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn avx512_32x10(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
    // SAFETY: the caller's contract; the stores write the 320 floats of `out`.
    unsafe {
        const NR: usize = Avx512::NR;
        let (lo, hi) = accumulate_32x10(kc, a, b);
        for j in 0..NR {
            _mm512_storeu_ps(out.add(j * 32), lo[j]);
            _mm512_storeu_ps(out.add(j * 32 + 16), hi[j]);
        }
    }
}

/// The 14 × 32 tile with vectors along n (rows of C).
pub(crate) struct Avx512Wide;

impl MicroKernel for Avx512Wide {
    const MR: usize = 14;
    const NR: usize = 32;
    const KC: usize = KC;
    const MC: usize = MC;
    const NC: usize = NC;

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe { avx512_14x32(kc, a, b, out) }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn pack_a_row_major(kc: usize, a: *const f32, rs: isize, out: *mut f32) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            pack_vectors_p_major::<{ Avx512Wide::MR }>(kc, a, rs, out);
            true
        }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn pack_b_col_major(kc: usize, b: *const f32, cs: isize, out: *mut f32) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            pack_32_vectors_p_major(kc, b, cs, out);
            true
        }
    }

    /// # Safety
    /// As the trait's method (see [`MicroKernel`]).
    #[inline]
    unsafe fn run_into_row_major(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rs: isize,
        alpha: f32,
        beta: f32,
        rows: usize,
        cols: usize,
    ) -> bool {
        // SAFETY: the caller upholds the trait method's contract, which is the kernel function's.
        unsafe {
            avx512_14x32_into_row_major(kc, a, b, c, rs, alpha, beta, rows, cols);
            true
        }
    }
}

/// The 14 × 32 register tile: `left[i]` holds columns 0..16 of row i, `right[i]` 16..32.
/// A (14 values a step, 56 bytes) streams from L2: fetched 16 steps ahead.
///
/// # Safety
/// `a` holds `14·kc` floats, `b` `32·kc`, and the CPU supports AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn accumulate_14x32(kc: usize, a: *const f32, b: *const f32) -> ([__m512; 14], [__m512; 14]) {
    // SAFETY: as the caller's contract, which is `accumulate_32_by`'s for N = 14.
    unsafe { accumulate_32_by::<{ Avx512Wide::MR }>(kc, b, a, Streamed::Scalars, 16) }
}

/// The 14 × 32 kernel merged into 14 rows of a row-major C, two full vectors a row.
///
/// # Safety
/// As [`MicroKernel::run_into_row_major`]: `a` holds `14·kc` floats, `b` `32·kc`, the `rows × cols`
/// elements of C from `c` (rows `rs` apart) exist and are writable, and the CPU supports AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_14x32_into_row_major(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rs: isize,
    alpha: f32,
    beta: f32,
    rows: usize,
    cols: usize,
) {
    // SAFETY: the accumulations read the slivers within kc steps; each merge touches row i < rows
    // of C in its first cols lanes only (masked; the second vector only when cols > 16), which
    // exist (the caller's contract).
    unsafe {
        const MR: usize = Avx512Wide::MR;
        if cols <= 16 {
            // The last sliver of a C whose width is a multiple of 32 plus at most 16 (129, 199):
            // one vector a row instead of two.
            let left = accumulate_16_by::<MR>(kc, b, a, 16);
            let mask = first_lanes(cols);
            for (i, &v) in left.iter().enumerate().take(rows.min(MR)) {
                merge_vector(c.offset(i as isize * rs), mask, alpha, beta, v);
            }
            return;
        }
        let (left, right) = accumulate_14x32(kc, a, b);
        if rows == MR && cols == 32 {
            // A whole tile (nearly all of them): the loop unrolled, no masks.
            for i in 0..MR {
                let row = c.offset(i as isize * rs);
                merge_vector(row, 0xffff, alpha, beta, left[i]);
                merge_vector(row.add(16), 0xffff, alpha, beta, right[i]);
            }
            return;
        }
        let (left_mask, right_mask) = (first_lanes(cols), first_lanes(cols.saturating_sub(16)));
        for i in 0..rows.min(MR) {
            let row = c.offset(i as isize * rs);
            merge_vector(row, left_mask, alpha, beta, left[i]);
            if right_mask != 0 {
                merge_vector(row.add(16), right_mask, alpha, beta, right[i]);
            }
        }
    }
}

/// The 14 × 32 kernel into the column-major tile `out[j·14 + i]` (for edge tiles).
///
/// # Safety
/// `a` holds `14·kc` floats, `b` `32·kc`, `out` 448, and the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn avx512_14x32(kc: usize, a: *const f32, b: *const f32, out: *mut f32) {
    // SAFETY: the caller's contract; the stores write the local rows and the 448 floats of `out`.
    unsafe {
        const MR: usize = Avx512Wide::MR;
        let (left, right) = accumulate_14x32(kc, a, b);
        let mut rows = [0.0f32; MR * 32];
        for i in 0..MR {
            _mm512_storeu_ps(rows.as_mut_ptr().add(i * 32), left[i]);
            _mm512_storeu_ps(rows.as_mut_ptr().add(i * 32 + 16), right[i]);
        }
        for i in 0..MR {
            for j in 0..32 {
                *out.add(j * MR + i) = rows[i * 32 + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_16x16_transposes() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: no AVX-512 on this CPU");
            return;
        }
        let input: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let mut out = vec![0.0f32; 256];
        // SAFETY: AVX-512F is present; the buffers hold 256 floats.
        unsafe {
            use std::arch::x86_64::*;
            let mut r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(input.as_ptr().add(16 * i)));
            super::transpose_16x16(&mut r);
            for (i, v) in r.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * i), *v);
            }
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(out[16 * i + j], input[16 * j + i], "({i}, {j})");
            }
        }
    }
}
