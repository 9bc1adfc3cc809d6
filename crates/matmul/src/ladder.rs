//! The ladder from fastai's `01_matmul`: each rung a complete, tested matrix product, so a reader
//! can see what each idea buys. `cargo xtask bench matmul` times every rung.
//!
//! 1. [`naive_ijk`]: the textbook triple loop; the inner loop walks B down a column (strided).
//! 2. [`naive_ikj`]: loops swapped so the inner loop walks rows of B and C contiguously; the
//!    compiler can now vectorize it.
//! 3. [`blocked`]: the i-k-j loop on cache-sized blocks, so a block of B is reused from cache.
//! 4. [`blocked_parallel`]: blocks of rows of C handed to rayon.
//! 5. [`packed`]: the BLIS loop nest with packed panels and a SIMD micro-kernel, one thread.
//! 6. [`crate::matmul`]: the packed kernel, split over threads: the crate's entry point.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Rung 1: `C[i,j] = Σ_k A[i,k]·B[k,j]`, loops i, j, k.
pub fn naive_ijk(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, k, n) = crate::check_shapes(&a, &b);
    let mut c = Array2::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a[[i, p]] * b[[p, j]];
            }
            c[[i, j]] = sum;
        }
    }
    c
}

/// Rung 2: loops i, k, j: `C[i,:] += A[i,k]·B[k,:]`, contiguous in the inner loop.
pub fn naive_ikj(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, k, n) = crate::check_shapes(&a, &b);
    let b = b.as_standard_layout();
    let mut c = Array2::zeros((m, n));
    for i in 0..m {
        let c_row = c.row_mut(i).into_slice().expect("fresh array is contiguous");
        for p in 0..k {
            let a_ip = a[[i, p]];
            let b_row = &b.as_slice().expect("standard layout")[p * n..(p + 1) * n];
            for (cj, bj) in c_row.iter_mut().zip(b_row) {
                *cj += a_ip * bj;
            }
        }
    }
    c
}

/// Block sizes of rungs 3 and 4: a block of B (`BLOCK_K × BLOCK_N` floats, 64 KiB) in L2.
const BLOCK_K: usize = 128;
const BLOCK_N: usize = 128;
const BLOCK_M: usize = 64;

/// Rung 3: i-k-j on blocks of `BLOCK_M × BLOCK_K` (A) and `BLOCK_K × BLOCK_N` (B).
pub fn blocked(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, _, n) = crate::check_shapes(&a, &b);
    let b = b.as_standard_layout();
    let mut c = Array2::zeros((m, n));
    for (block, c_rows) in c.axis_chunks_iter_mut(Axis(0), BLOCK_M).enumerate() {
        blocked_rows(a.slice(ndarray::s![block * BLOCK_M.., ..]), b.view(), c_rows);
    }
    c
}

/// Rung 4: rung 3 with blocks of rows of C on rayon's threads.
pub fn blocked_parallel(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, _, n) = crate::check_shapes(&a, &b);
    let b = b.as_standard_layout();
    let mut c = Array2::zeros((m, n));
    let c_data = c.as_slice_mut().expect("fresh array is contiguous");
    c_data
        .par_chunks_mut(BLOCK_M * n.max(1))
        .enumerate()
        .for_each(|(block, chunk)| {
            let c_rows = ndarray::ArrayViewMut2::from_shape((chunk.len() / n.max(1), n), chunk).expect("whole rows");
            blocked_rows(a.slice(ndarray::s![block * BLOCK_M.., ..]), b.view(), c_rows)
        });
    c
}

/// `C_rows += A[..rows, :]·B` by blocks (B is in standard layout).
fn blocked_rows(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ndarray::ArrayViewMut2<f32>) {
    let (rows, n, k) = (c.nrows(), c.ncols(), b.nrows());
    let b = b.as_slice().expect("standard layout");
    for k0 in (0..k).step_by(BLOCK_K) {
        for j0 in (0..n).step_by(BLOCK_N) {
            let j1 = (j0 + BLOCK_N).min(n);
            for i in 0..rows {
                let mut c_row = c.row_mut(i);
                let c_row = c_row.as_slice_mut().expect("row of a fresh array");
                for p in k0..(k0 + BLOCK_K).min(k) {
                    let a_ip = a[[i, p]];
                    for (cj, bj) in c_row[j0..j1].iter_mut().zip(&b[p * n + j0..p * n + j1]) {
                        *cj += a_ip * bj;
                    }
                }
            }
        }
    }
}

/// Rung 5: the packed loop nest and SIMD micro-kernel on one thread (without the unpacked paths
/// that [`crate::gemm()`] takes for skinny products).
pub fn packed(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, _, n) = crate::check_shapes(&a, &b);
    let mut c = Array2::zeros((m, n));
    crate::gemm_views(
        crate::detect(),
        crate::plan::Paths::PackedOnly,
        1,
        1.0,
        a,
        b,
        0.0,
        c.view_mut(),
    );
    c
}
