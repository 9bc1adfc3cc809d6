//! The BLIS loop nest around the micro-kernels, and the execution of a plan (`plan.rs`): its
//! split of C over threads, and its path on each block. NC, KC, MC, MR and NR belong to each
//! kernel (`kernel/*.rs`).
//!
//! ```text
//! LOOP 5  for jc in 0..n step NC          split n into panels of NC columns
//! LOOP 4    for pc in 0..k step KC        split k; pack B[pc.., jc..] (KC × NC) into NR-wide slivers
//! LOOP 3      for ic in 0..m step MC      split m; pack A[ic.., pc..] (MC × KC) into MR-tall slivers
//! LOOP 2        for jr in 0..NC step NR   one B sliver (stays in L1 across LOOP 1)
//! LOOP 1          for ir in 0..MC step MR one A sliver → micro-kernel → MR × NR tile of C
//! ```
//!
//! Determinism: an element of C is always computed by the same sequence of operations (the same
//! KC blocks in the same order, the same micro-kernel step by step, the same merge into C),
//! whichever tile, task or thread computes it. The parallel split only decides *who* computes a
//! block of C, never *how*, so the result is bit-identical for every thread count.

use std::cell::RefCell;

use crate::direct;
use crate::kernel::{Avx2Fma, Avx512, Avx512Wide, MicroKernel, Portable};
use crate::plan::{Axis, Layout, Path, Plan, Split, Tile};

/// The depth of each LOOP 4 panel for a product of depth k and a kernel's KC: k cut into
/// `ceil(k / KC)` equal panels (rounded up to a multiple of 16), so that no short last panel
/// pays for a whole merge into C (784 = 272 + 272 + 240, not 384 + 384 + 16). Depends on k and
/// KC alone, so every element of C sums the same panels whichever tile or thread computes it.
pub fn panel_depth(k: usize, kc: usize) -> usize {
    let panels = k.div_ceil(kc).max(1);
    k.div_ceil(panels).next_multiple_of(16).clamp(1, k.max(1))
}

/// Room for the largest micro-kernel tile (AVX-512: 14 × 32).
const MAX_TILE: usize = 448;

/// A strided matrix: element (i, j) is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided<P> {
    pub ptr: P,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

pub(crate) type MatRef = Strided<*const f32>;
pub(crate) type MatMut = Strided<*mut f32>;

// SAFETY: the driver hands disjoint blocks of C to different tasks and only reads A and B.
unsafe impl<P> Send for Strided<P> {}
// SAFETY: as for `Send`: shared descriptions are only read through, or written in disjoint blocks.
unsafe impl<P> Sync for Strided<P> {}

impl<P: Copy> Strided<P> {
    /// Its strides, as the plan sees them.
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// The same elements seen as the transposed matrix (no copy: rows and strides swapped).
    pub(crate) fn transposed(self) -> Self {
        Strided {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The sub-matrix starting at (i, j) with the given size.
    fn block(self, i: usize, j: usize, rows: usize, cols: usize, offset: impl Fn(P, isize) -> P) -> Self {
        Strided {
            ptr: offset(self.ptr, i as isize * self.rs + j as isize * self.cs),
            rows,
            cols,
            ..self
        }
    }
}

impl MatRef {
    pub(crate) fn sub(self, i: usize, j: usize, rows: usize, cols: usize) -> Self {
        self.block(i, j, rows, cols, |p, o| p.wrapping_offset(o))
    }
    /// # Safety
    /// (i, j) is inside the matrix (i < rows, j < cols) and the matrix's elements are readable.
    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> f32 {
        // SAFETY: (i, j) is inside the matrix (the caller's contract), so the offset stays inside
        // its allocation and the element is initialized.
        unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

impl MatMut {
    pub(crate) fn sub(self, i: usize, j: usize, rows: usize, cols: usize) -> Self {
        self.block(i, j, rows, cols, |p, o| p.wrapping_offset(o))
    }
}

thread_local! {
    /// Packing buffers of this thread (A block, B panel), grown once and then reused.
    static PACK_BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C ← α·A·B + β·C` as `plan` says (made by [`crate::plan::plan`] for these operands).
/// β = 0 overwrites C (whatever it held, NaN included).
pub(crate) fn execute(plan: Plan, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
    match plan.path {
        Path::Packed { tile, kc } => {
            let nest = match tile {
                Tile::Avx512Tall => loop_nest::<Avx512>,
                Tile::Avx512Wide => loop_nest::<Avx512Wide>,
                Tile::Avx2Fma => loop_nest::<Avx2Fma>,
                Tile::Portable => loop_nest::<Portable>,
            };
            split_blocks(plan.split, a, b, c, &|a, b, c| nest(kc, alpha, a, b, beta, c))
        }
        path => split_blocks(plan.split, a, b, c, &|a, b, c| direct::run(path, alpha, a, b, beta, c)),
    }
}

/// Runs `block` on the whole product, or on each of the plan's fixed blocks of C, each in a
/// rayon task.
///
/// The calling thread computes the first block itself and the other workers take the rest,
/// the order in which rayon's `join` and parallel iterators hand out halves (the caller keeps
/// the first). So the optimizer's split update of a weight and the products that write its
/// gradient or read it put the same half on the same core, and the half stays in that core's
/// cache from step to step. With every block spawned, the other worker took the first half
/// of a product and the caller the first half of the update: each step moved the 800 KB
/// weight and gradient of a 784-256-10 network between the cores (batch 64, two threads of
/// an Intel Xeon: 0.307-0.309 -> 0.218-0.238 s an epoch).
fn split_blocks(split: Split, a: MatRef, b: MatRef, c: MatMut, block: &(dyn Fn(MatRef, MatRef, MatMut) + Sync)) {
    let Split::Blocks { along, step, .. } = split else {
        return block(a, b, c);
    };
    let (m, n, k) = (c.rows, c.cols, a.cols);
    let len = match along {
        Axis::M => m,
        Axis::N => n,
    };
    let run_part = move |start: usize| {
        let size = step.min(len - start);
        match along {
            Axis::M => block(a.sub(start, 0, size, k), b, c.sub(start, 0, size, n)),
            Axis::N => block(a, b.sub(0, start, k, size), c.sub(0, start, m, size)),
        }
    };
    rayon::scope(|s| {
        for start in (step..len).step_by(step) {
            s.spawn(move |_| run_part(start));
        }
        run_part(0);
    });
}

/// `len` floats of `buffer` (grown if needed) starting on a 64-byte boundary. A packed step of
/// 16 or 32 values is then one or two whole cache lines: no vector load of it straddles two
/// lines, as it would in an allocation that is only 16-byte aligned (the allocator's
/// guarantee; large allocations sit 16 bytes past a page boundary).
pub(crate) fn line_aligned(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const LINE_FLOATS: usize = 64 / std::mem::size_of::<f32>();
    if buffer.len() < len + LINE_FLOATS {
        buffer.resize(len + LINE_FLOATS, 0.0);
    }
    // `align_offset` may in principle decline (usize::MAX): then unaligned, which is only slower.
    let offset = buffer.as_ptr().align_offset(64).min(LINE_FLOATS);
    &mut buffer[offset..offset + len]
}

/// The five loops on one thread, with panels of `kc_step` steps of k (the plan's
/// [`panel_depth`]).
fn loop_nest<K: MicroKernel>(kc_step: usize, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        return scale(beta, c);
    }
    PACK_BUFFERS.with(|buffers| {
        let (a_buffer, b_buffer) = &mut *buffers.borrow_mut();
        // MC and NC rounded down to whole slivers, so that only the last block of each loop
        // has a partial tile.
        let (mc_step, nc_step) = (K::MC / K::MR * K::MR, K::NC / K::NR * K::NR);
        debug_assert_eq!(kc_step, panel_depth(k, K::KC));
        let a_pack = line_aligned(a_buffer, mc_step * kc_step);
        let b_pack = line_aligned(b_buffer, nc_step.min(n).div_ceil(K::NR) * K::NR * kc_step);
        // The micro-kernel's output tile lives on the stack (no allocation per call).
        let mut tile = [0.0f32; MAX_TILE];
        debug_assert!(K::MR * K::NR <= MAX_TILE);
        // LOOP 5: split n into panels of NC columns.
        for jc in (0..n).step_by(nc_step) {
            let nc = nc_step.min(n - jc);
            // LOOP 4: split k into panels of depth kc_step; pack the B panel once per (jc, pc).
            for pc in (0..k).step_by(kc_step) {
                let kc = kc_step.min(k - pc);
                pack_b::<K>(b.sub(pc, jc, kc, nc), b_pack);
                // β applies once, on the first pass over k; later passes accumulate (β = 1).
                let merge_beta = if pc == 0 { beta } else { 1.0 };
                // LOOP 3: split m into blocks of MC rows; pack the A block.
                for ic in (0..m).step_by(mc_step) {
                    let mc = mc_step.min(m - ic);
                    pack_a::<K>(a.sub(ic, pc, mc, kc), a_pack);
                    // LOOP 2: one NR-wide B sliver at a time.
                    for jr in (0..nc).step_by(K::NR) {
                        let nr = K::NR.min(nc - jr);
                        let b_sliver = b_pack[jr * kc..].as_ptr();
                        // LOOP 1: one MR-tall A sliver at a time → the micro-kernel.
                        for ir in (0..mc).step_by(K::MR) {
                            let mr = K::MR.min(mc - ir);
                            let a_sliver = a_pack[ir * kc..].as_ptr();
                            let c_tile = c.sub(ic + ir, jc + jr, mr, nr);
                            // SAFETY: the slivers hold kc·MR and kc·NR floats (zero-padded),
                            // the plan only picks kernels this CPU supports (`Cpu::detect`),
                            // and c_tile is a block of C.
                            unsafe {
                                // Edge tiles too: the kernel merges their first mr × nr
                                // with masks instead of the scalar merge (199³ on an Intel
                                // Xeon, one thread, best of four: 143 -> 155 GFLOP/s).
                                let merged = c.cs == 1
                                    && K::run_into_row_major(
                                        kc, a_sliver, b_sliver, c_tile.ptr, c.rs, alpha, merge_beta, mr, nr,
                                    );
                                if !merged {
                                    K::run(kc, a_sliver, b_sliver, tile.as_mut_ptr());
                                    merge_tile(&tile, K::MR, alpha, merge_beta, c_tile);
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Merges the column-major tile `t` (leading dimension `ld`) into the `c.rows × c.cols` block:
/// `C ← β·C + α·T`, or `C ← α·T` when β = 0 (whatever C held). Later passes over k use β = 1,
/// which is exactly `C + α·T`.
///
/// # Safety
/// `c` must address valid, writable elements.
#[inline]
unsafe fn merge_tile(t: &[f32], ld: usize, alpha: f32, beta: f32, c: MatMut) {
    // SAFETY: the caller guarantees every element of `c` is valid and writable; no other reference
    // to them is live.
    unsafe {
        let update = |ci: *mut f32, v: f32| {
            *ci = if beta == 0.0 { alpha * v } else { beta * *ci + alpha * v };
        };
        if c.cs == 1 && c.rs != 1 {
            // Row-major C: walk each row of C contiguously.
            for i in 0..c.rows {
                let row = c.ptr.offset(i as isize * c.rs);
                for j in 0..c.cols {
                    update(row.add(j), t[j * ld + i]);
                }
            }
        } else {
            for j in 0..c.cols {
                let col = c.ptr.offset(j as isize * c.cs);
                for i in 0..c.rows {
                    update(col.offset(i as isize * c.rs), t[j * ld + i]);
                }
            }
        }
    }
}

/// `C ← β·C` (β = 0 writes zeros).
fn scale(beta: f32, c: MatMut) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            // SAFETY: (i, j) is inside C.
            unsafe {
                let p = c.ptr.offset(i as isize * c.rs + j as isize * c.cs);
                *p = if beta == 0.0 { 0.0 } else { beta * *p };
            }
        }
    }
}

/// Packs the `mc × kc` block of A into MR-tall slivers: sliver s holds, for each p, the MR
/// values `A[s·MR .. s·MR+MR, p]`, zero-padded past the last row.
fn pack_a<K: MicroKernel>(a: MatRef, out: &mut [f32]) {
    let (mc, kc) = (a.rows, a.cols);
    for (s, i0) in (0..mc).step_by(K::MR).enumerate() {
        let mr = K::MR.min(mc - i0);
        let sliver = &mut out[s * K::MR * kc..(s + 1) * K::MR * kc];
        if a.cs == 1
            && mr == K::MR
            // SAFETY: a full sliver of a row-major A: MR rows of kc floats from (i0, 0), `out`
            // holds MR·kc floats from the sliver's start, and the plan only picks kernels that
            // this CPU supports.
            && unsafe { K::pack_a_row_major(kc, a.ptr.offset(i0 as isize * a.rs), a.rs, sliver.as_mut_ptr()) }
        {
            continue;
        }
        if a.rs == 1 && mr == K::MR {
            // Column-major A (e.g. the transposed view Xᵀ): each step is a contiguous copy.
            for p in 0..kc {
                // SAFETY: rows i0..i0+MR of column p exist.
                let src = unsafe { std::slice::from_raw_parts(a.ptr.offset(i0 as isize + p as isize * a.cs), K::MR) };
                sliver[p * K::MR..(p + 1) * K::MR].copy_from_slice(src);
            }
        } else {
            for i in 0..K::MR {
                if i < mr {
                    for p in 0..kc {
                        // SAFETY: (i0 + i, p) is inside A.
                        sliver[p * K::MR + i] = unsafe { a.at(i0 + i, p) };
                    }
                } else {
                    for p in 0..kc {
                        sliver[p * K::MR + i] = 0.0;
                    }
                }
            }
        }
    }
}

/// Packs the `kc × nc` panel of B into NR-wide slivers: sliver t holds, for each p, the NR
/// values `B[p, t·NR .. t·NR+NR]`, zero-padded past the last column.
fn pack_b<K: MicroKernel>(b: MatRef, out: &mut [f32]) {
    let (kc, nc) = (b.rows, b.cols);
    let full = nc / K::NR;
    if b.cs == 1 && full > 0 {
        // Row-major B, PACK_B_ROWS rows at a time: within a group the rows are read front to
        // back and each sliver gets PACK_B_ROWS·NR contiguous values. (Sliver by sliver over
        // all kc rows jumps a whole row of B at every step; row by row over all slivers
        // scatters each row's writes over every sliver.)
        const PACK_B_ROWS: usize = 16;
        for p0 in (0..kc).step_by(PACK_B_ROWS) {
            let rows = PACK_B_ROWS.min(kc - p0);
            for t in 0..full {
                for p in p0..p0 + rows {
                    // SAFETY: row p of the panel has nc ≥ full·NR values.
                    let src = unsafe {
                        std::slice::from_raw_parts(b.ptr.offset(p as isize * b.rs + (t * K::NR) as isize), K::NR)
                    };
                    let at = t * K::NR * kc + p * K::NR;
                    out[at..at + K::NR].copy_from_slice(src);
                }
            }
        }
    }
    let first = if b.cs == 1 { full } else { 0 };
    for (t, j0) in (0..nc).step_by(K::NR).enumerate().skip(first) {
        let nr = K::NR.min(nc - j0);
        let sliver = &mut out[t * K::NR * kc..(t + 1) * K::NR * kc];
        // Column-major B (the transposed view Wᵀ): the kernel's own transposing pack.
        if b.rs == 1
            && nr == K::NR
            // SAFETY: a full sliver: NR columns of kc floats from (0, j0), `out` holds NR·kc
            // floats from the sliver's start, and the kernel runs on this CPU (as above).
            && unsafe { K::pack_b_col_major(kc, b.ptr.offset(j0 as isize * b.cs), b.cs, sliver.as_mut_ptr()) }
        {
            continue;
        }
        // Any other layout, and the last, partial sliver: element by element, zero-padded.
        for p in 0..kc {
            let dst = &mut sliver[p * K::NR..(p + 1) * K::NR];
            for (j, d) in dst.iter_mut().enumerate() {
                // SAFETY: (p, j0 + j) is inside B when j < nr.
                *d = if j < nr { unsafe { b.at(p, j0 + j) } } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_aligned;

    #[test]
    fn line_aligned_slices_start_on_a_cache_line_and_have_the_asked_length() {
        let mut buffer = Vec::new();
        for len in [0, 1, 15, 16, 17, 1000, 100_000, 10] {
            let slice = line_aligned(&mut buffer, len);
            assert_eq!(slice.len(), len);
            assert_eq!(slice.as_ptr() as usize % 64, 0, "len {len}");
        }
        // A buffer that starts off a line boundary is used from its first boundary on.
        let mut offset = vec![0.0f32; 40];
        let start = offset.as_ptr() as usize;
        let slice = line_aligned(&mut offset, 20);
        assert_eq!(slice.as_ptr() as usize % 64, 0);
        assert!(slice.as_ptr() as usize - start < 64);
    }
}
