//! Splits (train / valid / test) and normalization.
//!
//! Normalization maps a pixel `p` to `(p / scale − mean) / std`, where `mean` and `std` are
//! computed on the **training split only** and then applied to every split. `std` is the
//! unbiased sample standard deviation (`torch.std`):
//!
//! ```text
//! mean = Σ xᵢ / n          std = sqrt( Σ (xᵢ − mean)² / (n − 1) )      xᵢ = pᵢ / scale
//! ```
//!
//! Both are computed exactly from integer sums of the `u8` pixels, so they do not depend on
//! summation order or thread count.

use crate::dataset::{LabelledImages, RawDataset};
use crate::error::{DataError, Result};
use crate::idx::{Images, NUM_CLASSES};

/// How a raw dataset is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitScheme {
    /// The published split: train (all of it, less the last `valid` rows, which become the
    /// validation split when `valid > 0`) and test. Pixels are divided by 255 (torchvision).
    Standard { valid: usize },
    /// fastai's `mnist.pkl.gz`: train = rows 0..50000, valid = rows 50000..60000, pixels
    /// divided by 256; the test split is the published one.
    Fastai,
}

impl SplitScheme {
    /// What pixels are divided by before normalization.
    pub fn scale(&self) -> f64 {
        match self {
            SplitScheme::Standard { .. } => 255.0,
            SplitScheme::Fastai => 256.0,
        }
    }

    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            SplitScheme::Standard { .. } => "standard",
            SplitScheme::Fastai => "fastai",
        }
    }
}

/// Mean and standard deviation used to normalize scaled pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// What pixels are divided by first (255 or 256).
    pub scale: f64,
    pub mean: f64,
    pub std: f64,
}

impl Normalization {
    /// The identity on scaled pixels (`p / scale`).
    pub fn none(scale: f64) -> Self {
        Normalization {
            scale,
            mean: 0.0,
            std: 1.0,
        }
    }

    /// The normalized value of each of the 256 pixel values, computed in f64 and rounded once.
    pub fn lookup_table(&self) -> [f32; 256] {
        std::array::from_fn(|p| ((p as f64 / self.scale - self.mean) / self.std) as f32)
    }

    /// `(a, b)` such that the normalized pixel is `p·a + b` in f32 (what batches use: one
    /// multiply-add per pixel, vectorized). Within 2 ulp of [`Normalization::lookup_table`].
    pub fn affine(&self) -> (f32, f32) {
        let a = 1.0 / (self.scale * self.std);
        ((a) as f32, (-self.mean / self.std) as f32)
    }
}

/// Mean and unbiased std of `pixels / scale`, exactly (integer sums, then one division).
pub fn pixel_stats(pixels: &[u8], scale: f64) -> (f64, f64) {
    let n = pixels.len() as u128;
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (sum, sum_sq) = pixel_sums(pixels);
    let mean = sum as f64 / n as f64 / scale;
    // Σ (p − p̄)² = Σp² − (Σp)²/n, computed as (n·Σp² − (Σp)²) / n with integers.
    let centered = (n * sum_sq - sum * sum) as f64 / n as f64;
    let std = if n > 1 {
        (centered / (n - 1) as f64).sqrt() / scale
    } else {
        f64::NAN
    };
    (mean, std)
}

/// `(Σp, Σp²)` over the pixels, exactly: sums in u32 over chunks small enough not to
/// overflow (4096 · 255² < 2³²), which the compiler vectorizes, then in u128. Where AVX-512
/// is present the same loop is compiled for it (runtime detection); integer sums are exact,
/// so both give the same result.
pub fn pixel_sums(pixels: &[u8]) -> (u128, u128) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { pixel_sums_avx512(pixels) };
    }
    pixel_sums_portable(pixels)
}

/// The portable loop behind [`pixel_sums`].
#[inline(always)]
pub fn pixel_sums_portable(pixels: &[u8]) -> (u128, u128) {
    let (mut sum, mut sum_sq) = (0u128, 0u128);
    for chunk in pixels.chunks(4096) {
        let (mut s, mut s2) = (0u32, 0u32);
        for &p in chunk {
            s += p as u32;
            s2 += p as u32 * p as u32;
        }
        sum += s as u128;
        sum_sq += s2 as u128;
    }
    (sum, sum_sq)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pixel_sums_avx512(pixels: &[u8]) -> (u128, u128) {
    pixel_sums_portable(pixels)
}

/// Pixel statistics after normalization: `((mean − m)/s, std/s)` in closed form.
pub fn normalized_stats(pixels: &[u8], norm: &Normalization) -> (f64, f64) {
    let (mean, std) = pixel_stats(pixels, norm.scale);
    ((mean - norm.mean) / norm.std, std / norm.std)
}

/// One split: images kept as `u8` (4× smaller than f32), with their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subset {
    pub name: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Subset {
    fn from_rows(name: &'static str, data: &LabelledImages, range: std::ops::Range<usize>) -> Self {
        let per = data.images.pixels_per_image();
        Subset {
            name,
            rows: data.images.rows,
            cols: data.images.cols,
            pixels: data.images.pixels[range.start * per..range.end * per].to_vec(),
            labels: data.labels[range].to_vec(),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per example (`rows · cols`).
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of example `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.features();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// How many examples of each class.
    pub fn label_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// As IDX images (for writing back out).
    pub fn to_images(&self) -> Images {
        Images {
            count: self.len(),
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels.clone(),
        }
    }
}

/// A dataset split for training, with the normalization computed on its training split.
#[derive(Clone, Debug)]
pub struct Splits {
    pub dataset: String,
    pub scheme: SplitScheme,
    pub train: Subset,
    pub valid: Option<Subset>,
    pub test: Subset,
    pub normalization: Normalization,
}

impl Splits {
    /// Splits `raw` according to `scheme` and computes the normalization on the training split.
    pub fn new(raw: &RawDataset, scheme: SplitScheme) -> Result<Self> {
        let n = raw.train.labels.len();
        let (train_end, valid) = match scheme {
            SplitScheme::Standard { valid } => (n.checked_sub(valid), valid > 0),
            SplitScheme::Fastai => (if n == 60_000 { Some(50_000) } else { None }, true),
        };
        let train_end = train_end.filter(|&e| e > 0).ok_or_else(|| {
            DataError::Invalid(format!(
                "cannot make the {} split of `{}`: it has {n} training images{}",
                scheme.name(),
                raw.name,
                if scheme == SplitScheme::Fastai {
                    " (fastai's split needs exactly 60000)".to_string()
                } else {
                    " (no training rows would be left)".to_string()
                }
            ))
        })?;
        let train = Subset::from_rows("train", &raw.train, 0..train_end);
        let valid = valid.then(|| Subset::from_rows("valid", &raw.train, train_end..n));
        let test = Subset::from_rows("test", &raw.test, 0..raw.test.labels.len());
        let (mean, std) = pixel_stats(&train.pixels, scheme.scale());
        if std.is_nan() || std <= 0.0 {
            return Err(DataError::Invalid(format!(
                "the training images of `{}` are all one value: they cannot be normalized",
                raw.name
            )));
        }
        Ok(Splits {
            dataset: raw.name.clone(),
            scheme,
            train,
            valid,
            test,
            normalization: Normalization {
                scale: scheme.scale(),
                mean,
                std,
            },
        })
    }

    /// The splits present, in order train, valid, test.
    pub fn subsets(&self) -> impl Iterator<Item = &Subset> {
        std::iter::once(&self.train)
            .chain(self.valid.as_ref())
            .chain(std::iter::once(&self.test))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_a_direct_f64_computation() {
        let pixels: Vec<u8> = (0..1000u32).map(|i| (i * 37 % 256) as u8).collect();
        let xs: Vec<f64> = pixels.iter().map(|&p| p as f64 / 255.0).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        let (m, s) = pixel_stats(&pixels, 255.0);
        assert!((m - mean).abs() < 1e-12 && (s - var.sqrt()).abs() < 1e-12, "{m} {s}");
    }

    #[test]
    fn pixel_sums_are_exact_on_both_paths() {
        // All 255s over several chunks and a ragged tail: the largest sums per chunk.
        for (len, fill) in [
            (0usize, 0u8),
            (1, 255),
            (4095, 255),
            (4096, 255),
            (3 * 4096 + 17, 255),
            (10_001, 7),
        ] {
            let pixels = vec![fill; len];
            let expected = (len as u128 * fill as u128, len as u128 * fill as u128 * fill as u128);
            assert_eq!(pixel_sums(&pixels), expected, "len {len}");
            assert_eq!(pixel_sums_portable(&pixels), expected, "len {len}");
        }
        let mixed: Vec<u8> = (0..50_000u32).map(|i| (i * 151 % 256) as u8).collect();
        let sum: u128 = mixed.iter().map(|&p| p as u128).sum();
        let sum_sq: u128 = mixed.iter().map(|&p| p as u128 * p as u128).sum();
        assert_eq!(pixel_sums(&mixed), (sum, sum_sq));
        assert_eq!(pixel_sums_portable(&mixed), (sum, sum_sq));
    }

    #[test]
    fn affine_matches_the_exact_table() {
        let norm = Normalization {
            scale: 255.0,
            mean: 0.1306604762738429,
            std: 0.30810780385646264,
        };
        let (a, b) = norm.affine();
        for (p, &exact) in norm.lookup_table().iter().enumerate() {
            let fast = p as f32 * a + b;
            assert!(
                (fast - exact).abs() <= 2.0 * f32::EPSILON * exact.abs().max(1.0),
                "{p}: {fast} vs {exact}"
            );
        }
    }

    #[test]
    fn lookup_table_normalizes() {
        let norm = Normalization {
            scale: 255.0,
            mean: 0.5,
            std: 0.25,
        };
        let lut = norm.lookup_table();
        assert_eq!(lut[0], -2.0);
        assert_eq!(lut[255], 2.0);
    }
}
