//! Every kernel against a simple, slow, correct f64 reference: sizes 0..=70 in each dimension
//! (sampled), odd and negative strides, transposed views, α/β cases, and bit-identical results
//! for 1 and 2 threads.

use backprop_matmul::{gemm_with, ladder, Kernel};
use ndarray::{s, Array2, ArrayView2, ShapeBuilder};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

/// `α·A·B + β·C` in f64, and the bound on f32 rounding error for each element.
fn reference(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: &Array2<f32>,
) -> (Array2<f64>, Array2<f64>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut out = Array2::zeros((m, n));
    let mut bound = Array2::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = a[[i, p]] as f64 * b[[p, j]] as f64;
                sum += t;
                abs += t.abs();
            }
            let prior = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[[i, j]] as f64
            };
            out[[i, j]] = alpha as f64 * sum + prior;
            // k roundings of a running f32 sum, plus the merge: a standard bound, doubled.
            bound[[i, j]] =
                2.0 * (k as f64 + 3.0) * f32::EPSILON as f64 * (alpha.abs() as f64 * abs + prior.abs()) + 1e-30;
        }
    }
    (out, bound)
}

fn assert_close(got: &Array2<f32>, want: &Array2<f64>, bound: &Array2<f64>, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for ((idx, &g), (&w, &b)) in got.indexed_iter().zip(want.iter().zip(bound.iter())) {
        assert!(
            (g as f64 - w).abs() <= b,
            "{what}: at {idx:?} got {g}, want {w} (bound {b})"
        );
    }
}

fn supported() -> Vec<Kernel> {
    let kernels: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.is_supported()).collect();
    assert!(kernels.contains(&Kernel::Portable));
    kernels
}

/// Runs one case through every kernel with 1 and 2 blocks and checks it.
fn check(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c0: &Array2<f32>, what: &str) {
    let (want, bound) = reference(alpha, a, b, beta, c0);
    for kernel in supported() {
        let mut c1 = c0.clone();
        gemm_with(kernel, 1, alpha, a, b, beta, c1.view_mut());
        assert_close(&c1, &want, &bound, &format!("{what} {kernel:?}"));
        let mut c2 = c0.clone();
        gemm_with(kernel, 2, alpha, a, b, beta, c2.view_mut());
        assert!(
            c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{what} {kernel:?}: 1 and 2 threads differ"
        );
    }
}

#[test]
fn all_small_sizes_sampled() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sizes: Vec<usize> = (0..=70).collect();
    for &m in &sizes {
        for &n in sizes.iter().filter(|&&n| (n + m) % 7 == 0 || n < 3 || n == 70) {
            let k = (m * 31 + n * 17) % 71;
            let (a, b, c) = (random(m, k, &mut rng), random(k, n, &mut rng), random(m, n, &mut rng));
            check(1.0, a.view(), b.view(), 0.0, &c, &format!("m={m} k={k} n={n}"));
        }
    }
}

#[test]
fn every_k_for_a_fixed_tile() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for k in 0..=70 {
        let (a, b, c) = (
            random(33, k, &mut rng),
            random(k, 11, &mut rng),
            random(33, 11, &mut rng),
        );
        check(1.0, a.view(), b.view(), 0.5, &c, &format!("k={k}"));
    }
}

#[test]
fn beyond_one_block_in_every_loop() {
    // m > MC, k > KC, n > NC: every loop of the nest runs more than once, with ragged edges,
    // and the product is large enough to be split over threads.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (m, k, n) = (300, 530, 2061);
    let (a, b, c) = (random(m, k, &mut rng), random(k, n, &mut rng), random(m, n, &mut rng));
    check(0.75, a.view(), b.view(), -1.5, &c, "large");
}

#[test]
fn transposed_strided_and_negative_stride_views() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let big_a = random(90, 130, &mut rng);
    let big_b = random(140, 95, &mut rng);
    let c = random(37, 41, &mut rng);
    // Column-major views (transposes), every-other-element strides, reversed axes.
    let at = big_a.t(); // 130 × 90
    let cases: Vec<(ArrayView2<f32>, ArrayView2<f32>, &str)> = vec![
        (at.slice(s![..37, ..53]), big_b.slice(s![..53, ..41]), "Aᵀ view"),
        (
            big_a.slice(s![..74;2, ..53]),
            big_b.t().slice_move(s![..53, ..41]),
            "row stride 2, Bᵀ view",
        ),
        (
            big_a.slice(s![..37, ..;2]),
            big_b.slice(s![..65, ..;-2]).slice_move(s![.., ..41]),
            "column stride 2, reversed B",
        ),
        (
            big_a.slice(s![..37;-1, ..53]),
            big_b.slice(s![..53;-1, ..41]),
            "reversed rows",
        ),
    ];
    for (a, b, what) in cases {
        check(1.0, a, b, 0.0, &c, what);
        check(-2.0, a, b, 3.0, &c, what);
    }
    // C itself as a transposed (column-major) view.
    let a = random(37, 20, &mut rng);
    let b = random(20, 41, &mut rng);
    let (want, bound) = reference(1.0, a.view(), b.view(), 0.0, &c);
    for kernel in supported() {
        let mut c_t = Array2::<f32>::zeros((41, 37).f());
        let mut c_view = c_t.view_mut().reversed_axes();
        gemm_with(kernel, 2, 1.0, a.view(), b.view(), 0.0, c_view.view_mut());
        assert_close(&c_view.to_owned(), &want, &bound, &format!("column-major C {kernel:?}"));
    }
}

#[test]
fn beta_zero_overwrites_garbage_and_k_zero_scales() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (a, b) = (random(40, 30, &mut rng), random(30, 12, &mut rng));
    let garbage = Array2::from_elem((40, 12), f32::NAN);
    check(1.0, a.view(), b.view(), 0.0, &Array2::zeros((40, 12)), "β=0");
    for kernel in supported() {
        let mut c = garbage.clone();
        gemm_with(kernel, 1, 1.0, a.view(), b.view(), 0.0, c.view_mut());
        assert!(c.iter().all(|v| v.is_finite()), "{kernel:?}: NaN survived β = 0");
        // k = 0: C ← β·C.
        let mut c = Array2::from_elem((3, 4), 2.0f32);
        gemm_with(
            kernel,
            1,
            1.0,
            Array2::zeros((3, 0)).view(),
            Array2::zeros((0, 4)).view(),
            0.5,
            c.view_mut(),
        );
        assert!(c.iter().all(|&v| v == 1.0));
        let mut c = garbage.slice(s![..3, ..4]).to_owned();
        gemm_with(
            kernel,
            1,
            1.0,
            Array2::zeros((3, 0)).view(),
            Array2::zeros((0, 4)).view(),
            0.0,
            c.view_mut(),
        );
        assert!(c.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn the_network_shapes_are_bit_identical_across_thread_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for (m, k, n) in [
        (64, 784, 50),
        (256, 784, 50),
        (1024, 784, 50),
        (784, 256, 50),
        (50, 1000, 784),
        // The wider networks (256 hidden units): with Bᵀ these take the transposed rows path,
        // split over threads along n.
        (64, 784, 256),
        (100, 784, 256),
        (64, 256, 256),
        (256, 64, 784),
        // The rows path with a dot-product tail (1000 mod 16 = 8 columns), split along n.
        (12, 500, 1000),
        (30, 784, 1000),
    ] {
        let (a, b) = (random(m, k, &mut rng), random(k, n, &mut rng));
        let c = Array2::zeros((m, n));
        check(1.0, a.view(), b.view(), 0.0, &c, &format!("{m}x{k}x{n}"));
        // B as the transposed view of a weight stored [n, k] (x·Wᵀ), and accumulation (β = 1).
        let w = random(n, k, &mut rng);
        let c = random(m, n, &mut rng);
        check(1.0, a.view(), w.t(), 1.0, &c, &format!("{m}x{k}x{n} (Bᵀ view)"));
        // A as the transposed view of a [k, m] array (column-major A: the rows path's remainder
        // then runs with vectors along m).
        let a_stored = random(k, m, &mut rng);
        check(1.0, a_stored.t(), b.view(), 0.0, &c, &format!("{m}x{k}x{n} (Aᵀ view)"));
        // The rows path runs a column-major A in panels of k (the first merges with β, the
        // next add to C): α and β other than 0 and 1 over several panels.
        check(
            -0.5,
            a_stored.t(),
            b.view(),
            2.0,
            &c,
            &format!("{m}x{k}x{n} (Aᵀ view, α, β)"),
        );
        // And through a real rayon pool of each size, via the default entry point.
        let results: Vec<Array2<f32>> = [1, 2]
            .iter()
            .map(|&t| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                pool.install(|| backprop_matmul::matmul(a.view(), b.view()))
            })
            .collect();
        assert!(results[0]
            .iter()
            .zip(&results[1])
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn every_rung_of_the_ladder_agrees_with_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (m, k, n) in [(0, 3, 2), (1, 1, 1), (7, 13, 5), (65, 130, 129), (130, 70, 3)] {
        let (a, b) = (random(m, k, &mut rng), random(k, n, &mut rng));
        let zero = Array2::zeros((m, n));
        let (want, bound) = reference(1.0, a.view(), b.view(), 0.0, &zero);
        let at = a.t().to_owned();
        let a_t_view = at.t(); // a column-major view with the same values
        let bt = b.t().to_owned();
        let b_t_view = bt.t(); // likewise for B (packed through the transposing B pack)
        for (name, f) in [
            (
                "naive_ijk",
                ladder::naive_ijk as fn(ArrayView2<f32>, ArrayView2<f32>) -> Array2<f32>,
            ),
            ("naive_ikj", ladder::naive_ikj),
            ("blocked", ladder::blocked),
            ("blocked_parallel", ladder::blocked_parallel),
            ("packed", ladder::packed),
            ("matmul", backprop_matmul::matmul),
        ] {
            assert_close(&f(a.view(), b.view()), &want, &bound, &format!("{name} {m}x{k}x{n}"));
            assert_close(
                &f(a_t_view, b.view()),
                &want,
                &bound,
                &format!("{name} (Aᵀ view) {m}x{k}x{n}"),
            );
            assert_close(
                &f(a.view(), b_t_view),
                &want,
                &bound,
                &format!("{name} (Bᵀ view) {m}x{k}x{n}"),
            );
        }
    }
}

#[test]
fn matmul_writes_every_element_without_reading_the_new_array() {
    // `matmul` does not zero its output first: it relies on β = 0 storing every element and
    // loading none. Each shape takes a different path (packed with either tile, the unpacked
    // rows, transposed-rows and swapped-rows paths, k = 0, empty); before each product a
    // NaN-filled buffer of the same size is freed, so the new array most likely starts as
    // NaNs, which any read of C (β·C, even with β = 0) would carry into the result.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (m, k, n, b_transposed) in [
        (256, 784, 256, true),
        (1024, 784, 50, true),
        (64, 784, 256, true),
        (64, 784, 50, true),
        (50, 64, 784, false),
        (64, 50, 10, false),
        (33, 17, 45, false),
        (5, 0, 7, false),
        (0, 3, 4, false),
        (3, 3, 0, false),
    ] {
        let a = random(m, k, &mut rng);
        let b_stored = if b_transposed {
            random(n, k, &mut rng)
        } else {
            random(k, n, &mut rng)
        };
        let b = if b_transposed { b_stored.t() } else { b_stored.view() };
        let mut want = Array2::from_elem((m, n), f32::NAN);
        backprop_matmul::gemm(1.0, a.view(), b, 0.0, want.view_mut());
        drop(vec![f32::NAN; m * n]);
        let got = backprop_matmul::matmul(a.view(), b);
        assert_eq!(got.dim(), (m, n));
        assert!(
            got.iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits() && !x.is_nan()),
            "{m}x{k}x{n}"
        );
    }
}

#[test]
#[should_panic(expected = "A's columns must equal B's rows")]
fn mismatched_shapes_name_both() {
    backprop_matmul::matmul(Array2::zeros((2, 3)).view(), Array2::zeros((4, 2)).view());
}

#[test]
fn both_avx512_tiles_give_identical_bits() {
    // The 32 × 10 tile (vectors along m) and the 14 × 32 tile (vectors along n) compute each
    // element as the same chain of fused multiply-adds over the same panels of k, so choosing
    // between them by shape never changes a result.
    if !Kernel::Avx512Wide.is_supported() {
        eprintln!("SKIPPED: no AVX-512 on this CPU");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (m, k, n, beta) in [
        (256, 256, 256, 0.0),
        (45, 800, 77, 1.0),
        (300, 530, 129, -0.5),
        (14, 33, 32, 0.0),
    ] {
        let (a, b, c0) = (random(m, k, &mut rng), random(k, n, &mut rng), random(m, n, &mut rng));
        let bt = b.t().to_owned(); // B as a transposed view too
        for b_view in [b.view(), bt.t()] {
            let mut tall = c0.clone();
            gemm_with(Kernel::Avx512Tall, 2, 1.0, a.view(), b_view, beta, tall.view_mut());
            let mut wide = c0.clone();
            gemm_with(Kernel::Avx512Wide, 1, 1.0, a.view(), b_view, beta, wide.view_mut());
            assert!(
                tall.iter().zip(&wide).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}: the two tiles differ"
            );
        }
    }
}

#[test]
fn panels_of_k_are_balanced_and_cover_k() {
    use backprop_matmul::gemm::panel_depth;
    const KC: usize = 384; // every kernel's
    assert_eq!(panel_depth(784, KC), 272); // 272 + 272 + 240, not 384 + 384 + 16
    assert_eq!(panel_depth(256, KC), 256);
    assert_eq!(panel_depth(0, KC), 1);
    for kc in [16, 96, KC] {
        for k in 1..3000 {
            let depth = panel_depth(k, kc);
            assert!(depth >= 1 && depth <= kc.max(16) && depth <= k, "k={k}: depth {depth}");
            let panels = k.div_ceil(depth);
            assert_eq!(panels, k.div_ceil(kc), "k={k}: as few panels as KC allows");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_larger_shapes(m in 1usize..300, k in 1usize..600, n in 1usize..300, seed in 0u64..1000, beta in prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (a, b, c) = (random(m, k, &mut rng), random(k, n, &mut rng), random(m, n, &mut rng));
        check(1.25, a.view(), b.view(), beta, &c, &format!("{m}x{k}x{n}"));
    }
}
