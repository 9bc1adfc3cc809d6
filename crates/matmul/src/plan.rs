//! The plan of a product: which path computes it, with which blocking, split how over threads.
//!
//! [`plan`] decides all of it as a pure function of the shape, the strides of A, B and C, the
//! number of threads and the CPU's instruction sets; `gemm.rs` and `direct.rs` then carry the
//! plan out and decide nothing. The paths:
//!
//! - **packed** (every CPU): the BLIS loop nest of `gemm.rs` with one tile ([`Tile`]); on
//!   AVX-512 the 14 × 32 tile (vectors along n) when it fills its lanes better than the
//!   32 × 10 one (vectors along m).
//! - **rows**, **transposed rows**, **swapped rows** (AVX-512 only, `direct.rs`): unpacked
//!   paths for the skinny products of a small network (`gᵀ·x`, `g·W`, `x·Wᵀ`), where packing
//!   would cost as much as the arithmetic.
//!
//! No decision depends on α, β or the values, and none but the split on the thread count, so
//! every element of C is computed by the same operations whatever the number of threads.

use crate::direct::{ROWS_DOT_TAIL, ROWS_KC, ROWS_MR, ROWS_NR};
use crate::gemm::panel_depth;
use crate::kernel::{Avx2Fma, Avx512, Avx512Wide, Cpu, Kernel, MicroKernel, Portable};

/// Below this many multiply-adds (m·n·k) a packed product runs on one thread: waking a second
/// rayon worker costs 9–50 µs, and in a training step (products separated by other work)
/// moving the operands between the cores' caches costs more. Chosen by timing
/// `cargo xtask bench train` epochs on 2 threads (with the optimizer's update split the same
/// way): at 16M the 784-256-10 model at batch 64 (12.8M per product) took 0.285 s per epoch,
/// at 4M 0.185–0.206 s; at 1M the 784-50-10 model at batch 64 (2.5M per product) slowed from
/// 0.066 s to 0.074 s.
pub const PARALLEL_THRESHOLD: usize = 4 << 20;

/// The same for the unpacked paths (`direct.rs`), which have nothing to pack twice:
/// each thread reads only its own part of the larger operand. With the workers kept awake,
/// 50 × 64 × 784 (Aᵀ, a 784-50-10 network's weight gradient at batch 64) ran at 157 GFLOP/s
/// on one thread and 276-280 split over two (Intel Xeon); a 784-50-10 epoch at batch 64 on
/// two threads was the same either way (0.087-0.091 s).
pub const DIRECT_PARALLEL_THRESHOLD: usize = 1 << 20;

/// The most rows of A for which `x·Wᵀ` takes the transposed (or swapped) rows path (each
/// thread then transposes its own part of W). Measured in `cargo xtask bench train` (1 thread,
/// 784-256-10, on an AMD EPYC Zen 5): with a direct path also at 256 and 1024 rows, epochs
/// took 0.285 s and 0.268 s; with the packed path there, 0.252 s and 0.248 s.
pub const SHORT_A_MAX_M: usize = 128;

/// The most `k·n` (floats of B) for which `x·Wᵀ` takes an unpacked path: each thread copies
/// its part of B row-major first, and the copy should stay in L2.
const DIRECT_MAX_B: usize = 1 << 20;

/// Where element (i, j) of a matrix lies: `i·rs + j·cs` floats from its first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Floats from one row to the next.
    pub rs: isize,
    /// Floats from one column to the next.
    pub cs: isize,
}

impl Layout {
    /// Rows of `cols` contiguous floats, one after the other (ndarray's standard layout).
    pub const fn row_major(cols: usize) -> Layout {
        Layout {
            rs: cols as isize,
            cs: 1,
        }
    }

    /// Columns of `rows` contiguous floats (the transposed view of a row-major array).
    pub const fn col_major(rows: usize) -> Layout {
        Layout {
            rs: 1,
            cs: rows as isize,
        }
    }
}

/// A product `C (m × n) ← α·A (m × k)·B (k × n) + β·C` as the plan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Product {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Layout,
    pub b: Layout,
    pub c: Layout,
}

/// Which paths the plan may choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Paths {
    /// All of them (what [`crate::gemm()`] and [`crate::matmul`] use).
    All,
    /// The packed loop nest only (the ladder's `packed` rung).
    PackedOnly,
}

/// How a product is computed: the path with its blocking, and the split over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Plan {
    pub path: Path,
    pub split: Split,
}

/// The path that computes every block of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// The packed loop nest (`gemm.rs`) with this tile and panels of `kc` steps of k
    /// ([`panel_depth`] of k for the tile's KC).
    Packed { tile: Tile, kc: usize },
    /// Rows of B read in place, vectors along n (`gᵀ·x`, `g·W`, `x·W` with 50 hidden units).
    Rows(Rows),
    /// A column-major B (`Wᵀ`) transposed into a row-major buffer, then the rows path (`x·Wᵀ`
    /// with a short x, or a narrow W).
    TransposedRows(Rows),
    /// `Cᵀ = Bᵀ·Aᵀ` by the rows path on a row-major copy of Aᵀ, then Cᵀ transposed into C
    /// (`x·Wᵀ` with x shorter than W). [`Rows`] describes that inner product, whose C is
    /// `n × m`.
    SwappedRows(Rows),
}

/// The blocking of the rows path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rows {
    /// Steps of k per panel of B that every tile of rows reads from L1: `ROWS_KC` for a
    /// column-major A, else all of k (a row-major A streams better whole).
    pub k_panel: usize,
    /// How the columns past the last whole vector of 16 are computed.
    pub tail: Tail,
}

/// The rows path's last `n mod 16` columns (in the last block along n; the other blocks
/// start and end on multiples of 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tail {
    /// In the last, masked vector of each row, like the others.
    InVectors,
    /// Apart, as dot products along k (A's rows contiguous): this many columns.
    Dot(usize),
    /// Apart, with vectors along m (A's columns contiguous): this many columns.
    AlongM(usize),
}

/// The register tile of the packed loop nest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// AVX-512, 32 × 10, vectors along m.
    Avx512Tall,
    /// AVX-512, 14 × 32, vectors along n.
    Avx512Wide,
    /// AVX2+FMA, 16 × 6.
    Avx2Fma,
    /// Plain Rust, 8 × 4.
    Portable,
}

impl Tile {
    /// `(MR, NR)`.
    pub fn shape(self) -> (usize, usize) {
        match self {
            Tile::Avx512Tall => (Avx512::MR, Avx512::NR),
            Tile::Avx512Wide => (Avx512Wide::MR, Avx512Wide::NR),
            Tile::Avx2Fma => (Avx2Fma::MR, Avx2Fma::NR),
            Tile::Portable => (Portable::MR, Portable::NR),
        }
    }

    /// The kernel's KC (the deepest panel of k).
    fn kc(self) -> usize {
        match self {
            Tile::Avx512Tall => Avx512::KC,
            Tile::Avx512Wide => Avx512Wide::KC,
            Tile::Avx2Fma => Avx2Fma::KC,
            Tile::Portable => Portable::KC,
        }
    }
}

/// How C is split over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The whole product on the calling thread.
    One,
    /// `blocks` blocks of `step` rows (along m) or columns (along n) of C, the last one
    /// shorter, each a rayon task; the calling thread computes the first. `step` is a whole
    /// number of the path's tiles (or of 16-column vectors, along n on the unpacked paths).
    Blocks { along: Axis, step: usize, blocks: usize },
}

/// A side of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Rows.
    M,
    /// Columns.
    N,
}

/// The plan for `product` with the `kernel` asked for (what [`crate::detect`] returns, unless
/// a caller forces one) on a CPU with the instruction sets `cpu` and `threads` threads.
/// A kernel the CPU cannot run falls back to [`Kernel::Portable`].
pub fn plan(product: Product, kernel: Kernel, cpu: Cpu, threads: usize, paths: Paths) -> Plan {
    let kernel = if kernel.runs_on(cpu) { kernel } else { Kernel::Portable };
    if kernel == Kernel::Avx512 && paths == Paths::All {
        if let Some(plan) = unpacked(&product, threads) {
            return plan;
        }
    }
    let Product { m, k, n, c, .. } = product;
    let tile = match kernel {
        Kernel::Avx512 if prefers_wide_tile(m, n, c) => Tile::Avx512Wide,
        Kernel::Avx512 | Kernel::Avx512Tall => Tile::Avx512Tall,
        Kernel::Avx512Wide => Tile::Avx512Wide,
        Kernel::Avx2Fma => Tile::Avx2Fma,
        Kernel::Portable => Tile::Portable,
    };
    let (mr, nr) = tile.shape();
    // Along the longer side, m only when m > n: on squares, halves of n ran faster than
    // halves of m with either AVX-512 tile.
    let along_m = m > n;
    Plan {
        path: Path::Packed {
            tile,
            kc: panel_depth(k, tile.kc()),
        },
        split: split(&product, threads, PARALLEL_THRESHOLD, along_m, mr, nr),
    }
}

/// The plan on an unpacked AVX-512 path, if one fits the operands.
fn unpacked(product: &Product, threads: usize) -> Option<Plan> {
    let &Product { m, k, n, a, b, c } = product;
    if m == 0 || n == 0 || k == 0 {
        return None;
    }
    let rows = |a: Layout, n: usize| rows_blocking(a, k, n);
    let path = if a.cs == 1 && b.rs == 1 && k >= 16 && n * k <= DIRECT_MAX_B && m <= SHORT_A_MAX_M {
        // x·Wᵀ with few rows: transposed rows when the rows path fills its vectors (n = 256),
        // else the packed path, whose 32 × 10 tile fills every lane at n = 50 (the rows path
        // would leave 14 of 64 idle). When x has fewer rows than W (64 × 784 · 784 × 256),
        // transposing x costs less than transposing W: the swapped path computes Cᵀ = W·xᵀ.
        if c.cs == 1 && m < n && rows_fill(n, m) >= 0.95 {
            // The inner product's A is W (B seen transposed) and its C is n × m.
            Path::SwappedRows(rows(Layout { rs: b.cs, cs: b.rs }, m))
        } else if c.cs == 1 && rows_fill(m, n) >= 0.95 {
            Path::TransposedRows(rows(a, n))
        } else {
            return None;
        }
    } else if b.rs == 1 && c.cs == 1 && n < 64 && n * k <= DIRECT_MAX_B {
        // A tall A times a narrow Bᵀ (the 10k-row evaluation's x·Wᵀ with 50 hidden units):
        // the rows path on a row-major copy of B (k × n, small).
        Path::TransposedRows(rows(a, n))
    } else if b.cs == 1 && c.cs == 1 && (n < 64 || (m.min(k) <= 128 && rows_fill(m, n) > packed_fill(m, k, n))) {
        // When one side is small (the network's gᵀ·x and g·W), and for narrow outputs
        // (n < 64, as x·W with 50 hidden units), where it beats packing A for any m.
        Path::Rows(rows(a, n))
    } else {
        return None;
    };
    let short_a = m <= SHORT_A_MAX_M;
    let (unit_m, unit_n) = match path {
        Path::Rows(_) => (ROWS_MR, ROWS_NR),
        // A short A: split along n only, so that each thread transposes and reads its own
        // part of W. A tall one: along m, each thread copying the (small) W whole.
        Path::TransposedRows(_) | Path::SwappedRows(_) if short_a => (usize::MAX, 16),
        Path::TransposedRows(_) => (ROWS_MR, ROWS_NR),
        Path::SwappedRows(_) | Path::Packed { .. } => unreachable!("swapped only for a short A"),
    };
    // Along the side with more tiles, cut in whole vectors when along n (16 columns; 64-column
    // tiles would cut 50 × 1024 × 784 into 448 + 336 columns, not 400 + 384). But the rows
    // path with a short A is bound by streaming B: split along m, each thread would still read
    // all of B, so it goes along n when n gives every thread a 64-column tile.
    let short_a_rows = matches!(path, Path::Rows(_)) && short_a && n >= unit_n * threads;
    let along_m = !short_a_rows && m.div_ceil(unit_m) >= n.div_ceil(unit_n);
    Some(Plan {
        path,
        split: split(product, threads, DIRECT_PARALLEL_THRESHOLD, along_m, unit_m, 16),
    })
}

/// The blocking of the rows path for an A with this layout, k steps deep, and a C n wide.
pub(crate) fn rows_blocking(a: Layout, k: usize, n: usize) -> Rows {
    Rows {
        k_panel: if a.rs == 1 { ROWS_KC } else { k },
        tail: tail(a, n),
    }
}

/// How the rows path with this A computes the columns of an `n`-wide C past its last whole
/// vector: apart when there are at most `ROWS_DOT_TAIL` of them (2 for n = 50, which would fill
/// 2 of 16 lanes at every step of k) and A is contiguous along one side.
fn tail(a: Layout, n: usize) -> Tail {
    let cols = n % 16;
    if cols == 0 || cols > ROWS_DOT_TAIL {
        Tail::InVectors
    } else if a.cs == 1 {
        Tail::Dot(cols)
    } else if a.rs == 1 {
        Tail::AlongM(cols)
    } else {
        Tail::InVectors
    }
}

/// The fraction of useful lanes and tiles when `len` is cut into pieces of `unit`.
fn fill(len: usize, unit: usize) -> f64 {
    len as f64 / (len.div_ceil(unit) * unit) as f64
}

/// The fraction of useful lanes and tiles of the rows path (6-row × 16-lane blocks).
fn rows_fill(m: usize, n: usize) -> f64 {
    fill(n, 16) * fill(m, ROWS_MR)
}

/// The same for the packed 32 × 10 kernel, discounted for its overheads: merging each tile
/// into C (about 24 steps of k) and packing B, which only m rows share (about 24 rows' worth
/// of work). Measured with `cargo xtask bench matmul`.
fn packed_fill(m: usize, k: usize, n: usize) -> f64 {
    fill(m, 32) * fill(n, 10) / (1.0 + 24.0 / k as f64 + 24.0 / m as f64)
}

/// Whether the 14 × 32 tile (vectors along n) suits an `m × n` C better than the 32 × 10 one
/// (vectors along m): only for a row-major C, which it merges without a transpose, and when
/// the fraction of its lanes and tiles that do useful work, times its ~10% higher rate on full
/// tiles (`cargo xtask bench matmul`), beats the 32 × 10 tile's. So n = 256 or 1024 take the
/// wide tile, n = 50 (14 of 64 lanes idle) the tall one.
fn prefers_wide_tile(m: usize, n: usize, c: Layout) -> bool {
    c.cs == 1 && 1.1 * fill(n, 32) * fill(m, 14) >= fill(m, 32) * fill(n, 10)
}

/// The split of C into fixed blocks: none below `threshold` multiply-adds or on one thread,
/// else `threads` blocks (fewer if there are fewer tiles) along m (`along_m`, in whole tiles
/// of `unit_m` rows) or along n (in whole tiles of `unit_n` columns).
fn split(product: &Product, threads: usize, threshold: usize, along_m: bool, unit_m: usize, unit_n: usize) -> Split {
    let Product { m, k, n, .. } = *product;
    if threads <= 1 || m * n * k < threshold {
        return Split::One;
    }
    let (along, len, unit) = if along_m {
        (Axis::M, m, unit_m)
    } else {
        (Axis::N, n, unit_n)
    };
    let tiles = len.div_ceil(unit);
    let parts = threads.min(tiles);
    let step = tiles.div_ceil(parts) * unit;
    match len.div_ceil(step) {
        0 | 1 => Split::One,
        blocks => Split::Blocks { along, step, blocks },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x·Wᵀ` of a Linear layer's forward: x `[batch, inputs]`, W `[outputs, inputs]` seen
    /// transposed (column-major), into `[batch, outputs]`.
    fn x_wt(batch: usize, inputs: usize, outputs: usize) -> Product {
        Product {
            m: batch,
            k: inputs,
            n: outputs,
            a: Layout::row_major(inputs),
            b: Layout::col_major(inputs),
            c: Layout::row_major(outputs),
        }
    }

    /// `gᵀ·x`, the weight gradient: g `[batch, outputs]` seen transposed, x `[batch, inputs]`.
    fn gt_x(batch: usize, inputs: usize, outputs: usize) -> Product {
        Product {
            m: outputs,
            k: batch,
            n: inputs,
            a: Layout::col_major(outputs),
            b: Layout::row_major(inputs),
            c: Layout::row_major(inputs),
        }
    }

    /// `g·W`, the input gradient: g `[batch, outputs]`, W `[outputs, inputs]`.
    fn g_w(batch: usize, inputs: usize, outputs: usize) -> Product {
        Product {
            m: batch,
            k: outputs,
            n: inputs,
            a: Layout::row_major(outputs),
            b: Layout::row_major(inputs),
            c: Layout::row_major(inputs),
        }
    }

    /// Row-major A, B and C.
    fn plain(m: usize, k: usize, n: usize) -> Product {
        Product {
            m,
            k,
            n,
            a: Layout::row_major(k),
            b: Layout::row_major(n),
            c: Layout::row_major(n),
        }
    }

    /// Every path, tile, tail and split, for the network's products (784-50-10 and
    /// 784-256-256-10 at batch 64 and 1024), squares, tiny and empty products, and each CPU.
    /// These are the decisions the crate made before they were gathered into [`plan`] (checked
    /// then against the old code for every combination of 33 sizes in each dimension, three
    /// layouts of each operand, 1 to 8 threads, every kernel and CPU).
    #[test]
    fn the_plan_of_every_kind_of_product() {
        use Cpu as C;
        use Kernel::*;
        use Paths::*;
        use Tail::*;
        use Tile::{Avx2Fma as Avx2, Avx512Tall as Tall, Avx512Wide as Wide, Portable as Plain};
        let packed = |tile, kc| Path::Packed { tile, kc };
        let rows = |k_panel, tail| Path::Rows(Rows { k_panel, tail });
        let transposed = |k_panel, tail| Path::TransposedRows(Rows { k_panel, tail });
        let swapped = |k_panel, tail| Path::SwappedRows(Rows { k_panel, tail });
        let by_m = |step, blocks| Split::Blocks {
            along: Axis::M,
            step,
            blocks,
        };
        let by_n = |step, blocks| Split::Blocks {
            along: Axis::N,
            step,
            blocks,
        };
        const ONE: Split = Split::One;
        // (what, product, kernel asked for, CPU, threads, paths) → (path, split)
        type Case = (&'static str, Product, Kernel, C, usize, Paths, Path, Split);
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            ("784-50-10 forward: x·Wᵀ, batch 64", x_wt(64, 784, 50), Avx512, C::AVX512, 2, All, packed(Tall, 272), ONE),
            ("784-50-10 output: x·Wᵀ with 10 outputs", x_wt(64, 50, 10), Avx512, C::AVX512, 2, All, packed(Tall, 50), ONE),
            ("784-50-10 weight gradient gᵀ·x, 50 × 64 · 64 × 784", gt_x(64, 784, 50), Avx512, C::AVX512, 2, All, rows(96, InVectors), by_n(400, 2)),
            ("784-50-10 weight gradient gᵀ·x, one thread", gt_x(64, 784, 50), Avx512, C::AVX512, 1, All, rows(96, InVectors), ONE),
            ("784-50-10 input gradient g·W, 64 × 10 · 10 × 50", g_w(64, 50, 10), Avx512, C::AVX512, 2, All, rows(10, Dot(2)), ONE),
            ("784-256-10 forward x·Wᵀ, batch 64: swapped", x_wt(64, 784, 256), Avx512, C::AVX512, 2, All, swapped(784, InVectors), by_n(128, 2)),
            ("784-256-10 forward x·Wᵀ, batch 64, one thread", x_wt(64, 784, 256), Avx512, C::AVX512, 1, All, swapped(784, InVectors), ONE),
            ("x·Wᵀ, batch 32: swapped", x_wt(32, 784, 256), Avx512, C::AVX512, 2, All, swapped(784, InVectors), by_n(128, 2)),
            ("x·Wᵀ, as many rows as W: transposed rows", x_wt(128, 784, 128), Avx512, C::AVX512, 2, All, transposed(784, InVectors), by_n(64, 2)),
            ("784-256-256-10 hidden x·Wᵀ, 64 × 256 · 256 × 256", x_wt(64, 256, 256), Avx512, C::AVX512, 2, All, swapped(256, InVectors), by_n(128, 2)),
            ("256-10 output x·Wᵀ, 64 × 256 · 256 × 10", x_wt(64, 256, 10), Avx512, C::AVX512, 2, All, packed(Tall, 256), ONE),
            ("784-256 weight gradient gᵀ·x, 256 × 64 · 64 × 784", gt_x(64, 784, 256), Avx512, C::AVX512, 2, All, rows(96, InVectors), by_m(132, 2)),
            ("256-256 weight gradient gᵀ·x", gt_x(64, 256, 256), Avx512, C::AVX512, 2, All, rows(96, InVectors), by_m(132, 2)),
            ("256-10 weight gradient gᵀ·x, 10 × 64 · 64 × 256", gt_x(64, 256, 10), Avx512, C::AVX512, 2, All, rows(96, InVectors), ONE),
            ("256-256 input gradient g·W", g_w(64, 256, 256), Avx512, C::AVX512, 2, All, rows(256, InVectors), by_n(128, 2)),
            ("256-10 input gradient g·W, 64 × 10 · 10 × 256", g_w(64, 256, 10), Avx512, C::AVX512, 2, All, rows(10, InVectors), ONE),
            ("784-256 input gradient g·W, 64 × 256 · 256 × 784", g_w(64, 784, 256), Avx512, C::AVX512, 2, All, rows(256, InVectors), by_n(400, 2)),
            ("batch 1024: x·Wᵀ with 256 outputs", x_wt(1024, 784, 256), Avx512, C::AVX512, 2, All, packed(Wide, 272), by_m(518, 2)),
            ("batch 1024: x·Wᵀ with 50 outputs", x_wt(1024, 784, 50), Avx512, C::AVX512, 2, All, transposed(784, Dot(2)), by_m(516, 2)),
            ("batch 1024: gᵀ·x, 256 × 1024 · 1024 × 784", gt_x(1024, 784, 256), Avx512, C::AVX512, 2, All, packed(Wide, 352), by_n(416, 2)),
            ("batch 1024: gᵀ·x, 50 × 1024 · 1024 × 784", gt_x(1024, 784, 50), Avx512, C::AVX512, 2, All, rows(96, InVectors), by_n(400, 2)),
            ("batch 1024: g·W, 1024 × 256 · 256 × 784", g_w(1024, 784, 256), Avx512, C::AVX512, 2, All, packed(Wide, 256), by_m(518, 2)),
            ("batch 1024: g·W, 1024 × 50 · 50 × 784", g_w(1024, 784, 50), Avx512, C::AVX512, 2, All, rows(50, InVectors), by_m(516, 2)),
            ("evaluation x·Wᵀ, 10,000 rows, 50 hidden units", x_wt(10000, 784, 50), Avx512, C::AVX512, 2, All, transposed(784, Dot(2)), by_m(5004, 2)),
            ("rows path with 8 columns as dot products", plain(12, 500, 1000), Avx512, C::AVX512, 2, All, rows(500, Dot(8)), by_n(512, 2)),
            ("rows path with 8 columns along m (Aᵀ)", gt_x(64, 1000, 30), Avx512, C::AVX512, 2, All, rows(96, AlongM(8)), by_n(512, 2)),
            ("square 256", plain(256, 256, 256), Avx512, C::AVX512, 2, All, packed(Wide, 256), by_n(128, 2)),
            ("square 1024", plain(1024, 1024, 1024), Avx512, C::AVX512, 2, All, packed(Wide, 352), by_n(512, 2)),
            ("square 1024, four threads", plain(1024, 1024, 1024), Avx512, C::AVX512, 4, All, packed(Wide, 352), by_n(256, 4)),
            ("square 2048, one thread", plain(2048, 2048, 2048), Avx512, C::AVX512, 1, All, packed(Wide, 352), ONE),
            ("tall: 2048 × 512 · 512 × 100", plain(2048, 512, 100), Avx512, C::AVX512, 2, All, packed(Tall, 256), by_m(1024, 2)),
            ("column-major C takes the tall tile", Product { c: Layout::col_major(512), ..plain(512, 512, 512) }, Avx512, C::AVX512, 2, All, packed(Tall, 256), by_n(260, 2)),
            ("tiny 1 × 1 · 1 × 1", plain(1, 1, 1), Avx512, C::AVX512, 2, All, transposed(96, Dot(1)), ONE),
            ("tiny 3 × 5 · 5 × 7", plain(3, 5, 7), Avx512, C::AVX512, 2, All, rows(5, Dot(7)), ONE),
            ("k = 0", plain(5, 0, 7), Avx512, C::AVX512, 2, All, packed(Tall, 1), ONE),
            ("m = 0", plain(0, 3, 4), Avx512, C::AVX512, 2, All, packed(Tall, 3), ONE),
            ("the ladder's packed rung: no unpacked path", x_wt(64, 784, 256), Avx512, C::AVX512, 1, PackedOnly, packed(Wide, 272), ONE),
            ("forced 32 × 10 tile on a square", plain(1024, 1024, 1024), Avx512Tall, C::AVX512, 2, All, packed(Tall, 352), by_n(520, 2)),
            ("forced 14 × 32 tile on a network shape", x_wt(64, 784, 50), Avx512Wide, C::AVX512, 2, All, packed(Wide, 272), ONE),
            ("AVX2: x·Wᵀ, batch 64, 256 outputs", x_wt(64, 784, 256), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 272), by_n(132, 2)),
            ("AVX2: x·Wᵀ, batch 64, 50 outputs", x_wt(64, 784, 50), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 272), ONE),
            ("AVX2: gᵀ·x, 256 × 64 · 64 × 784", gt_x(64, 784, 256), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 64), by_n(396, 2)),
            ("AVX2: g·W, 64 × 256 · 256 × 784", g_w(64, 784, 256), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 256), by_n(396, 2)),
            ("AVX2: 10 outputs", x_wt(64, 256, 10), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 256), ONE),
            ("AVX2: batch 1024 x·Wᵀ", x_wt(1024, 784, 256), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 272), by_m(512, 2)),
            ("AVX2: square 1024", plain(1024, 1024, 1024), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 352), by_n(516, 2)),
            ("AVX2: square 1024, three threads", plain(1024, 1024, 1024), Avx2Fma, C::AVX2_FMA, 3, All, packed(Avx2, 352), by_n(342, 3)),
            ("AVX2: tiny", plain(3, 5, 7), Avx2Fma, C::AVX2_FMA, 2, All, packed(Avx2, 5), ONE),
            ("AVX-512 asked for on an AVX2 CPU: portable", x_wt(64, 784, 256), Avx512, C::AVX2_FMA, 2, All, packed(Plain, 272), by_n(128, 2)),
            ("AVX2 asked for on a CPU without it: portable", x_wt(64, 784, 256), Avx2Fma, C::NONE, 2, All, packed(Plain, 272), by_n(128, 2)),
            ("portable: batch 1024 g·W", g_w(1024, 784, 256), Portable, C::NONE, 2, All, packed(Plain, 256), by_m(512, 2)),
            ("portable: square 1024", plain(1024, 1024, 1024), Portable, C::NONE, 2, All, packed(Plain, 352), by_n(512, 2)),
            ("portable: tiny", plain(3, 5, 7), Portable, C::NONE, 2, All, packed(Plain, 5), ONE),
            ("portable on an AVX-512 CPU", gt_x(64, 784, 256), Portable, C::AVX512, 2, All, packed(Plain, 64), by_n(392, 2)),
        ];
        let mut wrong = Vec::new();
        for (name, product, kernel, cpu, threads, paths, path, split) in table {
            let (got, want) = (plan(product, kernel, cpu, threads, paths), Plan { path, split });
            if got != want {
                wrong.push(format!("{name}:\n    got  {got:?}\n    want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn no_plan_depends_on_the_thread_count_but_its_split() {
        for product in [
            x_wt(64, 784, 256),
            gt_x(64, 784, 50),
            g_w(1024, 784, 256),
            plain(300, 530, 2061),
        ] {
            for cpu in [Cpu::AVX512, Cpu::AVX2_FMA, Cpu::NONE] {
                let one = plan(product, Kernel::Avx512, cpu, 1, Paths::All);
                assert_eq!(one.split, Split::One);
                for threads in 2..=8 {
                    assert_eq!(plan(product, Kernel::Avx512, cpu, threads, Paths::All).path, one.path);
                }
            }
        }
    }
}
