use ndarray::Array2;
use std::time::Instant;
fn main() {
    for &(m, k, n) in &[
        (256usize, 256usize, 256usize),
        (1024, 1024, 1024),
        (64, 784, 50),
        (256, 784, 50),
        (10000, 784, 50),
    ] {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 17) as f32 * 0.1);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 11) % 13) as f32 * 0.1);
        let mut c = Array2::zeros((m, n));
        for threads in [1, 2] {
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).max(3.0) as usize;
            let mut times = vec![];
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..reps {
                    backprop_matmul::gemm_with(
                        backprop_matmul::detect(),
                        threads,
                        1.0,
                        a.view(),
                        b.view(),
                        0.0,
                        c.view_mut(),
                    );
                }
                times.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let gf = 2.0 * (m * n * k) as f64 / times[3] / 1e9;
            let mut c2 = Array2::zeros((m, n));
            let t = Instant::now();
            for _ in 0..reps {
                ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c2);
            }
            let mm = 2.0 * (m * n * k) as f64 / (t.elapsed().as_secs_f64() / reps as f64) / 1e9;
            println!("{m}x{k}x{n} t={threads}: {gf:.0} GFLOP/s   (ndarray/matrixmultiply 1t: {mm:.0})");
        }
    }
}
