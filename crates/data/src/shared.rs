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

use crate::loader::convert_rows;
use crate::split::Subset;

/// Rows of a batch per piece: a piece of 784-pixel images takes a worker 1-2 µs in training.
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
