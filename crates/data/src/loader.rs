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
use crate::shared::SharedConversion;
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
/// 0.462-0.472 -> 0.430-0.442. (Used for an epoch's first batch and by `next_batch`; the fit loop
/// converts the others in pieces between its products, see [`SharedConversion`].)
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
/// to [`PREFETCH_DISTANCE`] ahead, past `rows` when `indices` goes on.
pub(crate) fn convert_rows(subset: &Subset, x: &mut [f32], indices: &[u32], rows: usize, scale: f32, shift: f32) {
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
    current: BatchBuffers,
    /// The batch after it, converted during the step by [`Epoch::try_for_each_batch`].
    ahead: BatchBuffers,
}

/// A batch's converted pixels (`[rows, features]`, row-major) and labels.
#[derive(Debug, Default)]
struct BatchBuffers {
    /// The pixels are `x[x_start..x_start + rows · features]`, starting on a 64-byte boundary:
    /// the matrix products then load whole cache lines (with 784 features every row starts on
    /// one), not vectors straddling two as in a 16-byte aligned allocation.
    x: Vec<f32>,
    x_start: usize,
    y: Vec<u8>,
}

/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

impl BatchBuffers {
    fn with_capacity(batch_size: usize, features: usize) -> Self {
        BatchBuffers {
            x: Vec::with_capacity(batch_size * features + LINE_FLOATS),
            x_start: 0,
            y: Vec::with_capacity(batch_size),
        }
    }

    /// Sizes the buffers for `indices` of `subset`, sets the labels, and returns the pixels'
    /// place, `[indices.len(), features]` row-major, still to be converted.
    fn prepare(&mut self, subset: &Subset, indices: &[u32]) -> &mut [f32] {
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
    fn fill(&mut self, subset: &Subset, indices: &[u32], scale: f32, shift: f32) {
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

    fn batch(&self, features: usize, index: usize) -> Batch<'_> {
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
            current: BatchBuffers::with_capacity(batch_size, subset.features()),
            ahead: BatchBuffers::default(),
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

    /// Runs `step` on each remaining batch of the epoch, in order, stopping at the first error,
    /// while the next batch is converted in pieces through `shared`: threads with nothing else
    /// to do take them ([`SharedConversion::convert_piece`]), and what is left when `step`
    /// returns is converted on this thread. The batches are exactly those of
    /// [`Epoch::next_batch`]; only who converts them changes. With nobody else calling
    /// `convert_piece` it is the plain loop, converting each batch after the step before.
    ///
    /// ```
    /// use backprop_data::{DataLoader, Normalization, Order, SharedConversion, Subset};
    /// let train = Subset {
    ///     name: "train",
    ///     rows: 2,
    ///     cols: 2,
    ///     pixels: (0..400).map(|i| (i % 256) as u8).collect(),
    ///     labels: (0..100).map(|i| (i % 10) as u8).collect(),
    /// };
    /// let mut loader = DataLoader::new(&train, &Normalization::none(255.0), 32, Order::Shuffled { seed: 0 }).unwrap();
    /// let shared = SharedConversion::new();
    /// let mut sizes = Vec::new();
    /// let done = std::sync::atomic::AtomicBool::new(false);
    /// std::thread::scope(|s| {
    ///     // A helper converting pieces whenever it can, until the epoch is over.
    ///     s.spawn(|| while !done.load(std::sync::atomic::Ordering::Acquire) {
    ///         shared.convert_piece();
    ///     });
    ///     loader
    ///         .epoch(0)
    ///         .try_for_each_batch(&shared, |batch| {
    ///             sizes.push(batch.x.nrows());
    ///             Ok::<(), std::convert::Infallible>(())
    ///         })
    ///         .unwrap();
    ///     done.store(true, std::sync::atomic::Ordering::Release);
    /// });
    /// assert_eq!(sizes, [32, 32, 32, 4]);
    /// ```
    pub fn try_for_each_batch<E>(
        self,
        shared: &SharedConversion,
        mut step: impl FnMut(Batch<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let samples = self.loader.samples_per_epoch();
        let DataLoader {
            subset,
            scale,
            shift,
            batch_size,
            ref indices,
            ref mut current,
            ref mut ahead,
            ..
        } = *self.loader;
        let batch_indices = |index: usize| batch_range(index, batch_size, samples).map(|range| &indices[range]);
        let Some(first) = batch_indices(self.next) else {
            return Ok(());
        };
        let features = subset.features();
        current.fill(subset, first, scale, shift);
        // Whatever happens in `step` (an error, a panic), no worker may still be writing into
        // `ahead` once this function is left: `serving` finishes the last job when dropped.
        let _serving = shared.serve();
        let mut index = self.next;
        loop {
            let following = batch_indices(index + 1);
            if let Some(following) = following {
                let x = ahead.prepare(subset, following);
                // SAFETY: this loop is served; the previous job was finished (below, or never
                // published); `subset`, `following` and `ahead` are borrowed until this
                // function returns, and `ahead` is untouched here until `finish` below.
                unsafe { shared.publish(subset, following, x, scale, shift) };
            }
            let result = step(current.batch(features, index));
            shared.finish(result.is_ok());
            result?;
            if following.is_none() {
                return Ok(());
            }
            std::mem::swap(current, ahead);
            index += 1;
        }
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

    /// Runs `f` while `helpers` threads convert pieces of `shared` whenever they can.
    fn with_helpers<R>(shared: &SharedConversion, helpers: usize, f: impl FnOnce() -> R) -> R {
        use std::sync::atomic::{AtomicBool, Ordering};
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|| {
                    while !done.load(Ordering::Acquire) {
                        shared.convert_piece();
                    }
                });
            }
            // The helpers stop even if `f` panics (the scope would wait for them forever).
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            done.store(true, Ordering::Release);
            result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    #[test]
    fn batches_converted_in_shared_pieces_are_those_of_next_batch_and_an_error_stops_them() {
        let s = mnist_like(300, 13, 253);
        let norm = MNIST_LIKE_NORMALIZATION;
        type Batches = Vec<(Vec<u32>, Vec<u8>, usize)>;
        let record = |b: &Batch<'_>| (b.x.iter().map(|v| v.to_bits()).collect(), b.y.to_vec(), b.index);
        // The reference: `next_batch` on this thread, 64 per batch (the last one 44).
        let mut loader = DataLoader::new(&s, &norm, 64, Order::Shuffled { seed: 9 }).unwrap();
        let mut epoch = loader.epoch(1);
        let mut expected: Batches = Vec::new();
        while let Some(b) = epoch.next_batch() {
            expected.push(record(&b));
        }
        assert_eq!(
            expected.iter().map(|b| b.1.len()).collect::<Vec<_>>(),
            vec![64, 64, 64, 64, 44]
        );
        // Batches start on a cache line (what the matrix products load fastest).
        let mut epoch = loader.epoch(1);
        while let Some(b) = epoch.next_batch() {
            assert_eq!(b.x.as_ptr() as usize % 64, 0, "batch {}", b.index);
        }
        // Nobody else converting (the loop does it all), one or two helpers, and a slow step
        // (the helper then converts every piece itself).
        for (helpers, slow) in [(0, false), (1, false), (2, false), (1, true)] {
            let shared = SharedConversion::new();
            let mut loader = DataLoader::new(&s, &norm, 64, Order::Shuffled { seed: 9 }).unwrap();
            let (all, stopped): (Batches, Batches) = with_helpers(&shared, helpers, || {
                let mut all = Vec::new();
                let ok: Result<(), ()> = loader.epoch(1).try_for_each_batch(&shared, |b| {
                    if slow {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    all.push(record(&b));
                    Ok(())
                });
                assert_eq!(ok, Ok(()));
                // An error at the third batch stops the loop there and is returned.
                let mut stopped = Vec::new();
                let err = loader.epoch(1).try_for_each_batch(&shared, |b| {
                    stopped.push(record(&b));
                    if b.index == 2 {
                        Err(b.index)
                    } else {
                        Ok(())
                    }
                });
                assert_eq!(err, Err(2));
                (all, stopped)
            });
            assert_eq!(all, expected, "{helpers} helpers, slow step {slow}");
            assert_eq!(stopped, expected[..3], "{helpers} helpers, slow step {slow}");
        }
    }

    #[test]
    fn a_panicking_step_leaves_no_helper_writing_and_the_next_epoch_is_right() {
        let s = mnist_like(300, 13, 253);
        let norm = MNIST_LIKE_NORMALIZATION;
        let shared = SharedConversion::new();
        let mut loader = DataLoader::new(&s, &norm, 64, Order::Shuffled { seed: 9 }).unwrap();
        let mut expected = Vec::new();
        let mut epoch = loader.epoch(0);
        while let Some(b) = epoch.next_batch() {
            expected.push(b.x.to_owned());
        }
        with_helpers(&shared, 2, || {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = loader.epoch(0).try_for_each_batch(&shared, |b| -> Result<(), ()> {
                    assert!(b.index < 1, "a step that panics");
                    Ok(())
                });
            }));
            assert!(panicked.is_err());
            let mut seen = Vec::new();
            let ok: Result<(), ()> = loader.epoch(0).try_for_each_batch(&shared, |b| {
                seen.push(b.x.to_owned());
                Ok(())
            });
            assert_eq!(ok, Ok(()));
            assert_eq!(seen, expected);
        });
    }

    #[test]
    fn a_shared_conversion_serves_one_loop_at_a_time() {
        let s = mnist_like(300, 13, 253);
        let norm = MNIST_LIKE_NORMALIZATION;
        let shared = SharedConversion::new();
        let mut outer = DataLoader::new(&s, &norm, 64, Order::Shuffled { seed: 9 }).unwrap();
        let mut inner = DataLoader::new(&s, &norm, 64, Order::Shuffled { seed: 9 }).unwrap();
        let mut refused = 0;
        let ok: Result<(), ()> = outer.epoch(0).try_for_each_batch(&shared, |_| {
            let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.epoch(0).try_for_each_batch(&shared, |_| Ok::<(), ()>(()))
            }));
            refused += second.is_err() as usize;
            Ok(())
        });
        assert_eq!(ok, Ok(()));
        assert_eq!(refused, 5, "every batch of the outer loop");
        // Free again once the loop is over.
        assert_eq!(inner.epoch(0).try_for_each_batch(&shared, |_| Ok::<(), ()>(())), Ok(()));
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
