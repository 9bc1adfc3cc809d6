//! Keeping a pool's other workers awake through a loop of many small products.
//!
//! A product split over threads hands half of its blocks to another rayon worker. If that
//! worker has gone to sleep (rayon puts idle workers to sleep after a short spin), waking it
//! takes longer than a half of a training step's product (~40 µs here), and the calling thread
//! ends up computing both halves itself. [`with_workers_awake`] keeps the other workers busy
//! polling for work, so they pick up each half at once.
//!
//! **On a busy machine** a polling helper shares its core with other programs. The OS then
//! takes the core away from it for a whole time slice, often while it holds half of a product,
//! and the loop waits for that half: two threads end up slower than one. So the threads watch
//! for it: each adds up the time it was ready to run but waited for a core (the kernel's
//! `run_delay`, from `/proc/thread-self/schedstat` on Linux; elsewhere nothing is measured and
//! nothing changes). When the threads waited for more than a tenth of a stretch of the loop,
//! [`Contention`] [`park`](Helpers::park)s the helpers for a while: they sleep instead of
//! polling, and the loop runs its products unsplit on its own thread meanwhile. Who computes a block never changes how, so none of
//! this changes a bit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Idle polls (a few µs each at most) before a helper also yields its core to the OS on each
/// poll: the gaps between a training step's products are shorter than this.
const SPIN_POLLS: u32 = 2000;

/// How often a polling helper adds its waiting time to [`Helpers::waited`].
const WAIT_CHECK: Duration = Duration::from_millis(2);

/// Nanoseconds this thread has spent ready to run but waiting for a core, when the OS says
/// (Linux: the second field of `/proc/thread-self/schedstat`).
pub fn waited_for_a_core() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().nth(1)?.parse().ok()
}

/// How long a parked helper sleeps between looks at whether it is wanted again.
const PARKED_NAP: Duration = Duration::from_micros(200);

/// What the loop inside [`with_workers_awake_and`] can see of, and ask of, the helpers.
#[derive(Debug, Default)]
pub struct Helpers {
    count: usize,
    done: AtomicBool,
    parked: AtomicBool,
    waited: AtomicU64,
}

impl Helpers {
    /// How many helpers poll (the pool's other workers; 0 outside a pool).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Nanoseconds the helpers have spent so far waiting for a core while they polled.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Parks the helpers (`true`: they sleep, a nap at a time, and run no rayon job) or has
    /// them poll again (`false`). The loop should run its products on one thread meanwhile: a
    /// job offered to a parked pool waits for the loop's own thread to take it back.
    pub fn park(&self, parked: bool) {
        self.parked.store(parked, Ordering::Release);
    }

    /// Whether the helpers are parked.
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// One helper's loop, until `done`.
    fn poll(&self, idle_work: &(dyn Fn() -> bool + Sync)) {
        let mut idle_polls = 0u32;
        let mut last_check = Instant::now();
        let mut waited = waited_for_a_core();
        while !self.done.load(Ordering::Acquire) {
            if self.parked.load(Ordering::Acquire) {
                std::thread::sleep(PARKED_NAP);
                // Waiting while parked is not the loop's concern.
                waited = waited_for_a_core();
                continue;
            }
            if let Some(before) = waited {
                if last_check.elapsed() >= WAIT_CHECK {
                    last_check = Instant::now();
                    let now = waited_for_a_core().unwrap_or(before);
                    self.waited.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
                    waited = Some(now);
                }
            }
            if rayon::yield_now() == Some(rayon::Yield::Executed) || idle_work() {
                idle_polls = 0;
            } else if idle_polls < SPIN_POLLS {
                idle_polls += 1;
                std::hint::spin_loop();
            } else {
                // Long without work: still poll, but let the OS run anything else that wants
                // this core.
                std::thread::yield_now();
            }
        }
    }
}

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
    with_workers_awake_and(&|| false, |_| f())
}

/// [`with_workers_awake`], where a worker that finds no rayon job calls `idle_work` before
/// polling again: a small piece of background work (a few µs at most, so that a product's
/// half is not held up) that returns whether it did anything. The training loop passes the
/// conversion of the next batch this way ([`SharedConversion`](super::SharedConversion)),
/// which the other worker then does in the gaps between its halves of the products. `f` gets
/// the [`Helpers`], to see whether they are being preempted and to park them.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let pieces_left = AtomicUsize::new(100);
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let idle_work = || pieces_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
/// pool.install(|| backprop_train::engine::with_workers_awake_and(&idle_work, |helpers| {
///     assert_eq!(helpers.count(), 1);
///     while pieces_left.load(Ordering::Acquire) > 0 {
///         idle_work(); // the loop may take pieces too
///     }
/// }));
/// assert_eq!(pieces_left.load(Ordering::Acquire), 0);
/// ```
pub fn with_workers_awake_and<R>(idle_work: &(dyn Fn() -> bool + Sync), f: impl FnOnce(&Helpers) -> R) -> R {
    let count = rayon::current_num_threads().saturating_sub(1);
    if count == 0 || rayon::current_thread_index().is_none() {
        return f(&Helpers::default());
    }
    let helpers = Helpers {
        count,
        ..Helpers::default()
    };
    let started = AtomicUsize::new(0);
    // In place: `f` runs on this very thread, so it need not be `Send`.
    rayon::in_place_scope(|scope| {
        for _ in 0..count {
            scope.spawn(|_| {
                started.fetch_add(1, Ordering::AcqRel);
                helpers.poll(idle_work);
            });
        }
        // Every helper must be running on a worker of its own before `f` starts: otherwise
        // this thread, waiting inside `f` for a split product, could take a helper job from
        // its own queue and spin in it forever.
        while started.load(Ordering::Acquire) < count {
            std::hint::spin_loop();
        }
        // Release the helpers even if `f` panics (the scope would wait for them forever).
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _release = Release(&helpers.done);
        f(&helpers)
    })
}

/// When to park the helpers: as soon as the loop's thread and the helpers together waited for
/// a core more than a tenth of a stretch of [`Contention::WINDOW`], for a while that doubles
/// each time it happens again (from [`Contention::FIRST_BACKOFF`] up to
/// [`Contention::LONGEST_BACKOFF`]), and is forgotten after a calm stretch. On an idle machine
/// the threads hardly ever wait, and this costs a clock read per step and a small file read per
/// window.
#[derive(Debug)]
pub struct Contention {
    window_start: Instant,
    /// The loop thread's waiting time and the helpers' at the window's start.
    waited_at_start: Option<(u64, u64)>,
    parked_until: Option<Instant>,
    backoff: Duration,
    calm_since: Instant,
}

impl Default for Contention {
    fn default() -> Self {
        let now = Instant::now();
        Contention {
            window_start: now,
            waited_at_start: None,
            parked_until: None,
            backoff: Self::FIRST_BACKOFF,
            calm_since: now,
        }
    }
}

impl Contention {
    /// The stretch over which waiting is measured.
    pub const WINDOW: Duration = Duration::from_millis(20);
    /// The first time parked.
    pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    /// The longest time parked before the helpers are tried again.
    pub const LONGEST_BACKOFF: Duration = Duration::from_millis(1600);
    /// Polling this long without contention resets the backoff.
    pub const CALM: Duration = Duration::from_secs(2);

    /// Looks at the threads before a step: parks or unparks the helpers as the rule above says.
    pub fn update(&mut self, helpers: &Helpers) {
        if helpers.count() == 0 {
            return;
        }
        let now = Instant::now();
        if let Some(until) = self.parked_until {
            if now < until {
                // (Again: a new set of helpers, in the next epoch, starts unparked.)
                helpers.park(true);
                return;
            }
            // Try them again.
            self.parked_until = None;
            helpers.park(false);
            self.start_window(now, helpers);
            self.calm_since = now;
            return;
        }
        let elapsed = now.duration_since(self.window_start);
        if elapsed < Self::WINDOW {
            return;
        }
        let Some((loop_before, helpers_before)) = self.waited_at_start else {
            return self.start_window(now, helpers);
        };
        let loop_now = waited_for_a_core().unwrap_or(loop_before);
        let waited = loop_now.saturating_sub(loop_before) + helpers.waited().saturating_sub(helpers_before);
        if waited as f64 > 0.1 * elapsed.as_nanos() as f64 {
            helpers.park(true);
            self.parked_until = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(Self::LONGEST_BACKOFF);
        } else if now.duration_since(self.calm_since) > Self::CALM {
            self.backoff = Self::FIRST_BACKOFF;
            self.calm_since = now;
        }
        self.start_window(now, helpers);
    }

    fn start_window(&mut self, now: Instant, helpers: &Helpers) {
        self.window_start = now;
        self.waited_at_start = waited_for_a_core().map(|own| (own, helpers.waited()));
    }
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
            with_workers_awake_and(&idle_work, |_| {
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
        assert_eq!(lonely.install(|| with_workers_awake_and(&count, |_| 7)), 7);
        assert_eq!(calls.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_panic_in_f_does_not_hang() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| with_workers_awake(|| panic!("boom"))));
        assert!(caught.is_err());
    }

    #[test]
    fn this_thread_s_waiting_for_a_core_is_read_where_the_os_says() {
        if cfg!(target_os = "linux") {
            let before = waited_for_a_core().expect("Linux has /proc/thread-self/schedstat");
            assert!(waited_for_a_core().unwrap() >= before);
        }
    }

    #[test]
    fn parked_helpers_take_no_job_and_contention_parks_them_for_a_while() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            with_workers_awake_and(&|| false, |helpers| {
                helpers.park(true);
                assert!(helpers.parked());
                let caller = rayon::current_thread_index();
                // Split work still completes, all of it on this thread.
                for _ in 0..100 {
                    let (a, b) = rayon::join(rayon::current_thread_index, rayon::current_thread_index);
                    assert_eq!((a, b), (caller, caller));
                }
                helpers.park(false);

                // Waiting for a core for a whole window parks them; the backoff then lets them
                // poll again.
                if waited_for_a_core().is_none() {
                    return;
                }
                let mut contention = Contention::default();
                std::thread::sleep(Contention::WINDOW);
                contention.update(helpers); // starts the first measured window
                assert!(!helpers.parked());
                std::thread::sleep(Contention::WINDOW);
                helpers
                    .waited
                    .fetch_add(Contention::WINDOW.as_nanos() as u64, Ordering::Relaxed);
                contention.update(helpers);
                assert!(helpers.parked());
                std::thread::sleep(Contention::FIRST_BACKOFF + Duration::from_millis(10));
                contention.update(helpers);
                assert!(!helpers.parked());
                assert_eq!(contention.backoff, Contention::FIRST_BACKOFF * 2);
            })
        });
    }
}
