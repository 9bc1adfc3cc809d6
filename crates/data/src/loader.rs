//! Minibatches: `(x: [B, features] f32, y: labels)`, normalized on the fly from `u8` pixels.
//!
//! The order of an epoch is a function of `(seed, epoch)` only: a ChaCha8 stream (portable by
//! specification) drives a Fisher–Yates shuffle with unbiased bounded draws that we write
//! ourselves, so the order is the same on every machine and every version of `rand`, and a
//! resumed run sees exactly the batches an uninterrupted run would have seen.

use ndarray::ArrayView2;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::split::{Normalization, Subset};

/// In which order examples are visited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// 0, 1, 2, ... every epoch (for evaluation).
    Sequential,
    /// A fresh permutation each epoch, from `(seed, epoch)`.
    Shuffled { seed: u64 },
}

/// The permutation of `0..n` used for `epoch` under `seed`.
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut indices: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = uniform_below(&mut rng, i as u32 + 1) as usize;
        indices.swap(i, j);
    }
    indices
}

/// A uniform draw from `0..bound` (Lemire's multiply-and-reject; `bound > 0`).
fn uniform_below(rng: &mut impl RngCore, bound: u32) -> u32 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = rng.next_u32() as u64 * bound as u64;
        if (product as u32) >= threshold {
            return (product >> 32) as u32;
        }
    }
}

/// Batches of at least this many values (42 MNIST images) are converted in parallel (inside
/// a rayon pool of more than one thread). Measured in `cargo xtask bench train` on two threads
/// (Intel Xeon, interleaved runs): from 1 << 17 (so batch 64 went whole on one thread) to
/// this, 784-256-10 at batch 64 0.298-0.307 -> 0.286-0.298 s an epoch, 784-256-256-10
/// 0.462-0.472 -> 0.430-0.442.
const PARALLEL_VALUES: usize = 1 << 15;

/// How many images ahead the batch loop prefetches.
const PREFETCH_DISTANCE: usize = 4;

/// Hints the CPU to bring `bytes` into cache (a no-op where there is no such instruction).
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetching is a hint; the address is inside a live slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// `out[i] = pixels[i] · scale + shift`: a multiply, then an add (never fused), so every
/// path gives the same bits. The compiler vectorizes the loop (a table lookup it cannot);
/// where AVX-512 is present the same loop is compiled for it (16 pixels an instruction instead
/// of SSE2's 4), chosen at run time.
pub fn normalize_pixels(out: &mut [f32], pixels: &[u8], scale: f32, shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { normalize_pixels_avx512(out, pixels, scale, shift) };
    }
    normalize_pixels_portable(out, pixels, scale, shift)
}

/// The portable loop behind [`normalize_pixels`] (public so tests compare both paths).
#[inline(always)]
pub fn normalize_pixels_portable(out: &mut [f32], pixels: &[u8], scale: f32, shift: f32) {
    for (x, &p) in out.iter_mut().zip(pixels) {
        *x = p as f32 * scale + shift;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn normalize_pixels_avx512(out: &mut [f32], pixels: &[u8], scale: f32, shift: f32) {
    normalize_pixels_portable(out, pixels, scale, shift)
}

/// Converts the first `rows` examples of `indices` into `x` (`rows` rows of the subset's
/// features): `x = pixel · scale + shift`. Prefetches the images of the rows that follow, up
/// to a few rows ahead, past `rows` when `indices` goes on. (Public so that a
/// training loop can convert a batch in pieces of its own choosing, into a [`BatchBuffer`]'s
/// [`prepare`](BatchBuffer::prepare)d place.)
pub fn convert_rows(subset: &Subset, x: &mut [f32], indices: &[u32], rows: usize, scale: f32, shift: f32) {
    let features = subset.features();
    for (n, (row, &i)) in x.chunks_exact_mut(features).zip(&indices[..rows]).enumerate() {
        // Shuffled images are scattered over the whole split: ask for one a few rows ahead
        // while this one is converted, so the loop does not wait on memory.
        if let Some(&ahead) = indices.get(n + PREFETCH_DISTANCE) {
            prefetch(subset.image(ahead as usize));
        }
        normalize_pixels(row, subset.image(i as usize), scale, shift);
    }
}

/// The positions in the epoch's order of batch `index`, if the epoch has it.
fn batch_range(index: usize, batch_size: usize, samples: usize) -> Option<std::ops::Range<usize>> {
    let start = index * batch_size;
    let end = (start + batch_size).min(samples);
    (start < end).then_some(start..end)
}

/// One minibatch, borrowed from the loader's reused buffers.
#[derive(Debug)]
pub struct Batch<'b> {
    /// Normalized pixels, `[B, features]`.
    pub x: ArrayView2<'b, f32>,
    /// Class labels, `B` of them.
    pub y: &'b [u8],
    /// Position of this batch in its epoch.
    pub index: usize,
}

/// Batches over one [`Subset`]. Buffers are allocated once and reused by every batch.
#[derive(Debug)]
pub struct DataLoader<'a> {
    subset: &'a Subset,
    /// `x = pixel · scale + shift` (see [`Normalization::affine`]).
    scale: f32,
    shift: f32,
    batch_size: usize,
    order: Order,
    drop_last: bool,
    indices: Vec<u32>,
    /// The batch handed out.
    current: BatchBuffer,
}

/// A batch's converted pixels (`[rows, features]`, row-major) and labels, reused batch after
/// batch.
#[derive(Debug, Default)]
pub struct BatchBuffer {
    /// The pixels are `x[x_start..x_start + rows · features]`, starting on a 64-byte boundary:
    /// the matrix products then load whole cache lines (with 784 features every row starts on
    /// one), not vectors straddling two as in a 16-byte aligned allocation.
    x: Vec<f32>,
    x_start: usize,
    y: Vec<u8>,
}

/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

impl BatchBuffer {
    /// Room for batches of `batch_size` examples of `features` values.
    pub fn with_capacity(batch_size: usize, features: usize) -> Self {
        BatchBuffer {
            x: Vec::with_capacity(batch_size * features + LINE_FLOATS),
            x_start: 0,
            y: Vec::with_capacity(batch_size),
        }
    }

    /// Sizes the buffers for `indices` of `subset`, sets the labels, and returns the pixels'
    /// place, `[indices.len(), features]` row-major, still to be converted.
    pub fn prepare(&mut self, subset: &Subset, indices: &[u32]) -> &mut [f32] {
        let len = indices.len() * subset.features();
        if self.x.len() < len + LINE_FLOATS {
            self.x.resize(len + LINE_FLOATS, 0.0);
        }
        // `align_offset` may in principle decline (usize::MAX): then unaligned, only slower.
        self.x_start = self.x.as_ptr().align_offset(64).min(LINE_FLOATS);
        self.y.clear();
        self.y.extend(indices.iter().map(|&i| subset.labels[i as usize]));
        &mut self.x[self.x_start..self.x_start + len]
    }

    /// Converts the examples `indices` of `subset`: `x = pixel · scale + shift`, and the labels.
    pub fn fill(&mut self, subset: &Subset, indices: &[u32], scale: f32, shift: f32) {
        let features = subset.features();
        let x = self.prepare(subset, indices);
        // Called from inside a pool of several threads (as the fit loop is), large batches are
        // converted in parallel pieces (each value depends on its pixel only, so the split
        // changes nothing). From outside a pool, reaching the workers costs more than it saves.
        let rows = indices.len();
        let in_pool = rayon::current_thread_index().is_some();
        if in_pool && rayon::current_num_threads() > 1 && rows * features >= PARALLEL_VALUES {
            use rayon::prelude::*;
            let per_task = rows.div_ceil(rayon::current_num_threads());
            x.par_chunks_mut(per_task * features)
                .zip(indices.par_chunks(per_task))
                .for_each(|(x, indices)| convert_rows(subset, x, indices, indices.len(), scale, shift));
        } else {
            convert_rows(subset, x, indices, rows, scale, shift);
        }
    }

    /// The batch held, as batch number `index` of its epoch.
    pub fn batch(&self, features: usize, index: usize) -> Batch<'_> {
        let len = self.y.len() * features;
        let x = &self.x[self.x_start..self.x_start + len];
        let x = ArrayView2::from_shape((self.y.len(), features), x).expect("batch buffer has the batch's shape");
        Batch { x, y: &self.y, index }
    }
}

impl<'a> DataLoader<'a> {
    /// A loader with `batch_size` examples per batch (the last one may be smaller).
    pub fn new(subset: &'a Subset, normalization: &Normalization, batch_size: usize, order: Order) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        Ok(DataLoader {
            subset,
            scale: normalization.affine().0,
            shift: normalization.affine().1,
            batch_size,
            order,
            drop_last: false,
            indices: (0..subset.len() as u32).collect(),
            current: BatchBuffer::with_capacity(batch_size, subset.features()),
        })
    }

    /// Whether a last, incomplete batch is skipped.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Examples visited per epoch.
    pub fn samples_per_epoch(&self) -> usize {
        if self.drop_last {
            self.subset.len() / self.batch_size * self.batch_size
        } else {
            self.subset.len()
        }
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.samples_per_epoch().div_ceil(self.batch_size)
    }

    /// Starts epoch `epoch` (its order depends on it when shuffling).
    pub fn epoch(&mut self, epoch: u64) -> Epoch<'_, 'a> {
        match self.order {
            Order::Sequential => {}
            Order::Shuffled { seed } => self.indices = shuffled_indices(self.subset.len(), seed, epoch),
        }
        Epoch { loader: self, next: 0 }
    }
}

/// The batches of one epoch: `while let Some(batch) = epoch.next_batch() { ... }`.
#[derive(Debug)]
pub struct Epoch<'l, 'a> {
    loader: &'l mut DataLoader<'a>,
    next: usize,
}

impl Epoch<'_, '_> {
    /// The next batch, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        let index = self.next;
        let loader = &mut *self.loader;
        let range = batch_range(index, loader.batch_size, loader.samples_per_epoch())?;
        loader
            .current
            .fill(loader.subset, &loader.indices[range], loader.scale, loader.shift);
        self.next += 1;
        Some(loader.current.batch(loader.subset.features(), index))
    }

    /// The examples of batch `index` of this epoch, in the epoch's order (`None` past the end).
    pub fn batch_indices(&self, index: usize) -> Option<&[u32]> {
        let range = batch_range(index, self.loader.batch_size, self.loader.samples_per_epoch())?;
        Some(&self.loader.indices[range])
    }

    /// The index of the batch [`next_batch`](Epoch::next_batch) gives next.
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// The subset the batches come from.
    pub fn subset(&self) -> &Subset {
        self.loader.subset
    }

    /// The normalization as `x = pixel · scale + shift`: `(scale, shift)`.
    pub fn affine(&self) -> (f32, f32) {
        (self.loader.scale, self.loader.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subset(n: usize) -> Subset {
        Subset {
            name: "train",
            rows: 1,
            cols: 2,
            pixels: (0..2 * n).map(|i| i as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    /// `n` images of 28 × 28 with pixel i = `i · step mod modulus`, labels `0, 1, ..., 9, 0, ...`.
    fn mnist_like(n: usize, step: usize, modulus: usize) -> Subset {
        Subset {
            name: "train",
            rows: 28,
            cols: 28,
            pixels: (0..n * 784).map(|i| (i * step % modulus) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    const MNIST_LIKE_NORMALIZATION: Normalization = Normalization {
        scale: 255.0,
        mean: 0.13,
        std: 0.31,
    };

    #[test]
    fn permutation_is_a_permutation_and_depends_on_seed_and_epoch() {
        let p = shuffled_indices(1000, 7, 0);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(p, (0..1000).collect::<Vec<u32>>());
        assert_eq!(p, shuffled_indices(1000, 7, 0));
        assert_ne!(p, shuffled_indices(1000, 7, 1));
        assert_ne!(p, shuffled_indices(1000, 8, 0));
    }

    #[test]
    fn the_order_is_pinned() {
        // The permutation is part of reproducibility: if this changes, old runs cannot resume.
        assert_eq!(shuffled_indices(10, 42, 3), vec![0, 6, 1, 2, 7, 8, 4, 9, 3, 5]);
    }

    #[test]
    fn batches_cover_everything_once_with_a_short_last_batch() {
        let s = subset(10);
        let norm = Normalization::none(1.0);
        let mut loader = DataLoader::new(&s, &norm, 4, Order::Shuffled { seed: 1 }).unwrap();
        assert_eq!(loader.num_batches(), 3);
        let mut epoch = loader.epoch(0);
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = epoch.next_batch() {
            sizes.push(b.x.nrows());
            for (row, &label) in b.x.rows().into_iter().zip(b.y) {
                let first = row[0] as usize / 2;
                assert_eq!(row[1], row[0] + 1.0);
                assert_eq!(label as usize, first % 10);
                seen.push(first);
            }
        }
        assert_eq!(sizes, vec![4, 4, 2]);
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn normalize_pixels_matches_the_portable_loop_bit_for_bit() {
        // Every byte value, at lengths around the vector widths, with MNIST's affine map.
        let pixels: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let norm = Normalization {
            scale: 255.0,
            mean: 0.1306604762738429,
            std: 0.30810780713141817,
        };
        let (scale, shift) = norm.affine();
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 512] {
            let mut fast = vec![f32::NAN; len];
            let mut portable = vec![f32::NAN; len];
            normalize_pixels(&mut fast, &pixels[..len], scale, shift);
            normalize_pixels_portable(&mut portable, &pixels[..len], scale, shift);
            let expected: Vec<u32> = pixels[..len]
                .iter()
                .map(|&p| (p as f32 * scale + shift).to_bits())
                .collect();
            assert_eq!(
                fast.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                expected,
                "len {len}"
            );
            assert_eq!(
                portable.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                expected,
                "len {len}"
            );
        }
    }

    #[test]
    fn parallel_conversion_gives_the_serial_batches() {
        // 200 images of 28 × 28 per batch: above the size converted in parallel.
        let s = mnist_like(500, 7, 251);
        let norm = MNIST_LIKE_NORMALIZATION;
        let batches = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut loader = DataLoader::new(&s, &norm, 200, Order::Shuffled { seed: 5 }).unwrap();
                let mut epoch = loader.epoch(2);
                let mut out = Vec::new();
                while let Some(b) = epoch.next_batch() {
                    out.push((b.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.y.to_vec()));
                }
                out
            })
        };
        let serial = batches(1);
        assert_eq!(serial.len(), 3);
        assert_eq!(serial, batches(2));
        assert_eq!(serial, batches(3));
    }

    #[test]
    fn drop_last_skips_the_short_batch() {
        let s = subset(10);
        let norm = Normalization::none(1.0);
        let mut loader = DataLoader::new(&s, &norm, 4, Order::Sequential)
            .unwrap()
            .drop_last(true);
        assert_eq!(loader.num_batches(), 2);
        let mut epoch = loader.epoch(0);
        let mut count = 0;
        while let Some(b) = epoch.next_batch() {
            assert_eq!(b.x.nrows(), 4);
            count += 1;
        }
        assert_eq!(count, 2);
    }

    #[test]
    fn zero_batch_size_is_an_error() {
        let s = subset(3);
        let err = DataLoader::new(&s, &Normalization::none(1.0), 0, Order::Sequential).unwrap_err();
        assert!(err.to_string().contains("batch size"));
    }
}
