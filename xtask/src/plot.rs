//! Every picture the runner draws, through plotters: line charts (one or more panels in a
//! figure), the grid of digits and the confusion matrix as a heat map.
//!
//! A picture is drawn twice by the same code, once on plotters' bitmap backend (encoded to PNG
//! here with the `png` crate) and once on its SVG backend, and both files are written
//! atomically with the run folder's `write_atomic`. Text in the PNG comes from DejaVu Sans,
//! compiled into the binary (`assets/DejaVuSans.ttf`, registered with plotters' `ab_glyph`
//! font table), so no system font is ever looked for; the SVG holds `<text>` elements.
//!
//! Ticks are chosen here rather than by plotters: 1-2-5 steps on linear axes, and 1-2-5 or
//! whole decades on log axes, written as decimals (`0.05`, `0.1`, `0.2`) between 1e-4 and 1e6
//! and as `1e-12` beyond, where decimals would not fit.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, ensure, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The font every PNG's text is drawn from.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family our text asks for; it is the only one registered.
const FAMILY: &str = "sans-serif";

/// Ten colours that stay apart on white (matplotlib's `tab10`).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the shipped font under [`FAMILY`] once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ensure!(ok, "the compiled-in font assets/DejaVuSans.ttf did not parse");
    Ok(())
}

fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// What can be drawn on either backend.
pub trait Picture {
    /// Width and height in pixels (the SVG's user units are the same).
    fn size(&self) -> (u32, u32);
    /// Draws onto a white area of [`Picture::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// A picture as PNG bytes and SVG text.
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

/// Draws `picture` on both backends, in memory.
pub fn render(picture: &impl Picture) -> Result<Rendered> {
    register_font()?;
    let (width, height) = picture.size();
    ensure!(width > 0 && height > 0, "a picture of {width}×{height} pixels");
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        picture.draw(&root)?;
        root.present()?;
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        picture.draw(&root)?;
        root.present()?;
    }
    Ok(Rendered { png, svg })
}

/// The two files a picture named `path` is written to: `path` with its `.png` or `.svg`
/// extension replaced by each (or, with any other name, both appended).
pub fn picture_paths(path: &Path) -> [PathBuf; 2] {
    let has_picture_extension = matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "svg")
    );
    let base = if has_picture_extension {
        path.with_extension("")
    } else {
        path.to_path_buf()
    };
    let with = |ext: &str| {
        let mut name = base.clone().into_os_string();
        name.push(".");
        name.push(ext);
        PathBuf::from(name)
    };
    [with("png"), with("svg")]
}

/// Renders `picture` and writes it as PNG and SVG (see [`picture_paths`]). Both are rendered
/// before either is written, and each file is written to a temporary file in its folder and
/// renamed into place, so a failure leaves no partial file behind. Returns the two paths.
pub fn write_picture(path: &Path, picture: &impl Picture) -> Result<[PathBuf; 2]> {
    let rendered = render(picture)?;
    let [png_path, svg_path] = picture_paths(path);
    backprop_train::checkpoint::write_atomic(&png_path, &rendered.png)?;
    backprop_train::checkpoint::write_atomic(&svg_path, rendered.svg.as_bytes())?;
    Ok([png_path, svg_path])
}

/// A named series of (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and pale, under the others (raw per-batch values beside their smoothing).
    pub faint: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            faint: false,
        }
    }

    pub fn faint(mut self) -> Self {
        self.faint = true;
        self
    }
}

/// One line chart: title, axis labels, series and where the legend goes.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// y on a log axis; points with y ≤ 0 are left out.
    pub log_y: bool,
    /// Ticks on x only at whole numbers (epochs, layers).
    pub integer_x: bool,
    pub legend: SeriesLabelPosition,
}

impl Panel {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            log_y: false,
            integer_x: false,
            legend: SeriesLabelPosition::UpperRight,
        }
    }

    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    pub fn integer_x(mut self) -> Self {
        self.integer_x = true;
        self
    }

    pub fn legend(mut self, position: SeriesLabelPosition) -> Self {
        self.legend = position;
        self
    }

    fn usable(&self, &(x, y): &(f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0)
    }

    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| self.usable(p))
    }
}

/// Panels side by side in rows of `columns`, under an optional caption.
pub struct Figure {
    pub caption: Option<String>,
    pub panels: Vec<Panel>,
    pub columns: usize,
    pub size: (u32, u32),
}

impl Picture for Figure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        ensure!(!self.panels.is_empty() && self.columns > 0, "a figure without panels");
        if self.panels.iter().all(|p| p.points().next().is_none()) {
            let titles: Vec<&str> = self.panels.iter().map(|p| p.title.as_str()).collect();
            bail!("nothing to plot: no finite points in {}", titles.join(", "));
        }
        let area = match &self.caption {
            Some(caption) => root.titled(caption, font(28.0))?,
            None => root.clone(),
        };
        let rows = self.panels.len().div_ceil(self.columns);
        let cells = area.split_evenly((rows, self.columns));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            draw_panel(cell, panel)?;
        }
        Ok(())
    }
}

/// `lo..hi` widened so that a single value, or a flat series, still spans an axis.
fn span(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return None;
    }
    Some(if log {
        if hi / lo < 1.5 {
            (lo / 1.25, hi * 1.25)
        } else {
            // A twentieth of the span on either side, as on the linear axes.
            let pad = (hi / lo).powf(0.05);
            (lo / pad, hi * pad)
        }
    } else if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let pad = 0.5 * hi.abs().max(1e-3);
        (lo - pad, hi + pad)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    })
}

/// Ticks at multiples of 1, 2 or 5 × 10^k, about `target` of them in `lo..=hi`.
pub fn linear_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Vec<f64> {
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    if integer {
        step = step.max(1.0).round();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Ticks on a log axis: 1, 2, 5 (or more) per decade when few decades are shown, whole decades
/// (every one, or every second, third, …) when many are, so that about `target` remain.
pub fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let in_range = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let per_decade: &[&[f64]] = &[
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
        &[1.0, 2.0, 3.0, 5.0],
        &[1.0, 2.0, 5.0],
        &[1.0],
    ];
    let dense = if decades < 0.7 {
        0
    } else if decades < 1.2 {
        1
    } else if decades < 2.5 {
        2
    } else {
        3
    };
    for mantissas in &per_decade[dense..] {
        let ticks: Vec<f64> = (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| round_sig(m * 10f64.powi(e))))
            .filter(in_range)
            .collect();
        if ticks.len() >= 2 || mantissas.len() == 1 {
            if mantissas.len() == 1 && ticks.len() > target {
                let every = ticks.len().div_ceil(target);
                return ticks
                    .into_iter()
                    .filter(|t| (t.log10().round() as i64).rem_euclid(every as i64) == 0)
                    .collect();
            }
            if ticks.len() >= 2 {
                return ticks;
            }
        }
    }
    // Less than one tick in a decade of the span: linear ticks, which on a narrow log axis
    // look evenly spaced enough.
    linear_ticks(lo, hi, 4, false)
        .into_iter()
        .filter(|&t| t > 0.0)
        .collect()
}

/// A linear or log axis over `lo..hi` with ticks chosen by [`linear_ticks`] or [`log_ticks`]
/// (plotters' own log ticks are 1, 2, 3, … 9 per decade, or whole decades only).
#[derive(Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Axis {
    fn linear(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Axis {
            lo,
            hi,
            log: false,
            ticks,
        }
    }

    fn log(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Axis {
            lo,
            hi,
            log: true,
            ticks,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = if self.log {
            (value.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (value - self.lo) / (self.hi - self.lo)
        };
        // `as` saturates, and NaN (a log of zero is filtered out before) maps to the start.
        (limit.0 as f64 + t * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `v` to 12 significant digits, so that 3 × 0.1 prints as 0.3.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// A tick's text: a decimal with the digits it needs (`0.05`, `0.2`, `1.5`, `1000`), or
/// `2e-12` style outside 1e-4..1e6.
pub fn tick_label(v: f64) -> String {
    let v = round_sig(v);
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        let text = format!("{v:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    let decimals = (6 - magnitude).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let Some((x0, x1)) = span(panel.points().map(|p| p.0), false) else {
        // An empty panel in a figure that has others: say so where the chart would be.
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            format!("{}: no data", panel.title),
            (w as i32 / 4, h as i32 / 2),
            font(16.0),
        ))?;
        return Ok(());
    };
    let (y0, y1) = span(panel.points().map(|p| p.1), panel.log_y).expect("x had points");
    let x = Axis::linear(x0, x1, linear_ticks(x0, x1, 6, panel.integer_x));
    let y = if panel.log_y {
        Axis::log(y0, y1, log_ticks(y0, y1, 8))
    } else {
        Axis::linear(y0, y1, linear_ticks(y0, y1, 6, false))
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, font(22.0))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(font(16.0))
        .axis_desc_style(font(18.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    // Faint series first, so the others are drawn over them.
    let mut order: Vec<(usize, &Series)> = panel.series.iter().enumerate().collect();
    order.sort_by_key(|(_, s)| !s.faint);
    for (k, series) in order {
        let color = PALETTE[k % PALETTE.len()];
        let points: Vec<(f64, f64)> = series.points.iter().copied().filter(|p| panel.usable(p)).collect();
        let style = if series.faint {
            color.mix(0.35).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        let drawn = chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
        if panel.series.len() > 1 {
            drawn
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        }
        // Few points (one per epoch): mark each, so that a single epoch still shows.
        if points.len() <= 12 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    if panel.series.len() > 1 {
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .label_font(font(16.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
    }
    Ok(())
}

/// Images in a grid, ten to a row, each with its label above it.
pub struct DigitGrid {
    pub title: String,
    /// Image height and width in pixels.
    pub rows: usize,
    pub cols: usize,
    /// (label, pixels row by row, 0 = background).
    pub images: Vec<(u8, Vec<u8>)>,
}

impl DigitGrid {
    const SCALE: usize = 3;
    const LABEL: usize = 20;
    const GAP: usize = 10;
    const TITLE: usize = 40;

    fn cell(&self) -> (usize, usize) {
        (
            self.cols * Self::SCALE + Self::GAP,
            self.rows * Self::SCALE + Self::LABEL + Self::GAP,
        )
    }
}

impl Picture for DigitGrid {
    fn size(&self) -> (u32, u32) {
        let (w, h) = self.cell();
        let per_row = self.images.len().clamp(1, 10);
        let rows = self.images.len().div_ceil(10).max(1);
        (
            (per_row * w + Self::GAP).max(360) as u32,
            (rows * h + Self::TITLE + Self::GAP) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        ensure!(!self.images.is_empty(), "no images to draw");
        ensure!(
            self.rows > 0 && self.cols > 0,
            "images of {}×{} pixels",
            self.rows,
            self.cols
        );
        for (label, pixels) in &self.images {
            ensure!(
                pixels.len() == self.rows * self.cols,
                "an image of label {label} has {} pixels, not {}×{}",
                pixels.len(),
                self.rows,
                self.cols
            );
        }
        let (w, _) = root.dim_in_pixel();
        let title = font(22.0).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ));
        root.draw(&Text::new(self.title.as_str(), (w as i32 / 2, 10), title))?;
        let (cw, ch) = self.cell();
        let s = Self::SCALE as i32;
        let label_style = font(16.0).color(&RGBColor(200, 30, 30));
        for (i, (label, pixels)) in self.images.iter().enumerate() {
            let gx = (i % 10 * cw + Self::GAP) as i32;
            let gy = (i / 10 * ch + Self::TITLE) as i32;
            root.draw(&Text::new(label.to_string(), (gx, gy), label_style.clone()))?;
            let top = gy + Self::LABEL as i32;
            // A thin frame shows where each image ends.
            root.draw(&Rectangle::new(
                [
                    (gx - 1, top - 1),
                    (gx + self.cols as i32 * s, top + self.rows as i32 * s),
                ],
                RGBColor(220, 220, 220),
            ))?;
            // Ink only, as runs of equal pixels, so that the SVG holds one rectangle per run
            // rather than one per pixel.
            for r in 0..self.rows {
                let row = &pixels[r * self.cols..(r + 1) * self.cols];
                let mut c = 0;
                while c < self.cols {
                    let v = row[c];
                    let mut end = c + 1;
                    while end < self.cols && row[end] == v {
                        end += 1;
                    }
                    if v > 0 {
                        let shade = 255 - v;
                        root.draw(&Rectangle::new(
                            [
                                (gx + c as i32 * s, top + r as i32 * s),
                                (gx + end as i32 * s, top + (r as i32 + 1) * s),
                            ],
                            RGBColor(shade, shade, shade).filled(),
                        ))?;
                    }
                    c = end;
                }
            }
        }
        Ok(())
    }
}

/// A confusion matrix as a heat map: cell colour by the share of its row (its true class),
/// the count written in it.
pub struct ConfusionMap {
    pub title: String,
    /// `counts[true][predicted]`, square.
    pub counts: Vec<Vec<usize>>,
}

impl Picture for ConfusionMap {
    fn size(&self) -> (u32, u32) {
        (720, 680)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.counts.len();
        ensure!(n > 0, "an empty confusion matrix");
        ensure!(
            self.counts.iter().all(|row| row.len() == n),
            "the confusion matrix is not square ({n} rows)"
        );
        let classes = n as i32;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22.0))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(56)
            .build_cartesian_2d((0..classes - 1).into_segmented(), (0..classes - 1).into_segmented())?;
        // (A segmented `0..n-1` holds the n segments 0 ..= n-1.) Row 0 at the top, as the matrix
        // is printed: y position r holds true class n-1-r.
        let label = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::CenterOf(c) => (if flip { classes - 1 - c } else { *c }).to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .label_style(font(15.0))
            .axis_desc_style(font(18.0))
            .draw()?;
        for (t, row) in self.counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                // The square root lifts the few mistakes off the white without drowning the
                // diagonal.
                let color = heat(share.sqrt());
                let (x, y) = (p as i32, classes - 1 - t as i32);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                )))?;
                let ink = if share.sqrt() > 0.55 { WHITE } else { BLACK };
                let style = font(15.0).color(&ink).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                )))?;
            }
        }
        Ok(())
    }
}

/// White to dark blue as `t` goes from 0 to 1.
fn heat(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use backprop_train::{BatchInfo, EpochReport, Evaluation};

    /// Decodes `png` and returns its width and height.
    pub(crate) fn png_size(png: &[u8]) -> (u32, u32) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).expect("PNG image data");
        (info.width, info.height)
    }

    /// A light well-formedness check: one `<svg>` root, every tag closed in order, attribute
    /// quotes balanced, and `&` only as an entity.
    pub(crate) fn check_svg(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut rest = svg.trim_start();
        if rest.starts_with("<?xml") {
            rest = &rest[rest.find("?>").expect("the XML declaration ends") + 2..];
        }
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity) || entity.starts_with("&#"),
                    "a bare & in text: {text}"
                );
            }
            let close = rest[open..].find('>').expect("every tag ends") + open;
            let tag = &rest[open + 1..close];
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "</{name}> closes the wrong tag"
                );
            } else if !tag.starts_with('!') {
                let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
                if stack.is_empty() {
                    roots += 1;
                    assert_eq!(name, "svg", "the root element");
                }
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert_eq!(roots, 1, "one root element");
        assert!(rest.trim().is_empty(), "text after the root: {rest}");
    }

    /// What the `<text>` elements of `svg` say, trimmed.
    fn text_contents(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    /// Renders `picture`, checks both outputs, and returns the SVG text.
    pub(crate) fn rendered_svg(picture: &impl Picture, texts: &[&str]) -> String {
        let out = render(picture).expect("renders");
        assert_eq!(png_size(&out.png), picture.size());
        check_svg(&out.svg);
        let (w, h) = picture.size();
        assert!(out.svg.contains(&format!("width=\"{w}\"")) && out.svg.contains(&format!("height=\"{h}\"")));
        let contents = text_contents(&out.svg);
        for text in texts {
            assert!(
                contents.iter().any(|c| c.contains(text)),
                "no <text> holds {text:?}: {contents:?}"
            );
        }
        out.svg
    }

    fn report(epoch: usize, train_loss: f64, loss: f64, accuracy: f64) -> EpochReport {
        EpochReport {
            epoch,
            train_loss,
            valid: Some(Evaluation {
                loss,
                accuracy,
                samples: 10000,
                confusion: Vec::new(),
            }),
            seconds: 0.1,
            samples: 60000,
        }
    }

    fn fixed_curves() -> Figure {
        let reports = vec![
            report(1, 0.27, 0.18, 0.948),
            report(2, 0.14, 0.14, 0.960),
            report(3, 0.098, 0.12, 0.966),
        ];
        let batches: Vec<BatchInfo> = (0..3 * 50)
            .map(|i| BatchInfo {
                epoch: i / 50 + 1,
                batch: i % 50 + 1,
                batches: 50,
                loss: (2.3 * (-(i as f32) / 30.0).exp() + 0.05 + 0.03 * ((i * 7 % 11) as f32 / 11.0)),
                lr: 0.05 * (1.0 + (std::f32::consts::PI * i as f32 / 150.0).cos()) / 2.0,
                samples: 64,
            })
            .collect();
        crate::train::curves_figure("training curves: fixed", &reports, &batches, "valid")
    }

    #[test]
    fn tick_labels_are_decimals() {
        let cases = [
            (0.05, "0.05"),
            (0.1, "0.1"),
            (0.2, "0.2"),
            (0.1 + 0.2, "0.3"),
            (1.5, "1.5"),
            (2.0, "2"),
            (1000.0, "1000"),
            (0.0001, "0.0001"),
            (0.0, "0"),
            (-0.5, "-0.5"),
            (1e-12, "1e-12"),
            (2e15, "2e15"),
        ];
        for (v, text) in cases {
            assert_eq!(tick_label(v), text, "{v}");
        }
    }

    #[test]
    fn log_ticks_are_one_two_five_or_decades() {
        assert_eq!(log_ticks(0.03, 0.6, 8), vec![0.05, 0.1, 0.2, 0.5]);
        assert_eq!(log_ticks(0.066, 0.27, 8), vec![0.07, 0.1, 0.15, 0.2]);
        assert_eq!(log_ticks(0.04, 3.0, 8), vec![0.05, 0.1, 0.2, 0.5, 1.0, 2.0]);
        let wide = log_ticks(1e-39, 1e15, 8);
        assert!(wide.len() >= 2 && wide.len() <= 8, "{wide:?}");
        assert!(
            wide.iter().all(|t| (t.log10() - t.log10().round()).abs() < 1e-9),
            "{wide:?}"
        );
        // Less than a decade: still at least two ticks, all inside.
        let narrow = log_ticks(0.21, 0.29, 8);
        assert!(
            narrow.len() >= 2 && narrow.iter().all(|t| (0.21..=0.29).contains(t)),
            "{narrow:?}"
        );
    }

    #[test]
    fn linear_ticks_step_by_one_two_five() {
        assert_eq!(
            linear_ticks(0.0, 1.0, 5, false),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(linear_ticks(0.75, 6.25, 6, true), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(linear_ticks(0.5, 1.5, 6, true), vec![1.0]);
    }

    #[test]
    fn picture_paths_pair_png_and_svg() {
        let p = |s: &str| picture_paths(Path::new(s)).map(|p| p.display().to_string());
        assert_eq!(p("a/digits.png"), ["a/digits.png", "a/digits.svg"]);
        assert_eq!(p("digits.SVG"), ["digits.png", "digits.svg"]);
        assert_eq!(p("run.1"), ["run.1.png", "run.1.svg"]);
    }

    #[test]
    fn training_curves_render() {
        rendered_svg(
            &fixed_curves(),
            &[
                "training curves: fixed",
                "loss per batch",
                "loss per epoch",
                "valid accuracy per epoch",
                "learning rate",
                "step",
                "epoch",
                "loss (log scale)",
                "smoothed (EMA 0.98)",
                "valid (end of epoch)",
            ],
        );
    }

    #[test]
    fn deep_stack_renders() {
        let curves: Vec<(bool, String, Vec<f64>)> = [
            (false, "kaiming", 1.4f64),
            (false, "xavier", 1.0),
            (true, "kaiming", 1.0),
            (true, "normal x 0.01", 0.1),
        ]
        .into_iter()
        .map(|(relu, name, factor)| (relu, name.to_string(), (1..=20).map(|l| factor.powi(l)).collect()))
        .collect();
        let figure = crate::init_stats::deep_stack_figure(20, 512, &curves);
        rendered_svg(
            &figure,
            &[
                "deep stack",
                "x ← a·x",
                "x ← relu(a·x)",
                "layer",
                "std of activations (log scale)",
                "normal x 0.01",
            ],
        );
    }

    #[test]
    fn digit_grid_renders() {
        let images = (0..13u8)
            .map(|d| {
                (
                    d % 10,
                    (0..28 * 28).map(|i| ((i * (d as usize + 1)) % 256) as u8).collect(),
                )
            })
            .collect();
        let grid = DigitGrid {
            title: "the first 13 train digits".into(),
            rows: 28,
            cols: 28,
            images,
        };
        assert_eq!(grid.size(), (10 * (28 * 3 + 10) + 10, 2 * (28 * 3 + 30) + 50));
        rendered_svg(&grid, &["the first 13 train digits"]);
    }

    #[test]
    fn confusion_map_renders() {
        rendered_svg(
            &fixed_confusion(),
            &[
                "mnist test: confusion matrix",
                "predicted class",
                "true class",
                "959",
                "0",
            ],
        );
    }

    #[test]
    fn empty_data_is_an_error() {
        let empty = Figure {
            caption: None,
            panels: vec![Panel::new("t", "x", "y").series(Series::new("s", vec![(1.0, f64::NAN)]))],
            columns: 1,
            size: (400, 300),
        };
        let err = render(&empty).err().expect("nothing to plot");
        assert!(err.to_string().contains("nothing to plot"), "{err}");
        let no_epochs = crate::train::curves_figure("c", &[], &[], "valid");
        assert!(render(&no_epochs).is_err());
        let grid = DigitGrid {
            title: "none".into(),
            rows: 28,
            cols: 28,
            images: Vec::new(),
        };
        assert!(render(&grid).is_err());
        let short = DigitGrid {
            title: "short".into(),
            rows: 28,
            cols: 28,
            images: vec![(1, vec![0; 10])],
        };
        assert!(render(&short).err().unwrap().to_string().contains("10 pixels"));
        let map = ConfusionMap {
            title: "ragged".into(),
            counts: vec![vec![1, 2], vec![3]],
        };
        assert!(render(&map).err().unwrap().to_string().contains("not square"));
    }

    #[test]
    fn an_unwritable_folder_is_an_error_and_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("backprop-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A file where the folder should be: no user, root included, can write under it.
        let blocker = dir.join("not-a-folder");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_picture(&blocker.join("curves.png"), &fixed_curves()).expect_err("fails");
        assert!(format!("{err:#}").contains("not-a-folder"), "{err:#}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("not-a-folder")]);
        // And a folder that can be written gets both files, and no temporary one.
        let [png, svg] = write_picture(&dir.join("curves.png"), &fixed_curves()).unwrap();
        assert_eq!(png_size(&std::fs::read(png).unwrap()), (1200, 860));
        check_svg(&std::fs::read_to_string(svg).unwrap());
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["curves.png", "curves.svg", "not-a-folder"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes every picture from fixed data to `$BACKPROP_PICTURES` (a folder), to be looked
    /// at; without the variable it does nothing.
    #[test]
    fn write_fixed_pictures_when_asked() {
        let Some(dir) = std::env::var_os("BACKPROP_PICTURES") else {
            return;
        };
        let dir = PathBuf::from(dir);
        write_picture(&dir.join("fixed-curves.png"), &fixed_curves()).unwrap();
        write_picture(&dir.join("fixed-confusion.png"), &fixed_confusion()).unwrap();
    }

    fn fixed_confusion() -> ConfusionMap {
        let counts: Vec<Vec<usize>> = (0..10)
            .map(|t| {
                (0..10)
                    .map(|p| if t == p { 950 + t } else { (t * 3 + p) % 7 })
                    .collect()
            })
            .collect();
        ConfusionMap {
            title: "mnist test: confusion matrix".into(),
            counts,
        }
    }
}
