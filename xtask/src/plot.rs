//! Just enough drawing for our pictures: an RGB canvas, lines, rectangles, a 3×5 pixel font,
//! line charts with axes and legends, and a grid of digits. Written to PNG atomically.

use std::path::Path;

use anyhow::Result;
use backprop_data::Subset;

pub type Rgb = [u8; 3];

pub const PALETTE: [Rgb; 12] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [0, 0, 0],
    [120, 200, 120],
];

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Canvas {
            width,
            height,
            pixels: background.iter().copied().cycle().take(width * height * 3).collect(),
        }
    }

    pub fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, color);
            }
        }
    }

    /// A line two pixels thick (Bresenham).
    pub fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = ((x0 + t * (x1 - x0)).round() as i64, (y0 + t * (y1 - y0)).round() as i64);
            self.rect(x, y, 2, 2, color);
        }
    }

    /// Text in the 3×5 font at `scale` pixels per font pixel; returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, color: Rgb) -> i64 {
        let mut cx = x;
        for ch in text.chars() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for c in 0..3 {
                    if bits & (0b100 >> c) != 0 {
                        self.rect(cx + c * scale, y + r as i64 * scale, scale, scale, color);
                    }
                }
            }
            cx += 4 * scale;
        }
        cx - x
    }

    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("in-memory PNG header");
            writer.write_image_data(&self.pixels).expect("in-memory PNG data");
        }
        out
    }
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * 4 * scale
}

/// The 3×5 font: five rows of three bits. Letters are drawn as capitals.
fn glyph(ch: char) -> [u8; 5] {
    match ch.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 2, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        ',' => [0, 0, 0, 2, 4],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '%' => [5, 1, 2, 4, 5],
        '/' => [1, 1, 2, 4, 4],
        ':' => [0, 2, 0, 2, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        '_' => [0, 0, 0, 0, 7],
        '^' => [2, 5, 0, 0, 0],
        _ => [0, 0, 0, 0, 0],
    }
}

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with axes, tick labels, a title and a legend. `log_y` draws y on a log10 axis
/// (non-positive and non-finite values are left out).
pub fn line_chart(title: &str, x_label: &str, series: &[Series], log_y: bool, width: usize, height: usize) -> Canvas {
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    let (left, right, top, bottom) = (70.0, width as f64 - 20.0, 40.0, height as f64 - 50.0);
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| usable(p)).map(|&(x, y)| (x, ty(y))))
        .collect();
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if pts.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (right - left);
    let py = |y: f64| bottom - (y - y0) / (y1 - y0) * (bottom - top);
    let (ink, grid) = ([40, 40, 40], [225, 225, 225]);
    for i in 0..=5 {
        let v = y0 + (y1 - y0) * i as f64 / 5.0;
        canvas.line((left, py(v)), (right, py(v)), grid);
        let label = if log_y { format!("1E{v:.1}") } else { format!("{v:.3}") };
        canvas.text(
            left as i64 - 6 - text_width(&label, 2),
            py(v) as i64 - 5,
            &label,
            2,
            ink,
        );
        let xv = x0 + (x1 - x0) * i as f64 / 5.0;
        let label = format!("{xv:.0}");
        canvas.text(
            px(xv) as i64 - text_width(&label, 2) / 2,
            bottom as i64 + 8,
            &label,
            2,
            ink,
        );
    }
    canvas.line((left, top), (left, bottom), ink);
    canvas.line((left, bottom), (right, bottom), ink);
    canvas.text(left as i64, 12, title, 3, ink);
    canvas.text(
        ((left + right) / 2.0) as i64 - text_width(x_label, 2) / 2,
        bottom as i64 + 28,
        x_label,
        2,
        ink,
    );
    for (k, s) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| usable(p))
            .map(|&(x, y)| (px(x), py(ty(y))))
            .collect();
        for w in points.windows(2) {
            canvas.line(w[0], w[1], color);
        }
        if points.len() == 1 {
            canvas.rect(points[0].0 as i64 - 2, points[0].1 as i64 - 2, 5, 5, color);
        }
        let ly = top as i64 + 8 + 16 * k as i64;
        let lx = right as i64 - 10 - text_width(&s.name, 2) - 24;
        canvas.rect(lx, ly + 3, 18, 4, color);
        canvas.text(lx + 24, ly, &s.name, 2, ink);
    }
    canvas
}

/// The first `count` images of `subset`, ten to a row, each with its label above it.
pub fn digit_grid(subset: &Subset, count: usize) -> Canvas {
    let (scale, cell_w, cell_h) = (3usize, subset.cols * 3 + 8, subset.rows * 3 + 22);
    let cols = count.min(10);
    let rows = count.div_ceil(10);
    let mut canvas = Canvas::new(cols * cell_w + 8, rows * cell_h + 8, [255, 255, 255]);
    for i in 0..count {
        let (gx, gy) = ((i % 10 * cell_w + 8) as i64, (i / 10 * cell_h + 8) as i64);
        canvas.text(gx, gy, &subset.labels[i].to_string(), 2, [200, 30, 30]);
        for r in 0..subset.rows {
            for c in 0..subset.cols {
                let v = 255 - subset.image(i)[r * subset.cols + c];
                canvas.rect(
                    gx + (c * scale) as i64,
                    gy + 14 + (r * scale) as i64,
                    scale as i64,
                    scale as i64,
                    [v, v, v],
                );
            }
        }
    }
    canvas
}

/// Encodes and writes a PNG atomically.
pub fn write_png_atomic(path: &Path, canvas: &Canvas) -> Result<()> {
    backprop_train::checkpoint::write_atomic(path, &canvas.to_png())?;
    Ok(())
}
