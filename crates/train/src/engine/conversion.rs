//! The next batch's conversion, in pieces that otherwise idle threads take one at a time.
//!
//! A training step on two threads leaves the second one idle between its halves of the
//! products (the elementwise layers, the loss and the small products run on the first). A
//! [`SharedConversion`] lets it spend those gaps converting the next batch: the loop publishes
//! the conversion, cut into pieces of [`ROWS_PER_PIECE`] rows; an idle worker takes a piece
//! with [`SharedConversion::convert_piece`] (a few µs, so a product's half is never held up for
//! long); when the step ends, the loop converts whatever pieces are left itself and waits for
//! those in progress. Each value depends on its pixel only, so who converts which piece changes
//! no bit.
//!
//! ```text
//! claim word:  next piece (high 32 bits) | pieces (low 32 bits)
//! worker:      CAS next → next + 1 while next < pieces, convert that piece, finished += 1
//! loop:        publish (job, then word = 0 | pieces) … step … finish (word = pieces | pieces,
//!              convert the pieces never claimed, wait until finished = pieces claimed,
//!              then word = 0 | 0: no job)
//! ```

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use backprop_data::{convert_rows, Batch, BatchBuffer, Epoch, Subset};

/// Rows of a batch per piece: a piece of 784-pixel images takes a worker a microsecond or two.
pub const ROWS_PER_PIECE: usize = 4;

/// What to convert: pointers into the loader's buffers and the subset, valid from `publish`
/// until the `finish` that follows it (the loop holds the borrows meanwhile).
#[derive(Clone, Copy)]
struct Job {
    subset: *const Subset,
    indices: *const u32,
    rows: usize,
    x: *mut f32,
    scale: f32,
    shift: f32,
}

/// The next batch's conversion, shared between the training loop's thread and idle workers.
/// See the [module docs](self).
pub struct SharedConversion {
    /// `next << 32 | pieces`: the next piece to hand out and how many the job has.
    claim: AtomicU64,
    /// Pieces converted by workers (not by the loop itself) since the job was published.
    finished: AtomicUsize,
    job: UnsafeCell<Job>,
    /// Whether a loop is publishing jobs (one at a time: see [`SharedConversion::serve`]).
    serving: AtomicBool,
}

/// A loop's exclusive use of a [`SharedConversion`]; ends when dropped, after finishing the
/// job in progress without converting the rest (the loop is leaving, by an error or a panic
/// perhaps), so that no worker writes into its buffers afterwards.
pub(crate) struct Serving<'s>(&'s SharedConversion);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.finish(false);
        self.0.serving.store(false, Ordering::Release);
    }
}

// SAFETY: `job` is written only by `publish`, when no piece is claimed and unfinished (the
// previous `finish` waited for all of them); it is read only after a successful claim, which
// synchronizes with that write (Release store of the claim word, AcqRel CAS). Each claimed
// piece writes rows of `x` no other piece writes, and `finish` makes those writes visible to
// the loop (Release increment of `finished`, Acquire load).
unsafe impl Sync for SharedConversion {}
unsafe impl Send for SharedConversion {}

impl Default for SharedConversion {
    fn default() -> Self {
        SharedConversion {
            claim: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            job: UnsafeCell::new(Job {
                subset: std::ptr::null(),
                indices: std::ptr::null(),
                rows: 0,
                x: std::ptr::null_mut(),
                scale: 1.0,
                shift: 0.0,
            }),
            serving: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for SharedConversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (next, pieces) = unpack(self.claim.load(Ordering::Relaxed));
        f.debug_struct("SharedConversion")
            .field("next", &next)
            .field("pieces", &pieces)
            .finish()
    }
}

fn pack(next: usize, pieces: usize) -> u64 {
    ((next as u64) << 32) | pieces as u64
}

fn unpack(word: u64) -> (usize, usize) {
    ((word >> 32) as usize, (word & 0xffff_ffff) as usize)
}

impl SharedConversion {
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one piece of the published batch, if one is left; returns whether it did.
    /// For idle workers: cheap when there is nothing to do (one atomic load).
    pub fn convert_piece(&self) -> bool {
        let mut word = self.claim.load(Ordering::Acquire);
        loop {
            let (next, pieces) = unpack(word);
            if next >= pieces {
                return false;
            }
            match self
                .claim
                .compare_exchange_weak(word, pack(next + 1, pieces), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: a claimed piece of the published job (see the `Sync` impl).
                    unsafe { self.convert(next) };
                    self.finished.fetch_add(1, Ordering::Release);
                    return true;
                }
                Err(current) => word = current,
            }
        }
    }

    /// Starts a loop's use: jobs from two loops at once would overwrite each other.
    ///
    /// # Panics
    /// When another loop is using it.
    pub(crate) fn serve(&self) -> Serving<'_> {
        let busy = self.serving.swap(true, Ordering::AcqRel);
        assert!(!busy, "a SharedConversion serves one loop at a time");
        Serving(self)
    }

    /// Offers the conversion of the examples `indices` of `subset` into `x` (`indices.len()`
    /// rows of `subset.features()` values) to [`convert_piece`](Self::convert_piece).
    ///
    /// # Safety
    /// The caller is the loop [`serve`](Self::serve)d; the previous job, if any, has been
    /// [`finish`](Self::finish)ed; `subset`, `indices` and `x` stay valid, and `x` is neither
    /// read nor written elsewhere, until the next `finish`.
    pub(crate) unsafe fn publish(&self, subset: &Subset, indices: &[u32], x: &mut [f32], scale: f32, shift: f32) {
        assert_eq!(x.len(), indices.len() * subset.features(), "a row of x per example");
        let pieces = indices.len().div_ceil(ROWS_PER_PIECE);
        assert!(pieces < 1 << 32, "at most 2³² pieces");
        // SAFETY: no worker reads the job now (the caller finished the previous one).
        unsafe {
            *self.job.get() = Job {
                subset,
                indices: indices.as_ptr(),
                rows: indices.len(),
                x: x.as_mut_ptr(),
                scale,
                shift,
            }
        };
        self.finished.store(0, Ordering::Relaxed);
        self.claim.store(pack(0, pieces), Ordering::Release);
    }

    /// Completes the published job: claims every piece not yet claimed, converts them on this
    /// thread (or skips them when `convert_rest` is false, for a loop that is giving up), and
    /// waits for the pieces workers are converting. Afterwards no worker touches the job's
    /// buffers. Does nothing when nothing was published.
    pub(crate) fn finish(&self, convert_rest: bool) {
        // Only `next` changes between publish and finish.
        let (_, pieces) = unpack(self.claim.load(Ordering::Relaxed));
        let (claimed_by_workers, _) = unpack(self.claim.swap(pack(pieces, pieces), Ordering::AcqRel));
        if convert_rest {
            for piece in claimed_by_workers..pieces {
                // SAFETY: this thread claimed these pieces by the swap above.
                unsafe { self.convert(piece) };
            }
        }
        while self.finished.load(Ordering::Acquire) < claimed_by_workers {
            std::hint::spin_loop();
        }
        // No job: a second `finish` has nothing to wait for.
        self.claim.store(pack(0, 0), Ordering::Relaxed);
    }

    /// Converts rows `piece · ROWS_PER_PIECE ..` of the job.
    ///
    /// # Safety
    /// The piece is claimed by this thread and the job is valid (see the `Sync` impl).
    unsafe fn convert(&self, piece: usize) {
        // SAFETY: the caller's guarantee; the rows of one piece are written by it alone.
        unsafe {
            let job = *self.job.get();
            let subset = &*job.subset;
            let features = subset.features();
            let indices = std::slice::from_raw_parts(job.indices, job.rows);
            let start = piece * ROWS_PER_PIECE;
            let end = (start + ROWS_PER_PIECE).min(job.rows);
            let x = std::slice::from_raw_parts_mut(job.x.add(start * features), (end - start) * features);
            convert_rows(subset, x, &indices[start..], end - start, job.scale, job.shift);
        }
    }
}

/// Runs `step` on each remaining batch of `epoch`, in order, stopping at the first error, while
/// the next batch is converted in pieces through `shared` into the other of two `buffers`:
/// threads with nothing else to do take pieces ([`SharedConversion::convert_piece`]), and what
/// is left when `step` returns is converted on this thread. The batches are exactly those of
/// [`Epoch::next_batch`]; only who converts them changes. With nobody else calling
/// `convert_piece` it is the plain loop, converting each batch after the step before.
pub fn for_each_batch<E>(
    epoch: &Epoch<'_, '_>,
    shared: &SharedConversion,
    buffers: &mut [BatchBuffer; 2],
    mut step: impl FnMut(Batch<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let subset = epoch.subset();
    let (scale, shift) = epoch.affine();
    let mut index = epoch.next_index();
    let Some(first) = epoch.batch_indices(index) else {
        return Ok(());
    };
    let features = subset.features();
    let [current, ahead] = buffers;
    current.fill(subset, first, scale, shift);
    // Whatever happens in `step` (an error, a panic), no worker may still be writing into
    // `ahead` once this function is left: `serving` finishes the last job when dropped.
    let _serving = shared.serve();
    loop {
        let following = epoch.batch_indices(index + 1);
        if let Some(following) = following {
            let x = ahead.prepare(subset, following);
            // SAFETY: this loop is served; the previous job was finished (below, or never
            // published); `subset`, `following` and `ahead` are borrowed until this function
            // returns, and `ahead` is untouched here until `finish` below.
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

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_data::{DataLoader, Normalization, Order};

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
                let ok: Result<(), ()> = for_each_batch(&loader.epoch(1), &shared, &mut Default::default(), |b| {
                    if slow {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    all.push(record(&b));
                    Ok(())
                });
                assert_eq!(ok, Ok(()));
                // An error at the third batch stops the loop there and is returned.
                let mut stopped = Vec::new();
                let err = for_each_batch(&loader.epoch(1), &shared, &mut Default::default(), |b| {
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
                let _ = for_each_batch(
                    &loader.epoch(0),
                    &shared,
                    &mut Default::default(),
                    |b| -> Result<(), ()> {
                        assert!(b.index < 1, "a step that panics");
                        Ok(())
                    },
                );
            }));
            assert!(panicked.is_err());
            let mut seen = Vec::new();
            let ok: Result<(), ()> = for_each_batch(&loader.epoch(0), &shared, &mut Default::default(), |b| {
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
        let ok: Result<(), ()> = for_each_batch(&outer.epoch(0), &shared, &mut Default::default(), |_| {
            let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for_each_batch(&inner.epoch(0), &shared, &mut Default::default(), |_| Ok::<(), ()>(()))
            }));
            refused += second.is_err() as usize;
            Ok(())
        });
        assert_eq!(ok, Ok(()));
        assert_eq!(refused, 5, "every batch of the outer loop");
        // Free again once the loop is over.
        assert_eq!(
            for_each_batch(&inner.epoch(0), &shared, &mut Default::default(), |_| Ok::<(), ()>(())),
            Ok(())
        );
    }
}
