//! Unpacked AVX-512 paths for the skinny products of a small network, where packing would cost
//! as much as the arithmetic (a 64 × 784 batch is copied in the time it takes to multiply it
//! by a 784 × 50 weight).
//!
//! - **dot** (`A` rows and `B` columns contiguous along k): each element of C is a dot product
//!   of two contiguous vectors. A 4 × 4 block of C keeps 16 vector accumulators of partial sums
//!   along k, reduced horizontally at the end. Used for the rows path's last few columns (below).
//!   It used to take `x·Wᵀ` with a short x and a narrow W (64 × 784 × 50) too; the packed
//!   32 × 10 tile does that faster (see `plan.rs`).
//! - **rows** (`B` and `C` rows contiguous, as in `gᵀ·x` and `g·W`): vectors run along n; each
//!   step p broadcasts `A[i, p]` for 6-24 rows (24-27 accumulators, by the tile's width) and
//!   multiplies a slice of at most 64 columns of `B[p, :]`, read in place. `C` is updated with
//!   full-width loads and stores (masked at the right edge). When A
//!   is column-major (`gᵀ·x`), k runs in panels of `ROWS_KC` steps so that B's panel is read
//!   from L1 by every tile of rows (50 × 1024 × 784: 111–121 → 131–135 GFLOP/s on one thread
//!   of the Intel Xeon); a row-major A (x) streams better whole, so it is not split. A
//!   remainder of at most 8 columns past n's last whole vector (2 for n = 50) is computed
//!   apart instead of filling 2 of 16 lanes at every step: as dot products when A's rows are
//!   contiguous, with vectors along m when its columns are.
//! - **transposed rows** (`x·Wᵀ` with a short x): `Wᵀ` is first transposed into a row-major
//!   buffer (16 × 16 blocks in registers), then the rows path runs on it. The transpose costs a
//!   pass over W; the rows path then runs at the kernel's full rate, where the dot path spends
//!   its time reducing and reloading.
//! - **swapped rows** (`x·Wᵀ` with x shorter than W, as 64 × 784 · 784 × 256): the same
//!   product as `Cᵀ = W·xᵀ`. W is row-major as it is stored; x (4× smaller here) is
//!   transposed instead, the rows path writes Cᵀ into a buffer, and Cᵀ is transposed into C
//!   (a 784-256-10 epoch at batch 64 on one thread of an Intel Xeon: 0.46-0.48 → 0.39-0.40 s).
//!
//! Every element is computed by the same operations wherever its block falls, so the split over
//! threads does not change a bit. Used only when AVX-512F is present; other CPUs use the
//! packed path. Which path a product takes, its blocking (`Rows`: the k panel and the tail of
//! columns) and its split over threads are the plan's (`plan.rs`); this file carries them out.

use crate::gemm::{MatMut, MatRef};
use crate::plan::{Path, Rows, Tail};

/// Rows of C per block of the dot path (the inner loop over i).
const DOT_MR: usize = 4;
/// Columns of C per block of the dot path (the outer loop over j).
const DOT_NR: usize = 4;
/// Rows of C per tile of the rows path where it is 4 vectors wide (see [`rows_per_tile`]);
/// the plan splits C along m in whole multiples of it.
pub(crate) const ROWS_MR: usize = 6;
/// Columns of C per tile of the rows path (4 vectors): the loop over n steps by it.
pub(crate) const ROWS_NR: usize = 64;
/// Rows of C per tile of the rows path for tiles `vectors` vectors wide: 24-27 accumulators
/// whatever the width (n = 50 has 3 whole vectors: 9 rows, not 6 rows and 18 accumulators).
/// Each element is the same chain of FMAs along k in any tile, so this changes no bit.
fn rows_per_tile(vectors: usize) -> usize {
    match vectors {
        4 => 6,
        3 => 9,
        2 => 14,
        _ => 24,
    }
}
/// Steps of k per panel of the rows path: a panel of B (ROWS_KC × ROWS_NR floats) stays in L1
/// while every tile of rows reads it.
pub(crate) const ROWS_KC: usize = 96;
/// The rows path computes the last `n mod 16` columns as dot products when there are at most
/// this many (and A's rows are contiguous).
pub(crate) const ROWS_DOT_TAIL: usize = 8;
/// Rows of A per pass of the rows path when it has a dot-product tail (96 rows of 784 floats:
/// 300 KiB, in L2).
const ROWS_TAIL_BLOCK: usize = 96;

/// Runs the unpacked `path` (of a plan) on the whole block `c` on this thread. The plan
/// chooses these paths only for CPUs with AVX-512F.
pub(crate) fn run(path: Path, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
    assert!(crate::kernel::Cpu::detect().avx512f, "the unpacked paths need AVX-512F");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (checked above); the views are valid.
    unsafe {
        match path {
            Path::Rows(rows) => x86::rows_path(rows, alpha, a, b, beta, c),
            Path::TransposedRows(rows) => x86::transposed_rows_path(rows, alpha, a, b, beta, c),
            Path::SwappedRows(rows) => x86::swapped_rows_path(rows, alpha, a, b, beta, c),
            Path::Packed { .. } => unreachable!("the packed path is run by `gemm::execute`"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (path, alpha, a, b, beta, c);
        unreachable!("direct paths are chosen only on x86-64 with AVX-512F");
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // Register tiles read best as indexed loops.
mod x86 {
    use super::*;
    use crate::kernel::{first_lanes, merge_vector};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn merge(c: *mut f32, alpha: f32, beta: f32, v: f32) {
        // SAFETY: the caller passes a valid element of C.
        unsafe { *c = if beta == 0.0 { alpha * v } else { beta * *c + alpha * v } }
    }

    // ---- dot path -------------------------------------------------------------------------

    /// # Safety
    /// `a` (m × k, rows contiguous), `b` (k × n, columns contiguous) and `c` (m × n, writable)
    /// describe valid matrices, and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_path(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: the caller's contract; each tile is inside C.
        unsafe {
            let (m, n) = (c.rows, c.cols);
            // B (the weight W, up to 4 MiB) outside, A (at most `ROWS_TAIL_BLOCK` rows, which stay
            // in L2)
            // inside: each row of W is read from memory once per product, where the other order
            // read all of W once per DOT_MR rows and W plus x overflowed L2 in training.
            for j0 in (0..n).step_by(DOT_NR) {
                let nr = DOT_NR.min(n - j0);
                for i0 in (0..m).step_by(DOT_MR) {
                    let mr = DOT_MR.min(m - i0);
                    macro_rules! tile {
                    ($($mr:literal, $nr:literal);*) => {
                        match (mr, nr) {
                            $(($mr, $nr) => dot_tile::<$mr, $nr>(alpha, a, b, beta, c, i0, j0),)*
                            _ => unreachable!(),
                        }
                    };
                }
                    tile!(4,4; 4,3; 4,2; 4,1; 3,4; 3,3; 3,2; 3,1; 2,4; 2,3; 2,2; 2,1; 1,4; 1,3; 1,2; 1,1);
                }
            }
        }
    }

    /// `C[i0.., j0..] (MR × NR) = α·A[i0.., :]·B[:, j0..] + β·C`, both operands contiguous along k.
    ///
    /// # Safety
    /// As [`dot_path`], and the MR × NR block of C at (i0, j0) is inside C.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_tile<const MR: usize, const NR: usize>(
        alpha: f32,
        a: MatRef,
        b: MatRef,
        beta: f32,
        c: MatMut,
        i0: usize,
        j0: usize,
    ) {
        // SAFETY: rows i0.. of A and columns j0.. of B exist (the caller's contract); loads read p
        // < k of each (the last masked), the merges write the block of C.
        unsafe {
            let k = a.cols;
            let a_rows: [*const f32; MR] = std::array::from_fn(|r| a.ptr.offset((i0 + r) as isize * a.rs));
            let b_cols: [*const f32; NR] = std::array::from_fn(|s| b.ptr.offset((j0 + s) as isize * b.cs));
            let mut acc = [[_mm512_setzero_ps(); NR]; MR];
            let full = k / 16 * 16;
            let mut p = 0;
            while p < full {
                let bv: [__m512; NR] = std::array::from_fn(|s| _mm512_loadu_ps(b_cols[s].add(p)));
                for r in 0..MR {
                    let av = _mm512_loadu_ps(a_rows[r].add(p));
                    for s in 0..NR {
                        acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
                    }
                }
                p += 16;
            }
            if p < k {
                let mask = first_lanes(k - p);
                let bv: [__m512; NR] = std::array::from_fn(|s| _mm512_maskz_loadu_ps(mask, b_cols[s].add(p)));
                for r in 0..MR {
                    let av = _mm512_maskz_loadu_ps(mask, a_rows[r].add(p));
                    for s in 0..NR {
                        acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
                    }
                }
            }
            for r in 0..MR {
                for s in 0..NR {
                    let dst = c.ptr.offset((i0 + r) as isize * c.rs + (j0 + s) as isize * c.cs);
                    merge(dst, alpha, beta, _mm512_reduce_add_ps(acc[r][s]));
                }
            }
        }
    }

    // ---- transposed rows path --------------------------------------------------------------

    std::thread_local! {
        /// This thread's row-major copy of B for the transposed rows path, reused.
        static B_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// `C = α·A·B + β·C` for a column-major B (`b.rs == 1`): B copied row-major, then the rows
    /// path.
    ///
    /// # Safety
    /// `a`, `b` (column-major, `b.rs == 1`) and `c` (writable, row-major) describe valid matrices,
    /// and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transposed_rows_path(rows: Rows, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: the caller's contract; the copy of B is this thread's buffer of k·ld floats,
        // row-major, as `rows_path` needs.
        unsafe {
            let (k, n) = (b.rows, b.cols);
            // Rows padded to whole vectors in a line-aligned buffer, so each row of the copy
            // starts on a cache line.
            let ld = n.div_ceil(16) * 16;
            B_ROWS.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                let buffer = crate::gemm::line_aligned(&mut buffer, k * ld);
                transpose_into(b, buffer.as_mut_ptr(), ld);
                let b_rows = MatRef {
                    ptr: buffer.as_ptr(),
                    rows: k,
                    cols: n,
                    rs: ld as isize,
                    cs: 1,
                };
                rows_path(rows, alpha, a, b_rows, beta, c);
            })
        }
    }

    std::thread_local! {
        /// This thread's row-major Cᵀ for the swapped rows path, reused.
        static C_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// `C = α·A·B + β·C` for a short row-major A and a column-major B (`x·Wᵀ`), computed as
    /// `Cᵀ = Bᵀ·Aᵀ`: Bᵀ (W) is row-major as it is, Aᵀ (xᵀ) is copied row-major, the rows path
    /// writes Cᵀ into a buffer, and Cᵀ is transposed into C. Each element of C is the same
    /// chain of FMAs along k as in [`transposed_rows_path`] (the product `x[i,p]·W[j,p]` is the
    /// same either way round), merged into C by the same [`merge_vector`], so the two paths
    /// give the same bits wherever neither computes a remainder of columns apart (m and n
    /// multiples of 16, or leaving more than `ROWS_DOT_TAIL` past one; tested).
    ///
    /// # Safety
    /// `a` (row-major), `b` (column-major) and `c` (writable, row-major) describe valid matrices,
    /// and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn swapped_rows_path(rows: Rows, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: the caller's contract; xᵀ and Cᵀ are this thread's buffers of k·ld and n·ld
        // floats.
        unsafe {
            let (m, n, k) = (c.rows, c.cols, a.cols);
            let ld = m.div_ceil(16) * 16;
            B_ROWS.with(|x_rows| {
                C_ROWS.with(|c_rows| {
                    let (mut x_rows, mut c_rows) = (x_rows.borrow_mut(), c_rows.borrow_mut());
                    let x_rows = crate::gemm::line_aligned(&mut x_rows, k * ld);
                    let c_rows = crate::gemm::line_aligned(&mut c_rows, n * ld);
                    transpose_into(a.transposed(), x_rows.as_mut_ptr(), ld);
                    let x_rows = MatRef {
                        ptr: x_rows.as_ptr(),
                        rows: k,
                        cols: m,
                        rs: ld as isize,
                        cs: 1,
                    };
                    let c_transposed = MatMut {
                        ptr: c_rows.as_mut_ptr(),
                        rows: n,
                        cols: m,
                        rs: ld as isize,
                        cs: 1,
                    };
                    // α = 1 and β = 0 store each chain's sum as it is (1·v is exact).
                    rows_path(rows, 1.0, b.transposed(), x_rows, 0.0, c_transposed);
                    merge_transposed(alpha, c_rows.as_ptr(), ld, beta, c);
                })
            })
        }
    }

    /// `C ← α·Tᵀ + β·C` for the row-major `c.cols × c.rows` matrix T (rows `ld` apart, each
    /// padded to a whole number of vectors), 16 × 16 blocks at a time through registers.
    ///
    /// # Safety
    /// `t` holds `c.cols` rows of `ld` ≥ `c.rows` rounded up to 16 floats, `c` is a valid writable
    /// matrix, and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn merge_transposed(alpha: f32, t: *const f32, ld: usize, beta: f32, c: MatMut) {
        // SAFETY: loads read rows q < cols of T within their ld floats; each merge writes the first
        // cols columns of a row i + q < m of C (masked).
        unsafe {
            let (m, n) = (c.rows, c.cols);
            for j in (0..n).step_by(16) {
                let cols = 16.min(n - j);
                let mask = first_lanes(cols);
                for i in (0..m).step_by(16) {
                    // Row j + q of T holds C[i.., j + q]; rows past n are not read.
                    let mut r: [__m512; 16] = std::array::from_fn(|q| {
                        if q < cols {
                            _mm512_loadu_ps(t.add((j + q) * ld + i))
                        } else {
                            _mm512_setzero_ps()
                        }
                    });
                    crate::kernel::transpose_16x16(&mut r);
                    for (q, v) in r.iter().enumerate().take(16.min(m - i)) {
                        merge_vector(c.ptr.offset((i + q) as isize * c.rs).add(j), mask, alpha, beta, *v);
                    }
                }
            }
        }
    }

    /// Writes the column-major `b` (`b.rs == 1`) row-major into `out` (rows `ld` apart).
    ///
    /// # Safety
    /// `b` is a valid column-major matrix (`b.rs == 1`), `out` holds `b.rows` rows of `ld` ≥
    /// `b.cols` floats, and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_into(b: MatRef, out: *mut f32, ld: usize) {
        // SAFETY: loads read p < k of columns j < n of B; stores write rows p < k of `out` within
        // its first n floats.
        unsafe {
            let (k, n) = (b.rows, b.cols);
            let (k16, n16) = (k / 16 * 16, n / 16 * 16);
            for j in (0..n16).step_by(16) {
                // Column j + t of B is contiguous: k values from b.ptr + (j + t)·cs.
                let cols: [*const f32; 16] = std::array::from_fn(|t| b.ptr.offset((j + t) as isize * b.cs));
                for p in (0..k16).step_by(16) {
                    let mut r: [__m512; 16] = std::array::from_fn(|t| _mm512_loadu_ps(cols[t].add(p)));
                    crate::kernel::transpose_16x16(&mut r);
                    for (q, v) in r.iter().enumerate() {
                        _mm512_storeu_ps(out.add((p + q) * ld + j), *v);
                    }
                }
                for p in k16..k {
                    for t in 0..16 {
                        *out.add(p * ld + j + t) = *cols[t].add(p);
                    }
                }
            }
            for j in n16..n {
                let col = b.ptr.offset(j as isize * b.cs);
                for p in 0..k {
                    *out.add(p * ld + j) = *col.add(p);
                }
            }
        }
    }

    // ---- rows path ------------------------------------------------------------------------

    std::thread_local! {
        /// This thread's column-major copy of the last few columns of B for the rows path.
        static B_TAIL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The rows path, with the plan's blocking `rows`. When n leaves a short remainder past
    /// its last whole vector (n = 50: 2 columns, which would fill 2 of 16 lanes at every step
    /// of k), the plan may have those columns computed apart: as dot products along k when A's
    /// rows are contiguous (the dot path, on a column-major copy of them), with vectors along m
    /// when A's columns are. The remainder is the columns past the last multiple of 16 of the
    /// whole matrix whatever the split over threads (blocks start at multiples of 16, so only
    /// the last block has one), so each element is computed the same way for any thread count.
    ///
    /// # Safety
    /// `a`, `b` (rows contiguous) and `c` (writable, rows contiguous) describe valid matrices,
    /// `blocking` is the plan's for this A and C, and the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_path(blocking: Rows, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: the caller's contract; the tail copy of B is this thread's buffer, and every
        // block passed on is inside A, B and C.
        unsafe {
            let (m, n, k) = (c.rows, c.cols, a.cols);
            let tail = n % 16;
            // Whether A's rows are contiguous (dot products) or its columns (vectors along m).
            let rows_contiguous = match blocking.tail {
                Tail::Dot(_) if tail > 0 => true,
                Tail::AlongM(_) if tail > 0 => false,
                _ => return rows_vectors(blocking.k_panel, alpha, a, b, beta, c),
            };
            debug_assert!(matches!(blocking.tail, Tail::Dot(cols) | Tail::AlongM(cols) if cols == tail));
            let main = n - tail;
            B_TAIL.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                buffer.clear();
                if rows_contiguous {
                    for j in main..n {
                        buffer.extend((0..k).map(|p| *b.ptr.offset(p as isize * b.rs + j as isize * b.cs)));
                    }
                }
                let b_tail = MatRef {
                    ptr: buffer.as_ptr(),
                    rows: k,
                    cols: tail,
                    rs: 1,
                    cs: k as isize,
                };
                // Both parts a block of rows at a time, so that those rows of A are still in cache
                // when the remainder reads them again.
                for i0 in (0..m).step_by(ROWS_TAIL_BLOCK) {
                    let rows = ROWS_TAIL_BLOCK.min(m - i0);
                    let a_rows = a.sub(i0, 0, rows, k);
                    rows_vectors(
                        blocking.k_panel,
                        alpha,
                        a_rows,
                        b.sub(0, 0, k, main),
                        beta,
                        c.sub(i0, 0, rows, main),
                    );
                    let c_tail = c.sub(i0, main, rows, tail);
                    if rows_contiguous {
                        dot_path(alpha, a_rows, b_tail, beta, c_tail);
                    } else {
                        let b_cols = b.sub(0, main, k, tail);
                        macro_rules! column_tail {
                        ($($t:literal)*) => {
                            match tail {
                                $($t => column_tail::<$t>(alpha, a_rows, b_cols, beta, c_tail),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                        column_tail!(1 2 3 4 5 6 7 8);
                    }
                }
            })
        }
    }

    /// `C (m × T) = α·A·B + β·C` for a column-major A (`a.rs == 1`): 32 rows of C at a time in
    /// two vectors along m (masked at the bottom), one broadcast of `B[p, j]` per column and step.
    ///
    /// # Safety
    /// `a` (column-major), `b` (k × T) and `c` (writable, m × T) describe valid matrices, and the
    /// CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn column_tail<const T: usize>(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: loads read rows i0.. < m of each column of A (masked; the second vector's address
        // is formed with wrapping arithmetic), elements of B and C inside them.
        unsafe {
            let (m, k) = (c.rows, a.cols);
            for i0 in (0..m).step_by(32) {
                let rows = 32.min(m - i0);
                let (mask0, mask1) = (first_lanes(rows), first_lanes(rows.saturating_sub(16)));
                let mut lo = [_mm512_setzero_ps(); T];
                let mut hi = [_mm512_setzero_ps(); T];
                for p in 0..k {
                    let column = a.ptr.offset(p as isize * a.cs).add(i0);
                    let a_lo = _mm512_maskz_loadu_ps(mask0, column);
                    // With 16 rows or fewer, mask1 is empty and column + 16 may lie past A:
                    // formed with wrapping arithmetic, and no lane is read.
                    let a_hi = _mm512_maskz_loadu_ps(mask1, column.wrapping_add(16));
                    for j in 0..T {
                        let bj = _mm512_set1_ps(*b.ptr.offset(p as isize * b.rs + j as isize * b.cs));
                        lo[j] = _mm512_fmadd_ps(a_lo, bj, lo[j]);
                        hi[j] = _mm512_fmadd_ps(a_hi, bj, hi[j]);
                    }
                }
                let mut values = [0.0f32; 32];
                for j in 0..T {
                    _mm512_storeu_ps(values.as_mut_ptr(), lo[j]);
                    _mm512_storeu_ps(values.as_mut_ptr().add(16), hi[j]);
                    for (r, &v) in values.iter().enumerate().take(rows) {
                        merge(
                            c.ptr.offset((i0 + r) as isize * c.rs + j as isize * c.cs),
                            alpha,
                            beta,
                            v,
                        );
                    }
                }
            }
        }
    }

    /// The rows path's vector loop: 16-lane vectors along n, the last one masked.
    ///
    /// # Safety
    /// `a`, `b` (rows contiguous) and `c` (writable, rows contiguous) describe valid matrices, and
    /// the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_vectors(k_panel: usize, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
        // SAFETY: every tile passed on is inside A, B and C.
        unsafe {
            let (m, n, k) = (c.rows, c.cols, a.cols);
            for j0 in (0..n).step_by(ROWS_NR) {
                let nc = ROWS_NR.min(n - j0);
                let vectors = nc.div_ceil(16);
                let last_mask = first_lanes(nc - (vectors - 1) * 16);
                // A panel of B (k_panel × 64) is read by every tile of rows from L1; the first
                // panel merges into C with β, the next ones add to it.
                let panel = k_panel;
                let tile_rows = rows_per_tile(vectors);
                for k0 in (0..k).step_by(panel) {
                    let steps = panel.min(k - k0);
                    let beta = if k0 == 0 { beta } else { 1.0 };
                    let (a_panel, b_panel) = (a.sub(0, k0, m, steps), b.sub(k0, 0, steps, n));
                    for i0 in (0..m).step_by(tile_rows) {
                        let mr = tile_rows.min(m - i0);
                        macro_rules! tile {
                        ($($nv:literal: $($mr:literal)*;)*) => {
                            match (mr, vectors) {
                                $($(($mr, $nv) => rows_tile::<$mr, $nv>(alpha, a_panel, b_panel, beta, c, i0, j0, last_mask),)*)*
                                _ => unreachable!(),
                            }
                        };
                    }
                        tile!(
                            4: 6 5 4 3 2 1;
                            3: 9 8 7 6 5 4 3 2 1;
                            2: 14 13 12 11 10 9 8 7 6 5 4 3 2 1;
                            1: 24 23 22 21 20 19 18 17 16 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1;
                        );
                    }
                }
            }
        }
    }

    /// `C[i0.., j0..] (MR × 16·NV) = α·A[i0.., :]·B[:, j0..] + β·C`; the last vector is masked.
    ///
    /// # Safety
    /// As [`rows_vectors`], and the MR × 16·NV block of C at (i0, j0), its last vector masked by
    /// `last_mask`, is inside C.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_tile<const MR: usize, const NV: usize>(
        alpha: f32,
        a: MatRef,
        b: MatRef,
        beta: f32,
        c: MatMut,
        i0: usize,
        j0: usize,
        last_mask: __mmask16,
    ) {
        // SAFETY: rows i0.. of A and the columns j0.. of B and C in the lanes of the masks exist
        // (the caller's contract); the loads and merges of the last vector are masked.
        unsafe {
            let k = a.cols;
            let mask = |v: usize| if v + 1 == NV { last_mask } else { 0xffff };
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            let a_base = a.ptr.offset(i0 as isize * a.rs);
            let b_base = b.ptr.add(j0);
            for p in 0..k {
                let b_row = b_base.offset(p as isize * b.rs);
                let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask(v), b_row.add(16 * v)));
                let a_col = a_base.offset(p as isize * a.cs);
                for r in 0..MR {
                    let av = _mm512_set1_ps(*a_col.offset(r as isize * a.rs));
                    for v in 0..NV {
                        acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..MR {
                let c_row = c.ptr.offset((i0 + r) as isize * c.rs).add(j0);
                for v in 0..NV {
                    merge_vector(c_row.add(16 * v), mask(v), alpha, beta, acc[r][v]);
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::plan::rows_blocking;

    /// A deterministic matrix of values in [-1, 1) with no simple pattern.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = (i ^ seed)
                    .wrapping_mul(0x9E37_79B9)
                    .rotate_left(13)
                    .wrapping_mul(0x85EB_CA6B);
                (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn swapped_and_transposed_rows_paths_give_the_same_bits() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: no AVX-512 on this CPU");
            return;
        }
        for (m, k, n, alpha, beta) in [
            (64, 784, 256, 1.0, 0.0),
            (64, 784, 256, 1.0, 1.0),
            (32, 256, 256, -0.5, 2.0),
            (16, 100, 144, 1.0, 1.0),
            (48, 17, 75, 2.0, 0.0),
            (64, 256, 256, 1.0, 1.0),
            (64, 256, 256, 1.0, 0.0),
            (32, 784, 256, 1.0, 0.0),
            (128, 784, 256, 1.0, 0.0),
        ] {
            let x = values(m * k, 1);
            let w = values(n * k, 2); // stored [n, k]: B = Wᵀ is column-major
            let c0 = values(m * n, 3);
            let a = MatRef {
                ptr: x.as_ptr(),
                rows: m,
                cols: k,
                rs: k as isize,
                cs: 1,
            };
            let b = MatRef {
                ptr: w.as_ptr(),
                rows: k,
                cols: n,
                rs: 1,
                cs: k as isize,
            };
            let transposed = Path::TransposedRows(rows_blocking(a.layout(), k, n));
            let swapped = Path::SwappedRows(rows_blocking(b.transposed().layout(), k, m));
            let run = |path: Path| {
                let mut c = c0.clone();
                let c_view = MatMut {
                    ptr: c.as_mut_ptr(),
                    rows: m,
                    cols: n,
                    rs: n as isize,
                    cs: 1,
                };
                run(path, alpha, a, b, beta, c_view);
                c
            };
            let (transposed, swapped) = (run(transposed), run(swapped));
            for (i, (t, s)) in transposed.iter().zip(&swapped).enumerate() {
                assert_eq!(t.to_bits(), s.to_bits(), "{m}x{k}x{n}: element ({}, {})", i / n, i % n);
            }
        }
    }
}
