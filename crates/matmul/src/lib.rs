#![deny(unsafe_op_in_unsafe_fn)]
//! # backprop-matmul
//!
//! Single-precision matrix multiplication for the network's forward and backward passes:
//!
//! ```text
//! C ← α·A·B + β·C          A: m × k,  B: k × n,  C: m × n
//! C[i,j] ← α·Σ_p A[i,p]·B[p,j] + β·C[i,j]
//! ```
//!
//! on ndarray views of any strides, so transposes are free: `x·Wᵀ` passes `w.t()`, `gᵀ·x`
//! passes `g.t()`, and nothing is copied. β = 0 overwrites C whatever it held.
//!
//! Built the BLIS way ([`gemm`](mod@gemm) has the loop nest written out): packed panels of A and B and a
//! register-blocked micro-kernel for the instruction sets detected at run time (AVX-512,
//! AVX2+FMA, or a portable one; see [`Kernel`] and [`Cpu`]). For each product one pure function,
//! [`plan::plan`], picks the path (the packed tile, or an unpacked AVX-512 path for a skinny
//! product), its blocking and its split over threads; the rest of the crate carries the plan
//! out. Packing buffers are per thread and reused, so a steady-state call allocates nothing.
//!
//! **Threads.** Large products are split into fixed blocks of C over rayon's current pool (one
//! per thread); small ones ([`plan::PARALLEL_THRESHOLD`]) run on the calling thread, because
//! waking a sleeping worker costs as much as the product. A loop that calls many products (a
//! training loop) should run *inside* the pool, `pool.install(|| train(...))`: a call from inside
//! the pool reaches the other worker much sooner than one from outside. (Keeping the workers
//! awake through such a loop is the training engine's business, in `backprop-train`.)
//!
//! **Determinism.** Each element of C is computed by the same operations in the same order,
//! whatever the number of threads, so results are bit-identical with 1 or 2 (or 64) threads.
//!
//! ```
//! use ndarray::array;
//! let x = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]; // [B=3, in=2]
//! let w = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]]; // [out=3, in=2], PyTorch's layout
//! let y = backprop_matmul::matmul(x.view(), w.t()); // x·Wᵀ, no copy of W
//! assert_eq!(y, array![[1.0, 2.0, 3.0], [3.0, 4.0, 7.0], [5.0, 6.0, 11.0]]);
//! ```
//!
//! The [`ladder`] module holds the steps from a triple loop to this kernel, each one public and
//! tested, for reading and for `cargo xtask bench matmul`.

mod direct;
pub mod gemm;
mod kernel;
pub mod ladder;
pub mod plan;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

pub use kernel::{detect, Kernel};

use gemm::{MatMut, MatRef, Strided};
pub use kernel::Cpu;
use plan::{Paths, Plan, Product};

/// The strided description of a 2-D view (pointer to its first element, shape, strides).
fn strided<P>(ptr: P, shape: &[usize], strides: &[isize]) -> Strided<P> {
    Strided {
        ptr,
        rows: shape[0],
        cols: shape[1],
        rs: strides[0],
        cs: strides[1],
    }
}

/// `(m, k, n)` of `A·B`; panics with both shapes when the inner dimensions differ.
fn check_shapes(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> (usize, usize, usize) {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "matmul: A is {:?} and B is {:?}; A's columns must equal B's rows",
        a.shape(),
        b.shape()
    );
    (a.nrows(), a.ncols(), b.ncols())
}

/// `C ← α·A·B + β·C` on the detected kernel, over rayon's current thread pool.
///
/// # Panics
/// When the shapes do not fit (the message gives all three).
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    gemm_with(detect(), rayon::current_num_threads(), alpha, a, b, beta, c)
}

/// [`gemm()`] with an explicit kernel and number of parallel blocks (1 = on the calling thread).
/// An unsupported kernel falls back to [`Kernel::Portable`].
pub fn gemm_with(
    kernel: Kernel,
    threads: usize,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    gemm_views(kernel, Paths::All, threads, alpha, a, b, beta, c)
}

/// [`gemm_with`], choosing whether the unpacked paths may be used.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_views(
    kernel: Kernel,
    paths: Paths,
    threads: usize,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
) {
    let (m, _, n) = check_shapes(&a, &b);
    assert_eq!(
        c.shape(),
        &[m, n],
        "matmul: C is {:?} but A {:?} · B {:?} is [{m}, {n}]",
        c.shape(),
        a.shape(),
        b.shape()
    );
    let c_mut: MatMut = strided(c.as_mut_ptr(), &[m, n], c.strides());
    let (a, b) = (mat_ref(&a), mat_ref(&b));
    let plan = plan_for(&a, &b, &c_mut, kernel, threads, paths);
    gemm::execute(plan, alpha, a, b, beta, c_mut);
}

/// The plan for these operands on this CPU.
fn plan_for(a: &MatRef, b: &MatRef, c: &MatMut, kernel: Kernel, threads: usize, paths: Paths) -> Plan {
    let product = Product {
        m: c.rows,
        k: a.cols,
        n: c.cols,
        a: a.layout(),
        b: b.layout(),
        c: c.layout(),
    };
    plan::plan(product, kernel, Cpu::detect(), threads, paths)
}

/// The strided description of a read-only view.
fn mat_ref(view: &ArrayView2<f32>) -> MatRef {
    strided(view.as_ptr(), view.shape(), view.strides())
}

/// `A·B` into a new array, over rayon's current thread pool.
///
/// The array is not zeroed first: the product is computed as with β = 0, which writes every
/// element of C without reading it (a layer's output or input gradient saves a pass over
/// memory this way).
///
/// # Panics
/// When A's columns are not B's rows.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    matmul_with(detect(), rayon::current_num_threads(), a, b)
}

/// [`matmul()`] with an explicit kernel and number of parallel blocks (1 = on the calling
/// thread), as [`gemm_with`].
pub fn matmul_with(kernel: Kernel, threads: usize, a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, _, n) = check_shapes(&a, &b);
    let mut c = Array2::<f32>::uninit((m, n));
    let c_mut: MatMut = strided(c.as_mut_ptr().cast::<f32>(), &[m, n], c.strides());
    let (a, b) = (mat_ref(&a), mat_ref(&b));
    let plan = plan_for(&a, &b, &c_mut, kernel, threads, Paths::All);
    gemm::execute(plan, 1.0, a, b, 0.0, c_mut);
    // SAFETY: with β = 0 every path (packed loop nest, unpacked paths, `scale` for k = 0)
    // stores each element of C and loads none of them.
    unsafe { c.assume_init() }
}
