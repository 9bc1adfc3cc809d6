//! Keeping a pool's other workers awake through a loop of many small products.
//!
//! A product split over threads hands half of its blocks to another rayon worker. If that
//! worker has gone to sleep (rayon puts idle workers to sleep after a short spin), waking it
//! takes longer than a half of a training step's product (~40 µs here), and the calling thread
//! ends up computing both halves itself. [`with_workers_awake`] keeps the other workers busy
//! polling for work, so they pick up each half at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Idle polls (a few µs each at most) before a helper also yields its core to the OS on each
/// poll: the gaps between a training step's products are shorter than this.
const SPIN_POLLS: u32 = 2000;

/// Runs `f` on this thread while every other worker of the current rayon pool polls for work
/// (`rayon::yield_now`) instead of sleeping. Returns what `f` returns.
///
/// Use it around a loop that calls many products from inside a pool, e.g. a training epoch in
/// `pool.install(|| with_workers_awake(|| ...))`. The other workers spin at 100% CPU until `f`
/// returns: that is the price of a quick start for each split product. Outside a pool, or in a
/// pool of one thread, it just runs `f`. It does not change any result (who computes a block
/// never changes how).
///
/// ```
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let total = pool.install(|| backprop_train::engine::with_workers_awake(|| (1..=10).sum::<u32>()));
/// assert_eq!(total, 55);
/// ```
pub fn with_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    with_workers_awake_and(&|| false, f)
}

/// [`with_workers_awake`], where a worker that finds no rayon job calls `idle_work` before
/// polling again: a small piece of background work (a few µs at most, so that a product's
/// half is not held up) that returns whether it did anything. The training loop passes the
/// conversion of the next batch this way ([`SharedConversion`](super::SharedConversion)), which the other
/// worker then does in the gaps between its halves of the products.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let pieces_left = AtomicUsize::new(100);
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let idle_work = || pieces_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
/// pool.install(|| backprop_train::engine::with_workers_awake_and(&idle_work, || {
///     while pieces_left.load(Ordering::Acquire) > 0 {
///         idle_work(); // the loop may take pieces too
///     }
/// }));
/// assert_eq!(pieces_left.load(Ordering::Acquire), 0);
/// ```
pub fn with_workers_awake_and<R>(idle_work: &(dyn Fn() -> bool + Sync), f: impl FnOnce() -> R) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 || rayon::current_thread_index().is_none() {
        return f();
    }
    let done = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    // In place: `f` runs on this very thread, so it need not be `Send`.
    rayon::in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                started.fetch_add(1, Ordering::AcqRel);
                let mut idle_polls = 0u32;
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) || idle_work() {
                        idle_polls = 0;
                    } else if idle_polls < SPIN_POLLS {
                        idle_polls += 1;
                        std::hint::spin_loop();
                    } else {
                        // Long without work: still poll, but let the OS run anything else
                        // that wants this core (on a busy machine spinning would steal it).
                        std::thread::yield_now();
                    }
                }
            });
        }
        // Every helper must be running on a worker of its own before `f` starts: otherwise
        // this thread, waiting inside `f` for a split product, could take a helper job from
        // its own queue and spin in it forever.
        while started.load(Ordering::Acquire) < helpers {
            std::hint::spin_loop();
        }
        // Release the helpers even if `f` panics (the scope would wait for them forever).
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _release = Release(&done);
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_f_and_releases_the_helpers() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let sum = pool.install(|| {
                with_workers_awake(|| {
                    // Split work still runs, on the helpers too.
                    let (a, b) = rayon::join(|| (0..1000u64).sum::<u64>(), || (1000..2000u64).sum::<u64>());
                    a + b
                })
            });
            assert_eq!(sum, (0..2000u64).sum::<u64>());
        }
        // Outside any pool it simply runs.
        assert_eq!(with_workers_awake(|| 7), 7);
    }

    #[test]
    fn idle_helpers_do_the_idle_work_while_f_waits_for_it() {
        use std::sync::atomic::AtomicUsize;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let pieces_done = AtomicUsize::new(0);
        let idle_work = || pieces_done.fetch_add(1, Ordering::AcqRel) < 1000;
        pool.install(|| {
            with_workers_awake_and(&idle_work, || {
                // Only the helper calls `idle_work`: wait until it has, many times (or give up
                // after 10 s, and fail below).
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while pieces_done.load(Ordering::Acquire) < 1000 && std::time::Instant::now() < deadline {
                    std::hint::spin_loop();
                }
            })
        });
        assert!(
            pieces_done.load(Ordering::Acquire) >= 1000,
            "the helper never did the idle work"
        );
        // With no other worker the work is never offered, and f simply runs.
        let lonely = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let calls = AtomicUsize::new(0);
        let count = || {
            calls.fetch_add(1, Ordering::AcqRel);
            false
        };
        assert_eq!(lonely.install(|| with_workers_awake_and(&count, || 7)), 7);
        assert_eq!(calls.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_panic_in_f_does_not_hang() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| with_workers_awake(|| panic!("boom"))));
        assert!(caught.is_err());
    }
}
