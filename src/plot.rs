//! PNG figures for the experiment commands: line plots (alone or as panels side by side),
//! grouped bar charts, heatmaps, and contour plots of a function of two variables with
//! optimiser paths drawn over it.
//!
//! Every figure is drawn with `plotters` into an RGB buffer and written as PNG with `image`.
//! Text uses an embedded subset of DejaVu Sans (`assets/fonts/`, Bitstream Vera licence, see
//! `assets/fonts/LICENSE-DejaVu.txt`), so no system font and no fontconfig are needed.
//!
//! Data is never trusted: non-finite points (and points ≤ 0 on a log axis) are skipped, lines
//! break where a point is skipped, a plot with nothing to draw still writes a figure that says
//! "no data", and axis ranges are padded so that a single point or constant values still draw.
//! Every error names the output file.
//!
//! ```no_run
//! use wgtrain::plot::{LinePlot, Scale, Series};
//! # fn main() -> wgtrain::Result<()> {
//! let plot = LinePlot {
//!     title: "Validation loss by batch size (momentum, 10 epochs)".into(),
//!     x_label: "epoch".into(),
//!     y_label: "cross-entropy loss (nats)".into(),
//!     y_scale: Scale::Log10,
//!     series: vec![Series::new("batch 32", vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.4)])],
//!     markers: true,
//!     ..LinePlot::default()
//! };
//! plot.save(std::path::Path::new("loss.png"))?;
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use plotters::chart::SeriesAnno;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// Size of a single figure in pixels (width, height).
const SIZE: (u32, u32) = (1000, 650);
/// Font family every text is drawn in; the embedded font is registered under this name.
const FAMILY: &str = "sans-serif";
/// DejaVu Sans, cut down to Latin, Greek and common symbols (see `assets/fonts/`).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");
/// Series colours (Tableau 10): distinct, and readable on white.
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
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT: RGBColor = RGBColor(240, 240, 240);
const MISSING: RGBColor = RGBColor(205, 205, 205);
const GOLD: RGBColor = RGBColor(255, 200, 0);

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Equal distances for equal differences.
    #[default]
    Linear,
    /// Equal distances for equal ratios, ticks at powers of two (batch sizes). Points with a
    /// value ≤ 0 on this axis are skipped.
    Log2,
    /// Equal distances for equal ratios, ticks at powers of ten (learning rates, losses).
    /// Points with a value ≤ 0 on this axis are skipped.
    Log10,
}

/// One named line of a [`LinePlot`] (or one path of a [`ContourPlot`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Name shown in the legend; an empty name leaves the series out of the legend.
    pub name: String,
    /// The points (x, y), drawn in this order. Non-finite points are skipped and break the line.
    pub points: Vec<(f64, f64)>,
    /// Half-width of an error bar for each point (± this much around y), drawn as vertical
    /// error bars. Entries that are missing, negative or not finite draw no bar.
    pub err: Option<Vec<f64>>,
    /// Draw the line dashed (e.g. training curves next to solid validation curves).
    pub dashed: bool,
}

impl Series {
    /// A solid series without error bars.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, err: None, dashed: false }
    }

    /// The same series with error bars of these half-widths, one per point.
    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.err = Some(err);
        self
    }

    /// The same series drawn dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// Lines on shared axes, one colour per series, with a legend. Written by [`LinePlot::save`]
/// alone, or with others side by side by [`save_panels`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinePlot {
    /// What ran, on top of the figure.
    pub title: String,
    /// Label of the x axis, with its unit ("epoch", "batch size (samples)").
    pub x_label: String,
    /// Label of the y axis, with its unit ("validation accuracy (%)").
    pub y_label: String,
    /// Scale of the x axis.
    pub x_scale: Scale,
    /// Scale of the y axis.
    pub y_scale: Scale,
    /// The lines, coloured in order from a palette of 10 distinct colours (repeating after).
    pub series: Vec<Series>,
    /// Draw a dot at every point (points that have no neighbour to join are always dotted).
    pub markers: bool,
}

impl LinePlot {
    /// Writes the plot as a 1000×650 PNG to `path` (the folder must exist).
    pub fn save(&self, path: &Path) -> Result<()> {
        render(path, SIZE, |root| {
            let area = draw_title(root, &self.title, FONTS.title)?;
            draw_line_plot(&area, self, &FONTS)
        })
    }
}

/// Writes several line plots side by side in one row under one overall `title`, each panel
/// with its own title, axes and legend (e.g. loss and accuracy of the same runs). The figure is
/// 650 pixels high and 1000 wide, or 520 per panel when there are more than two.
pub fn save_panels(path: &Path, title: &str, panels: &[LinePlot]) -> Result<()> {
    save_panels_with_colours(path, title, panels, &[])
}

/// [`save_panels`], with the colour of each series chosen: series `k` of every panel is drawn in
/// palette colour `colours[k]` (series beyond the list take their own index), so that two
/// series of one run (training solid, validation dashed) share a colour.
pub fn save_panels_with_colours(path: &Path, title: &str, panels: &[LinePlot], colours: &[usize]) -> Result<()> {
    let n = panels.len().max(1);
    let width = (520 * n as u32).clamp(SIZE.0, 8000);
    let pick = |i: usize| colour(colours.get(i).copied().unwrap_or(i));
    render(path, (width, SIZE.1), |root| {
        let area = draw_title(root, title, FONTS.title)?;
        if panels.is_empty() {
            return note_in_area(&area, "no data: no panels");
        }
        for (cell, plot) in area.split_evenly((1, n)).iter().zip(panels) {
            let cell = draw_title(cell, &plot.title, PANEL_FONTS.title)?;
            draw_line_plot_with(&cell, plot, &PANEL_FONTS, &pick)?;
        }
        Ok(())
    })
}

/// One bar of a [`BarPlot`] group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bar {
    /// The category on the x axis this bar belongs to ("fold 1", "SGD").
    pub label: String,
    /// Height of the bar. A non-finite value draws no bar.
    pub value: f64,
    /// Half-width of an error bar (± this much), if any.
    pub err: Option<f64>,
}

/// Grouped bars: one bar per group for each category, categories on the x axis in order of
/// first appearance, groups told apart by colour and legend. Each bar is labelled with its value
/// when there is room.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarPlot {
    /// What ran, on top of the figure.
    pub title: String,
    /// Label of the y axis, with its unit.
    pub y_label: String,
    /// Groups: (name in the legend, bars). A single group with an empty name has no legend.
    pub groups: Vec<(String, Vec<Bar>)>,
}

impl BarPlot {
    /// Writes the chart as a 1000×650 PNG to `path`. Long category labels are shrunk, then
    /// turned vertical and shortened with "…" if they still do not fit.
    pub fn save(&self, path: &Path) -> Result<()> {
        render(path, SIZE, |root| {
            let area = draw_title(root, &self.title, FONTS.title)?;
            draw_bar_plot(&area, self)
        })
    }
}

/// A grid of values as coloured cells, each printed with its value (3 significant digits),
/// with a colour bar labelled with [`Heatmap::value_label`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    /// What ran, on top of the figure.
    pub title: String,
    /// Label of the x axis (the columns), with its unit.
    pub x_label: String,
    /// Label of the y axis (the rows), with its unit.
    pub y_label: String,
    /// Names of the columns, left to right (missing names are numbered).
    pub x_ticks: Vec<String>,
    /// Names of the rows, bottom to top (missing names are numbered).
    pub y_ticks: Vec<String>,
    /// `values[row][column]`; row 0 is drawn at the bottom (y grows upwards, as on any plot).
    /// Short rows are padded, and non-finite values are drawn grey and printed as such.
    pub values: Vec<Vec<f64>>,
    /// What the values are, with their unit ("test accuracy (%)"): the colour bar's label.
    pub value_label: String,
    /// Decimals of the numbers printed in the cells (0 is printed "0"); `None`: 3 significant
    /// digits.
    pub decimals: Option<usize>,
}

impl Heatmap {
    /// Writes the heatmap as a 1000×650 PNG to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        render(path, SIZE, |root| {
            let area = draw_title(root, &self.title, FONTS.title)?;
            draw_heatmap(&area, self)
        })
    }
}

/// What the cells of a confusion-matrix figure ([`save_confusion`]) show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConfusionCells {
    /// Images per (true, predicted) pair.
    Counts,
    /// Share of each true class's images, in % (rows sum to 100): readable when the classes
    /// are of different sizes.
    #[default]
    RowPercent,
}

/// Writes a confusion matrix as a 1000×650 heatmap PNG: `confusion[true][predicted]` image
/// counts, true classes down the left (the first on top), predicted classes along the bottom,
/// both named by `classes` (numbered where missing), the value in each cell where it fits, and
/// a colour bar. A true class without images is drawn grey in [`ConfusionCells::RowPercent`].
pub fn save_confusion(path: &Path, title: &str, classes: &[String], confusion: &[Vec<usize>], cells: ConfusionCells) -> Result<()> {
    let n = confusion.len().max(confusion.iter().map(Vec::len).max().unwrap_or(0));
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    let row = |r: usize| -> Vec<f64> {
        let counts: Vec<f64> = (0..n).map(|c| confusion.get(r).and_then(|row| row.get(c)).copied().unwrap_or(0) as f64).collect();
        let total: f64 = counts.iter().sum();
        match cells {
            ConfusionCells::Counts => counts,
            ConfusionCells::RowPercent => counts.iter().map(|v| if total > 0.0 { 100.0 * v / total } else { f64::NAN }).collect(),
        }
    };
    // The heatmap draws row 0 at the bottom; a confusion matrix reads from the top.
    Heatmap {
        title: title.to_string(),
        x_label: "predicted class".into(),
        y_label: "true class".into(),
        x_ticks: (0..n).map(name).collect(),
        y_ticks: (0..n).rev().map(name).collect(),
        values: (0..n).rev().map(row).collect(),
        value_label: match cells {
            ConfusionCells::Counts => "images".into(),
            ConfusionCells::RowPercent => "share of the true class's images (%)".into(),
        },
        decimals: Some(match cells {
            ConfusionCells::Counts => 0,
            ConfusionCells::RowPercent => 1,
        }),
    }
    .save(path)
}

/// A function of two variables as filled colour bands with iso-lines between them, with paths
/// (optimiser trajectories) and marked points drawn over it.
pub struct ContourPlot<'a> {
    /// What ran, on top of the figure.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The x range shown (both ends finite).
    pub x_range: (f64, f64),
    /// The y range shown (both ends finite).
    pub y_range: (f64, f64),
    /// The function, evaluated on a grid of about one point per 4 pixels. Non-finite values
    /// are drawn grey.
    pub f: &'a dyn Fn(f64, f64) -> f64,
    /// Space the 12 levels geometrically between the minimum and the maximum of `f` (for
    /// functions like losses that span orders of magnitude) instead of evenly.
    pub log_levels: bool,
    /// Paths drawn as lines with a dot at every point and a ring at the start; the parts
    /// outside the ranges are cut off.
    pub paths: Vec<Series>,
    /// Named points (the minimum, ...) drawn as stars with their name beside them.
    pub marks: Vec<(String, (f64, f64))>,
}

impl ContourPlot<'_> {
    /// Writes the plot as a 1000×650 PNG to `path`. An error if a range is not finite.
    pub fn save(&self, path: &Path) -> Result<()> {
        for (name, (a, b)) in [("x_range", self.x_range), ("y_range", self.y_range)] {
            if !a.is_finite() || !b.is_finite() {
                return Err(Error::Invalid(format!("{}: contour plot: {name} ({a}, {b}) must be finite", path.display())));
            }
        }
        render(path, SIZE, |root| {
            let area = draw_title(root, &self.title, FONTS.title)?;
            draw_contour(&area, self)
        })
    }
}

/// Lines of text to write centred in a box of an image (the caption under a tile).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Caption {
    /// Left edge of the box, in pixels.
    pub x: u32,
    /// Top edge of the box, in pixels.
    pub y: u32,
    /// Width of the box: longer lines are shrunk (down to 10 pixels) and then cut with "…".
    pub width: u32,
    /// The lines, top to bottom, one every [`CAPTION_LINE`] pixels.
    pub lines: Vec<String>,
    /// Colour of the text.
    pub rgb: [u8; 3],
}

/// Height of one line of a [`Caption`], in pixels.
pub const CAPTION_LINE: u32 = 14;

/// Writes `captions` onto `img` with the embedded font. An error (never a panic) if text cannot
/// be drawn.
pub fn draw_captions(img: &mut image::RgbImage, captions: &[Caption]) -> Result<()> {
    ensure_font();
    let (w, h) = img.dimensions();
    let drawn = catch_unwind(AssertUnwindSafe(|| -> DrawResult {
        let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
        for c in captions {
            let max_w = c.width.saturating_sub(4) as f64;
            for (i, line) in c.lines.iter().enumerate() {
                let px = fit_font(&root, line, 12.0, max_w)?;
                let text = shorten(&root, line, px, max_w)?;
                let ink = RGBColor(c.rgb[0], c.rgb[1], c.rgb[2]);
                let style = font(px).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                let centre = ((c.x + c.width / 2) as i32, (c.y + CAPTION_LINE * i as u32 + CAPTION_LINE / 2) as i32);
                root.draw(&Text::new(text, centre, style))?;
            }
        }
        root.present()?;
        Ok(())
    }));
    match drawn {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Invalid(format!("drawing captions: {e}"))),
        Err(_) => Err(Error::Invalid("drawing captions: the text renderer panicked".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>;
type DrawResult<T = ()> = std::result::Result<T, Box<dyn StdError>>;

/// Font sizes of one figure, in pixels.
struct Fonts {
    title: f64,
    desc: f64,
    tick: f64,
    legend: f64,
}

// Even sizes: plotters' ab_glyph text puts the baseline at size / 2 rounded towards zero,
// which shifts some glyphs by a pixel at odd sizes.
const FONTS: Fonts = Fonts { title: 24.0, desc: 18.0, tick: 14.0, legend: 14.0 };
const PANEL_FONTS: Fonts = Fonts { title: 20.0, desc: 16.0, tick: 14.0, legend: 14.0 };

/// Registers the embedded font under [`FAMILY`], once per process.
fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // A font that does not parse would make every text fail to draw: an error, no panic.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Draws into a white `width`×`height` RGB buffer and writes it to `path` as PNG. Errors, and
/// panics inside the drawing code, come back as errors that name `path`.
fn render(path: &Path, (width, height): (u32, u32), draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<()> {
    ensure_font();
    let failed = |why: String| Error::Invalid(format!("{}: drawing the figure: {why}", path.display()));
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    let drawn = catch_unwind(AssertUnwindSafe(|| -> DrawResult {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    }));
    match drawn {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(panic) => {
            let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            return Err(failed(format!("panicked: {}", why.unwrap_or_default())));
        }
    }
    let img = image::RgbImage::from_raw(width, height, buf).ok_or_else(|| failed("image buffer has the wrong size".into()))?;
    // Encoded in memory, then written atomically: a reader never sees half a PNG.
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| failed(format!("encoding the PNG: {e}")))?;
    crate::atomic::write(path, &png)
}

/// `px` rounded down to an even size (see [`FONTS`]).
fn even(px: f64) -> f64 {
    (px / 2.0).floor() * 2.0
}

fn font(px: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, px).into_font())
}

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn text_width(area: &Area<'_>, text: &str, px: f64) -> DrawResult<f64> {
    Ok(area.estimate_text_size(text, &font(px))?.0 as f64)
}

/// The largest even size ≤ `px` (down to 10) at which `text` is at most `max_w` pixels wide.
fn fit_font(area: &Area<'_>, text: &str, px: f64, max_w: f64) -> DrawResult<f64> {
    let mut px = even(px);
    while px > 10.0 && text_width(area, text, px)? > max_w {
        px -= 2.0;
    }
    Ok(px)
}

/// `text`, cut in the middle with "…" so that it is at most `max_w` pixels wide at size `px`
/// (the ends of names usually tell them apart: "… fold 3").
fn shorten(area: &Area<'_>, text: &str, px: f64, max_w: f64) -> DrawResult<String> {
    if text_width(area, text, px)? <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for n in (1..chars.len()).rev() {
        let (head, tail) = (n.div_ceil(2), n / 2);
        let cut: String = chars[..head].iter().chain(['…'].iter()).chain(chars[chars.len() - tail..].iter()).collect();
        if text_width(area, &cut, px)? <= max_w {
            return Ok(cut);
        }
    }
    Ok("…".to_string())
}

/// Draws `title` (one or more lines) centred on top of `area` and returns the area below it.
fn draw_title<'a>(area: &Area<'a>, title: &str, px: f64) -> DrawResult<Area<'a>> {
    let (w, _) = area.dim_in_pixel();
    let lines: Vec<&str> = title.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Ok(area.margin(8, 0, 0, 0));
    }
    let mut size = px;
    for line in &lines {
        size = size.min(fit_font(area, line, px, w as f64 - 24.0)?);
    }
    let line_h = (size * 1.3).ceil() as i32;
    let height = line_h * lines.len() as i32 + 14;
    let (top, rest) = area.split_vertically(height);
    let style = font(size).pos(Pos::new(HPos::Center, VPos::Center));
    for (i, line) in lines.iter().enumerate() {
        top.draw(&Text::new(line.to_string(), (w as i32 / 2, 10 + line_h * i as i32 + line_h / 2), style.clone()))?;
    }
    Ok(rest)
}

/// Writes `text` in the middle of `area`.
fn note_in_area(area: &Area<'_>, text: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let style = font(20.0).color(&RGBColor(90, 90, 90)).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text.to_string(), (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

/// Writes `text` in the middle of a chart's plotting area.
fn note_in_chart(chart: &mut Chart<'_, '_>, text: &str) -> DrawResult {
    let (xs, ys) = (chart.as_coord_spec().x_spec().clone(), chart.as_coord_spec().y_spec().clone());
    let centre = (xs.inv((xs.t.0 + xs.t.1) / 2.0), ys.inv((ys.t.0 + ys.t.1) / 2.0));
    let style = font(20.0).color(&RGBColor(90, 90, 90)).pos(Pos::new(HPos::Center, VPos::Center));
    chart.draw_series(std::iter::once(Text::new(text.to_string(), centre, style)))?;
    Ok(())
}

/// Draws the legend of `chart` with the series labels it has, in the corner of the plotting
/// area where the fewest `samples` (positions in 0..1, y upwards) are.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, area: &Area<'_>, names: &[&str], samples: &[(f64, f64)], px: f64) -> DrawResult {
    if names.is_empty() {
        return Ok(());
    }
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let mut widest = 0.0f64;
    for name in names {
        widest = widest.max(text_width(area, name, px)?);
    }
    let bw = ((widest + 60.0) / pw.max(1) as f64).min(1.0);
    let bh = ((names.len() as f64 * (px + 8.0) + 20.0) / ph.max(1) as f64).min(1.0);
    let corners = [
        (SeriesLabelPosition::UpperRight, (1.0 - bw, 1.0), (1.0 - bh, 1.0)),
        (SeriesLabelPosition::UpperLeft, (0.0, bw), (1.0 - bh, 1.0)),
        (SeriesLabelPosition::LowerRight, (1.0 - bw, 1.0), (0.0, bh)),
        (SeriesLabelPosition::LowerLeft, (0.0, bw), (0.0, bh)),
    ];
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, (x0, x1), (y0, y1)) in corners {
        let n = samples.iter().filter(|(x, y)| *x >= x0 && *x <= x1 && *y >= y0 && *y <= y1).count();
        if n < best.0 {
            best = (n, pos);
        }
    }
    chart
        .configure_series_labels()
        .position(best.1)
        .margin(12)
        .legend_area_size(30)
        .border_style(RGBColor(150, 150, 150))
        .background_style(WHITE.mix(0.9))
        .label_font(font(px))
        .draw()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Axes

/// An axis: a scale, a range (stored transformed: log2 or log10 of the values on log axes),
/// and either automatic ticks or fixed, named ones (categories, colour-bar levels).
#[derive(Clone, Debug)]
struct Axis {
    scale: Scale,
    /// Transformed bounds, `t.0 < t.1`, both finite.
    t: (f64, f64),
    /// Fixed ticks (position, label); `None` for automatic ones.
    ticks: Option<Vec<(f64, String)>>,
    /// Most automatic major ticks.
    max_ticks: usize,
}

fn valid(scale: Scale, v: f64) -> bool {
    v.is_finite() && (scale == Scale::Linear || v > 0.0)
}

fn fwd(scale: Scale, v: f64) -> f64 {
    match scale {
        Scale::Linear => v,
        Scale::Log2 => v.log2(),
        Scale::Log10 => v.log10(),
    }
}

impl Axis {
    /// An axis over the transformed range `t0..t1`, padded if it is empty or not finite.
    fn from_t(scale: Scale, t0: f64, t1: f64, max_ticks: usize) -> Axis {
        let limit = 1e300;
        let (t0, t1) = (t0.clamp(-limit, limit), t1.clamp(-limit, limit));
        let (mut lo, mut hi) = if t0 <= t1 { (t0, t1) } else { (t1, t0) };
        if lo.is_nan() || hi.is_nan() {
            (lo, hi) = (0.0, 1.0);
        }
        let mag = lo.abs().max(hi.abs());
        if hi - lo <= mag * 1e-9 {
            let d = match scale {
                Scale::Linear if mag > 0.0 => mag * 0.1,
                Scale::Linear => 1.0,
                Scale::Log2 => 1.0,
                Scale::Log10 => 0.5,
            };
            (lo, hi) = (lo - d, hi + d);
        }
        Axis { scale, t: (lo.clamp(-limit, limit), hi.clamp(-limit, limit)), ticks: None, max_ticks }
    }

    /// An axis over the data range `lo..hi` exactly (padded only if empty).
    fn exact(scale: Scale, lo: f64, hi: f64, max_ticks: usize) -> Axis {
        let t = |v: f64| if valid(scale, v) { fwd(scale, v) } else { f64::NAN };
        Axis::from_t(scale, t(lo), t(hi), max_ticks)
    }

    /// An axis that shows all valid `values`, with 5% room on both sides.
    fn auto(scale: Scale, values: impl IntoIterator<Item = f64>, max_ticks: usize) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            if valid(scale, v) {
                let t = fwd(scale, v);
                if t.is_finite() {
                    lo = lo.min(t);
                    hi = hi.max(t);
                }
            }
        }
        if lo > hi {
            return Axis::from_t(scale, 0.0, 1.0, max_ticks);
        }
        let pad = 0.05 * hi - 0.05 * lo; // finite even when hi - lo is not
        Axis::from_t(scale, lo - pad, hi + pad, max_ticks)
    }

    /// Categories 0..n at integer positions, named by `names` (numbered where missing).
    fn categories(n: usize, names: &[String]) -> Axis {
        let ticks = (0..n).map(|i| (i as f64, names.get(i).cloned().unwrap_or_else(|| i.to_string()))).collect();
        Axis { scale: Scale::Linear, t: (-0.5, n.max(1) as f64 - 0.5), ticks: Some(ticks), max_ticks: n }
    }

    fn inv(&self, t: f64) -> f64 {
        match self.scale {
            Scale::Linear => t,
            Scale::Log2 => t.exp2(),
            Scale::Log10 => 10f64.powf(t),
        }
    }

    fn lo(&self) -> f64 {
        self.inv(self.t.0)
    }

    fn hi(&self) -> f64 {
        self.inv(self.t.1)
    }

    /// Position of `v` along the axis, 0 at the low end and 1 at the high end (NaN if invalid).
    fn frac(&self, v: f64) -> f64 {
        if valid(self.scale, v) {
            (fwd(self.scale, v) - self.t.0) / (self.t.1 - self.t.0)
        } else {
            f64::NAN
        }
    }

    fn contains(&self, v: f64) -> bool {
        let f = self.frac(v);
        (-1e-9..=1.0 + 1e-9).contains(&f)
    }

    /// `v` moved into the range (the low end for values a log axis cannot show).
    fn clamp(&self, v: f64) -> f64 {
        if !valid(self.scale, v) {
            return if v == f64::INFINITY { self.hi() } else { self.lo() };
        }
        self.inv(fwd(self.scale, v).clamp(self.t.0, self.t.1))
    }

    fn majors(&self) -> Vec<f64> {
        if let Some(ticks) = &self.ticks {
            return ticks.iter().map(|(v, _)| *v).collect();
        }
        match self.scale {
            Scale::Linear => linear_ticks(self.t.0, self.t.1, self.max_ticks).0,
            Scale::Log2 | Scale::Log10 => self.log_ticks().0,
        }
    }

    fn minors(&self) -> Vec<f64> {
        if self.ticks.is_some() {
            return vec![];
        }
        match self.scale {
            Scale::Linear => {
                let (_, step) = linear_ticks(self.t.0, self.t.1, self.max_ticks);
                let lead = (step / 10f64.powf((step.log10() + 1e-9).floor())).round();
                let minor = step / if lead == 5.0 { 5.0 } else { 2.0 };
                linear_ticks_step(self.t.0, self.t.1, minor)
            }
            Scale::Log10 => {
                let (_, stride) = self.log_ticks();
                if stride != 1.0 {
                    return vec![];
                }
                let (lo, hi) = (self.lo(), self.hi());
                let mut out = vec![];
                let mut k = self.t.0.floor();
                while k <= self.t.1 && out.len() < 500 {
                    for m in 2..=9 {
                        let v = m as f64 * 10f64.powf(k);
                        if v >= lo && v <= hi {
                            out.push(v);
                        }
                    }
                    k += 1.0;
                }
                out
            }
            Scale::Log2 => vec![],
        }
    }

    /// Major ticks of a log axis and the stride between their exponents (0 when the range is
    /// too short for two powers and the ticks fall back to round numbers).
    fn log_ticks(&self) -> (Vec<f64>, f64) {
        let (t0, t1) = self.t;
        let k0 = (t0 - 1e-9).ceil();
        let k1 = (t1 + 1e-9).floor();
        if k1 - k0 >= 1.0 {
            let count = k1 - k0 + 1.0;
            let stride = (count / self.max_ticks.max(2) as f64).ceil().max(1.0);
            let mut k = (k0 / stride).ceil() * stride;
            let mut out = vec![];
            while k <= k1 && out.len() < 200 {
                out.push(self.inv(k));
                k += stride;
            }
            if out.len() >= 2 {
                return (out, stride);
            }
        }
        let (lo, hi) = (self.lo(), self.hi());
        if self.scale == Scale::Log10 {
            let mut out = vec![];
            let mut k = t0.floor();
            while k <= t1.ceil() {
                for m in [1.0, 2.0, 5.0] {
                    let v = m * 10f64.powf(k);
                    if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                        out.push(v);
                    }
                }
                k += 1.0;
            }
            if out.len() >= 2 {
                return (out, 0.0);
            }
        }
        (linear_ticks(lo, hi, self.max_ticks.min(6)).0, 0.0)
    }

    /// Text of the tick at `v`.
    fn label(&self, v: f64) -> String {
        if let Some(ticks) = &self.ticks {
            return ticks.iter().find(|(p, _)| (p - v).abs() < 1e-6).map(|(_, s)| s.clone()).unwrap_or_default();
        }
        match self.scale {
            Scale::Linear => {
                let (_, step) = linear_ticks(self.t.0, self.t.1, self.max_ticks);
                linear_label(v, step, self.t.0.abs().max(self.t.1.abs()))
            }
            Scale::Log2 | Scale::Log10 => {
                let (name, keep) = if self.scale == Scale::Log2 { ("2^", -4..=16) } else { ("1e", -3..=4) };
                let k = fwd(self.scale, v);
                if (k - k.round()).abs() < 1e-9 {
                    let k = k.round() as i64;
                    if keep.contains(&k) {
                        fmt_num(v)
                    } else {
                        format!("{name}{k}")
                    }
                } else {
                    fmt_num(v)
                }
            }
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = self.frac(*v);
        let f = if f.is_nan() { -1.0 } else { f };
        let px = limit.0 as f64 + f * (limit.1 - limit.0) as f64;
        px.clamp(-1e7, 1e7).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let mut points = self.majors();
        if hint.weight().allow_light_points() {
            points.extend(self.minors());
        }
        points
    }

    fn range(&self) -> Range<f64> {
        self.lo()..self.hi()
    }
}

/// Round ticks (1, 2 or 5 times a power of ten apart) in `lo..=hi`, at most `max` of them,
/// and their step.
fn linear_ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (vec![], 1.0);
    }
    let max = max.clamp(2, 50) as f64;
    let span = hi - lo;
    let mut mag = 10f64.powf((span / max).log10().floor());
    let mut step = mag;
    'search: for _ in 0..4 {
        for m in [1.0, 2.0, 5.0] {
            step = m * mag;
            if (hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil() < max {
                break 'search;
            }
        }
        mag *= 10.0;
    }
    (linear_ticks_step(lo, hi, step), step)
}

fn linear_ticks_step(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step.is_finite() && step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return vec![];
    }
    let k0 = (lo / step - 1e-9).ceil();
    let k1 = (hi / step + 1e-9).floor();
    if k1 - k0 >= 1000.0 || k1.is_nan() || k0.is_nan() {
        return vec![];
    }
    let mut out = vec![];
    let mut k = k0;
    while k <= k1 {
        out.push(k * step);
        k += 1.0;
    }
    out
}

/// A linear tick label: as many decimals as the step needs, or scientific for huge or tiny
/// numbers.
fn linear_label(v: f64, step: f64, max_abs: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v == 0.0 {
        return "0".to_string();
    }
    let step_exp = (step.log10() + 1e-9).floor();
    if max_abs >= 1e5 || step < 1e-4 {
        let digits = ((max_abs.log10() + 1e-9).floor() - step_exp).clamp(0.0, 6.0) as usize;
        let s = format!("{v:.digits$e}");
        return s;
    }
    let decimals = (-step_exp).clamp(0.0, 12.0) as usize;
    format!("{v:.decimals$}")
}

/// A number with up to 6 significant digits, trailing zeros dropped; scientific outside
/// 1e-4..1e6.
fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_sig(v, 3);
    }
    let e = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&e) {
        let s = format!("{v:.3e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') { mant.trim_end_matches('0').trim_end_matches('.') } else { mant };
        return format!("{mant}e{exp}");
    }
    let decimals = (5 - e).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `v` with `sig` significant digits (scientific below 1e-3 and from 1e5).
fn fmt_sig(v: f64, sig: usize) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sig = sig.max(1);
    let e = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&e) {
        return format!("{v:.prec$e}", prec = sig - 1);
    }
    let decimals = (sig as i32 - 1 - e).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Colour of `t` in 0..1 on the viridis colour map (dark blue to yellow).
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 };
    let x = t * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round().clamp(0.0, 255.0) as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// `c` mixed with white: `amount` 0 keeps it, 1 is white.
fn lighten(c: RGBColor, amount: f64) -> RGBColor {
    let l = |v: u8| (v as f64 + (255.0 - v as f64) * amount).round() as u8;
    RGBColor(l(c.0), l(c.1), l(c.2))
}

fn is_dark(c: RGBColor) -> bool {
    0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64 <= 140.0
}

// ---------------------------------------------------------------------------------------------
// Lines

/// The runs of consecutive valid points of `points` (a point with a coordinate that is not
/// finite, or ≤ 0 on a log axis, ends a run and is dropped), with their error half-widths.
fn runs(s: &Series, xs: Scale, ys: Scale) -> Vec<Vec<(f64, f64, Option<f64>)>> {
    let mut out = vec![];
    let mut run = vec![];
    for (i, &(x, y)) in s.points.iter().enumerate() {
        if valid(xs, x) && valid(ys, y) {
            let e = s.err.as_ref().and_then(|e| e.get(i).copied()).filter(|e| e.is_finite() && *e >= 0.0);
            run.push((x, y, e));
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// Cuts the polyline `points` to the ranges of the two axes: the pieces inside, in data
/// coordinates. Clipping is done along straight lines in the axes' (possibly log) space.
fn clip_polyline(points: &[(f64, f64)], xa: &Axis, ya: &Axis) -> Vec<Vec<(f64, f64)>> {
    let to_t = |(x, y): (f64, f64)| (fwd(xa.scale, x), fwd(ya.scale, y));
    let from_t = |(tx, ty): (f64, f64)| (xa.inv(tx), ya.inv(ty));
    let (x0, x1, y0, y1) = (xa.t.0, xa.t.1, ya.t.0, ya.t.1);
    let mut pieces: Vec<Vec<(f64, f64)>> = vec![];
    let mut current: Vec<(f64, f64)> = vec![];
    for w in points.windows(2) {
        let (a, b) = (to_t(w[0]), to_t(w[1]));
        // Liang–Barsky.
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut u0, mut u1) = (0.0f64, 1.0f64);
        let mut inside = true;
        for (p, q) in [(-dx, a.0 - x0), (dx, x1 - a.0), (-dy, a.1 - y0), (dy, y1 - a.1)] {
            if p == 0.0 {
                if q < 0.0 {
                    inside = false;
                    break;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    u0 = u0.max(r);
                } else {
                    u1 = u1.min(r);
                }
                if u0 > u1 {
                    inside = false;
                    break;
                }
            }
        }
        if !inside {
            if current.len() >= 2 {
                pieces.push(std::mem::take(&mut current));
            }
            current.clear();
            continue;
        }
        let start = from_t((a.0 + u0 * dx, a.1 + u0 * dy));
        let end = from_t((a.0 + u1 * dx, a.1 + u1 * dy));
        if u0 > 0.0 && current.len() >= 2 {
            pieces.push(std::mem::take(&mut current));
        }
        if u0 > 0.0 || current.is_empty() {
            current.clear();
            current.push(start);
        }
        current.push(end);
        if u1 < 1.0 {
            if current.len() >= 2 {
                pieces.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    if current.len() >= 2 {
        pieces.push(current);
    }
    pieces
}

/// Positions (0..1 on both axes) along the polyline, for choosing where the legend goes.
fn samples_along(points: &[(f64, f64)], xa: &Axis, ya: &Axis, out: &mut Vec<(f64, f64)>) {
    let p = |(x, y): (f64, f64)| (xa.frac(x), ya.frac(y));
    if points.len() == 1 {
        out.push(p(points[0]));
    }
    for w in points.windows(2) {
        let (a, b) = (p(w[0]), p(w[1]));
        for k in 0..=16 {
            let f = k as f64 / 16.0;
            out.push((a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f));
        }
    }
}

/// Attaches the legend entry `name` to `anno`: a short line, dashed or not.
fn legend_line<DB: DrawingBackend>(anno: &mut SeriesAnno<'_, DB>, name: String, c: RGBColor, dashed: bool) {
    let style = c.stroke_width(2);
    let anno = anno.label(name);
    if dashed {
        anno.legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 7, 4, style));
    } else {
        anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
}

/// Draws error bars: a vertical line from `lo` to `hi` at `x` with caps `cap` pixels to each
/// side, for each `(x, lo, hi)`.
fn draw_error_bars(chart: &mut Chart<'_, '_>, bars: Vec<(f64, f64, f64)>, style: ShapeStyle, cap: i32) -> DrawResult {
    chart.draw_series(bars.iter().map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], style)))?;
    chart.draw_series(
        bars.iter()
            .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)])
            .map(|end| EmptyElement::at(end) + PathElement::new(vec![(-cap, 0), (cap, 0)], style)),
    )?;
    Ok(())
}

/// Draws legend entries (a colour swatch and a name) in centred rows on top of `area`, and
/// returns the area below them.
fn draw_legend_strip<'a>(area: &Area<'a>, entries: &[(String, RGBColor)], px: f64) -> DrawResult<Area<'a>> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    let (w, _) = area.dim_in_pixel();
    let max_w = w as f64 - 40.0;
    let mut rows: Vec<Vec<(usize, f64)>> = vec![vec![]];
    let mut row_w = 0.0;
    for (i, (name, _)) in entries.iter().enumerate() {
        let entry_w = 22.0 + text_width(area, name, px)? + 26.0;
        if row_w + entry_w > max_w && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(vec![]);
            row_w = 0.0;
        }
        row_w += entry_w;
        if let Some(row) = rows.last_mut() {
            row.push((i, entry_w));
        }
    }
    let row_h = (px * 1.6).ceil() as i32;
    let (top, rest) = area.split_vertically(row_h * rows.len() as i32 + 8);
    for (r, row) in rows.iter().enumerate() {
        let total: f64 = row.iter().map(|(_, ew)| ew).sum::<f64>() - 26.0;
        let mut x = ((w as f64 - total) / 2.0).max(0.0);
        let y = row_h * r as i32 + row_h / 2 + 2;
        for &(i, ew) in row {
            let (name, c) = &entries[i];
            top.draw(&Rectangle::new([(x as i32, y - 6), (x as i32 + 16, y + 6)], c.filled()))?;
            top.draw(&Text::new(name.clone(), (x as i32 + 22, y), font(px).pos(Pos::new(HPos::Left, VPos::Center))))?;
            x += ew;
        }
    }
    Ok(rest)
}

/// Width of the y label area that fits the tick labels of `ya` and the axis description.
fn y_label_area(area: &Area<'_>, ya: &Axis, fonts: &Fonts) -> DrawResult<u32> {
    let mut widest = 0.0f64;
    for v in ya.majors() {
        widest = widest.max(text_width(area, &ya.label(v), fonts.tick)?);
    }
    Ok((widest + fonts.desc * 1.5 + 22.0).clamp(40.0, 260.0) as u32)
}

fn draw_line_plot(area: &Area<'_>, p: &LinePlot, fonts: &Fonts) -> DrawResult {
    draw_line_plot_with(area, p, fonts, &colour)
}

/// [`draw_line_plot`] with the colour of series `i` given by `colour_of(i)`.
fn draw_line_plot_with(area: &Area<'_>, p: &LinePlot, fonts: &Fonts, colour_of: &dyn Fn(usize) -> RGBColor) -> DrawResult {
    let all: Vec<_> = p.series.iter().map(|s| runs(s, p.x_scale, p.y_scale)).collect();
    let points = || all.iter().flatten().flatten();
    let mut xa = Axis::auto(p.x_scale, points().map(|q| q.0), 8);
    // Whole-number x values (epochs, members) over a short range: ticks at whole numbers only.
    if p.x_scale == Scale::Linear && points().all(|q| q.0.fract() == 0.0) && linear_ticks(xa.t.0, xa.t.1, 8).1 < 1.0 {
        xa.ticks = Some(((xa.t.0.ceil() as i64)..=(xa.t.1.floor() as i64)).map(|k| (k as f64, k.to_string())).collect());
    }
    let ya = Axis::auto(
        p.y_scale,
        points().flat_map(|&(_, y, e)| {
            let e = e.unwrap_or(0.0);
            [y, y - e, y + e]
        }),
        8,
    );
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(24)
        .x_label_area_size((fonts.tick + fonts.desc * 1.4 + 22.0) as u32)
        .y_label_area_size(y_label_area(area, &ya, fonts)?)
        .build_cartesian_2d(xa.clone(), ya.clone())?;
    let (fx, fy) = (|v: &f64| xa.label(*v), |v: &f64| ya.label(*v));
    chart
        .configure_mesh()
        .set_all_tick_mark_size(5)
        .x_labels(20)
        .y_labels(20)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(font(fonts.tick))
        .axis_desc_style(font(fonts.desc))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .draw()?;

    if points().next().is_none() {
        note_in_chart(&mut chart, "no data")?;
    }
    let mut samples = vec![];
    for (i, (s, runs)) in p.series.iter().zip(&all).enumerate() {
        let (c, dashed) = (colour_of(i), s.dashed);
        if !s.name.is_empty() {
            let name = if runs.is_empty() { format!("{} (no data)", s.name) } else { s.name.clone() };
            legend_line(chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?, name, c, dashed);
        }
        for run in runs {
            let line: Vec<(f64, f64)> = run.iter().map(|q| (q.0, q.1)).collect();
            samples_along(&line, &xa, &ya, &mut samples);
            for piece in clip_polyline(&line, &xa, &ya) {
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(piece, 10, 6, c.stroke_width(2)))?;
                } else {
                    chart.draw_series(LineSeries::new(piece, c.stroke_width(2)))?;
                }
            }
            let bars = run.iter().filter_map(|&(x, y, e)| e.filter(|e| *e > 0.0).map(|e| (x, ya.clamp(y - e), ya.clamp(y + e))));
            draw_error_bars(&mut chart, bars.collect(), c.stroke_width(1), 5)?;
            if p.markers || run.len() == 1 {
                chart.draw_series(run.iter().map(|&(x, y, _)| Circle::new((x, y), 4, c.filled())))?;
            }
        }
    }
    // The legend's texts, to measure.
    let labels: Vec<String> = p
        .series
        .iter()
        .zip(&all)
        .filter(|(s, _)| !s.name.is_empty())
        .map(|(s, r)| if r.is_empty() { format!("{} (no data)", s.name) } else { s.name.clone() })
        .collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    draw_legend(&mut chart, area, &label_refs, &samples, fonts.legend)
}

// ---------------------------------------------------------------------------------------------
// Category labels (bar charts, heatmaps)

/// How the names of categories are written under the x axis.
struct CategoryLabels {
    texts: Vec<String>,
    px: f64,
    vertical: bool,
    /// Pixels needed below the axis.
    height: f64,
}

/// Plans the labels of categories `slot` pixels apart: horizontal if they fit at some size
/// down to 11 pixels, else vertical (at most 170 pixels long, shortened with "…").
fn plan_category_labels(area: &Area<'_>, names: &[String], slot: f64, tick: f64) -> DrawResult<CategoryLabels> {
    for px in [tick, tick - 2.0, 10.0] {
        let mut widest = 0.0f64;
        for n in names {
            widest = widest.max(text_width(area, n, px)?);
        }
        if widest <= slot - 6.0 {
            return Ok(CategoryLabels { texts: names.to_vec(), px, vertical: false, height: px * 1.4 + 8.0 });
        }
    }
    let px = even((slot * 0.8).clamp(8.0, 14.0));
    let mut texts = vec![];
    let mut longest = 0.0f64;
    for n in names {
        let t = shorten(area, n, px, 170.0)?;
        longest = longest.max(text_width(area, &t, px)?);
        texts.push(t);
    }
    Ok(CategoryLabels { texts, px, vertical: true, height: longest + 14.0 })
}

/// Writes the planned labels under the categories at x = 0, 1, ....
fn draw_category_labels(area: &Area<'_>, chart: &Chart<'_, '_>, plan: &CategoryLabels, y_bottom: f64) -> DrawResult {
    let base = area.get_base_pixel();
    for (i, text) in plan.texts.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, y_bottom));
        let (x, y) = (px - base.0, py - base.1 + 9);
        let style = if plan.vertical {
            font(plan.px).transform(FontTransform::Rotate270).pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            font(plan.px).pos(Pos::new(HPos::Center, VPos::Top))
        };
        area.draw(&Text::new(text.clone(), (x, y), style))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bars

fn draw_bar_plot(area: &Area<'_>, p: &BarPlot) -> DrawResult {
    let mut cats: Vec<String> = vec![];
    for (_, bars) in &p.groups {
        for b in bars {
            if !cats.contains(&b.label) {
                cats.push(b.label.clone());
            }
        }
    }
    let g = p.groups.len().max(1);
    // The legend goes in a row above the bars, where it hides nothing.
    let entries: Vec<(String, RGBColor)> =
        p.groups.iter().enumerate().filter(|(_, (name, _))| !name.is_empty()).map(|(i, (name, _))| (name.clone(), colour(i))).collect();
    let area = &draw_legend_strip(area, &entries, FONTS.legend)?;
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for b in p.groups.iter().flat_map(|(_, bars)| bars) {
        if b.value.is_finite() {
            let e = b.err.filter(|e| e.is_finite() && *e >= 0.0).unwrap_or(0.0);
            lo = lo.min(b.value - e);
            hi = hi.max(b.value + e);
        }
    }
    if hi - lo <= 0.0 || !(hi - lo).is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let span = hi - lo;
    if hi > 0.0 {
        hi += span * 0.1;
    }
    if lo < 0.0 {
        lo -= span * 0.1;
    }
    let ya = Axis::exact(Scale::Linear, lo, hi, 8);
    let xa = Axis::categories(cats.len(), &cats);
    let (w, _) = area.dim_in_pixel();
    let y_area = y_label_area(area, &ya, &FONTS)?;
    let slot = (w as f64 - y_area as f64 - 40.0) / cats.len().max(1) as f64;
    let plan = plan_category_labels(area, &cats, slot, FONTS.tick)?;
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_right(24)
        .x_label_area_size((plan.height + 12.0) as u32)
        .y_label_area_size(y_area)
        .build_cartesian_2d(xa.clone(), ya.clone())?;
    let fy = |v: &f64| ya.label(*v);
    chart
        .configure_mesh()
        .set_all_tick_mark_size(5)
        .disable_x_mesh()
        .y_labels(20)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&fy)
        .y_desc(p.y_label.as_str())
        .label_style(font(FONTS.tick))
        .axis_desc_style(font(FONTS.desc))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .draw()?;
    if cats.is_empty() {
        note_in_chart(&mut chart, "no data")?;
        return Ok(());
    }
    draw_category_labels(area, &chart, &plan, ya.lo())?;
    if lo < 0.0 {
        chart.draw_series(LineSeries::new([(xa.lo(), 0.0), (xa.hi(), 0.0)], BLACK.stroke_width(1)))?;
    }

    let (pw, _) = chart.plotting_area().dim_in_pixel();
    let bar_w = 0.8 / g as f64;
    let bar_px = pw as f64 / cats.len() as f64 * bar_w;
    let n_bars: usize = p.groups.iter().map(|(_, b)| b.len()).sum();
    let mut widest_value = 0.0f64;
    for b in p.groups.iter().flat_map(|(_, bars)| bars) {
        widest_value = widest_value.max(text_width(area, &fmt_sig(b.value, 3), 12.0)?);
    }
    let print_values = n_bars <= 40 && widest_value <= bar_px + 4.0;
    for (gi, (_, bars)) in p.groups.iter().enumerate() {
        let c = colour(gi);
        for b in bars {
            if !b.value.is_finite() {
                continue;
            }
            let ci = cats.iter().position(|c| *c == b.label).unwrap_or(0) as f64;
            let x0 = ci - 0.4 + gi as f64 * bar_w;
            let (l, r) = (x0 + bar_w * 0.06, x0 + bar_w * 0.94);
            let mid = x0 + bar_w / 2.0;
            chart.draw_series(std::iter::once(Rectangle::new([(l, 0.0), (r, b.value)], c.filled())))?;
            let e = b.err.filter(|e| e.is_finite() && *e > 0.0);
            if let Some(e) = e {
                let cap = (bar_px * 0.2).clamp(2.0, 8.0) as i32;
                draw_error_bars(&mut chart, vec![(mid, ya.clamp(b.value - e), ya.clamp(b.value + e))], BLACK.stroke_width(1), cap)?;
            }
            if print_values {
                let up = b.value >= 0.0;
                let end = if up { b.value + e.unwrap_or(0.0) } else { b.value - e.unwrap_or(0.0) };
                let style = font(12.0).pos(Pos::new(HPos::Center, if up { VPos::Bottom } else { VPos::Top }));
                let text = EmptyElement::at((mid, ya.clamp(end))) + Text::new(fmt_sig(b.value, 3), (0, if up { -4 } else { 4 }), style);
                chart.draw_series(std::iter::once(text))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Heatmap

/// A vertical colour bar at the right of `area`: `bands` stacked bottom to top in equal steps
/// along `ya`, with `ya`'s ticks and `label` on its right. `top` and `bottom` are the pixel
/// margins of the plotting area it stands beside, to line up with it.
fn draw_colour_bar(area: &Area<'_>, ya: Axis, label: &str, top: u32, bottom: u32, bands: &[RGBColor]) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let mut widest = 0.0f64;
    for v in ya.majors() {
        widest = widest.max(text_width(area, &ya.label(v), FONTS.tick)?);
    }
    let label_w = ((widest + FONTS.desc * 1.5 + 20.0) as u32).min(w.saturating_sub(30));
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(w.saturating_sub(label_w + 26 + 4))
        .margin_right(4)
        .right_y_label_area_size(label_w)
        .build_cartesian_2d(Axis::exact(Scale::Linear, 0.0, 1.0, 2), ya.clone())?;
    let fy = |v: &f64| ya.label(*v);
    chart
        .configure_mesh()
        .set_all_tick_mark_size(5)
        .disable_mesh()
        .disable_x_axis()
        .y_labels(20)
        .y_label_formatter(&fy)
        .y_desc(label)
        .label_style(font(FONTS.tick))
        .axis_desc_style(font(FONTS.desc - 2.0))
        .draw()?;
    let n = bands.len().max(1);
    let (t0, t1) = ya.t;
    chart.draw_series(bands.iter().enumerate().map(|(i, c)| {
        let a = ya.inv(t0 + (t1 - t0) * i as f64 / n as f64);
        let b = ya.inv(t0 + (t1 - t0) * (i + 1) as f64 / n as f64);
        Rectangle::new([(0.0, a), (1.0, b)], c.filled())
    }))?;
    chart.draw_series(std::iter::once(Rectangle::new([(0.0, ya.lo()), (1.0, ya.hi())], BLACK.stroke_width(1))))?;
    Ok(())
}

fn draw_heatmap(area: &Area<'_>, p: &Heatmap) -> DrawResult {
    let rows = p.values.len();
    let cols = p.values.iter().map(Vec::len).max().unwrap_or(0);
    let (w, _) = area.dim_in_pixel();
    let (main, side) = area.split_horizontally(w.saturating_sub(150) as i32);
    let finite = || p.values.iter().flatten().copied().filter(|v| v.is_finite());
    let (vmin, vmax) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let xa = Axis::categories(cols, &p.x_ticks);
    let ya = Axis::categories(rows, &p.y_ticks);
    let mut widest_y = 0.0f64;
    for i in 0..rows {
        widest_y = widest_y.max(text_width(area, &ya.label(i as f64), FONTS.tick)?);
    }
    let y_area = (widest_y + FONTS.desc * 1.5 + 24.0).min(300.0) as u32;
    let (mw, _) = main.dim_in_pixel();
    let slot = (mw as f64 - y_area as f64 - 20.0) / cols.max(1) as f64;
    let x_names: Vec<String> = (0..cols).map(|i| xa.label(i as f64)).collect();
    let plan = plan_category_labels(area, &x_names, slot, FONTS.tick)?;
    let x_area = (plan.height + FONTS.desc * 1.4 + 16.0) as u32;
    let mut chart = ChartBuilder::on(&main)
        .margin(10)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(xa.clone(), ya.clone())?;
    let fy = |v: &f64| ya.label(*v);
    chart
        .configure_mesh()
        .set_all_tick_mark_size(5)
        .disable_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&fy)
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(font(FONTS.tick))
        .axis_desc_style(font(FONTS.desc))
        .draw()?;
    if rows == 0 || cols == 0 {
        note_in_chart(&mut chart, "no data")?;
        return Ok(());
    }
    draw_category_labels(&main, &chart, &plan, ya.lo())?;
    let norm = |v: f64| if vmax > vmin { (v - vmin) / (vmax - vmin) } else { 0.5 };
    let cell_colour = |v: f64| if v.is_finite() { viridis(norm(v)) } else { MISSING };
    let value = |r: usize, c: usize| p.values[r].get(c).copied().unwrap_or(f64::NAN);
    chart.draw_series((0..rows).flat_map(|r| {
        (0..cols).map(move |c| (r, c)).map(|(r, c)| {
            let (x, y) = (c as f64, r as f64);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], cell_colour(value(r, c)).filled())
        })
    }))?;
    chart.draw_series((0..rows).flat_map(|r| {
        (0..cols).map(move |c| {
            let (x, y) = (c as f64, r as f64);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], WHITE.stroke_width(1))
        })
    }))?;
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let (cw, ch) = (pw as f64 / cols as f64, ph as f64 / rows as f64);
    let cell_text = |v: f64| match p.decimals {
        Some(_) if v == 0.0 => "0".to_string(),
        Some(d) if v.is_finite() => format!("{v:.d$}"),
        _ => fmt_sig(v, 3),
    };
    let texts: Vec<Vec<String>> = (0..rows).map(|r| (0..cols).map(|c| cell_text(value(r, c))).collect()).collect();
    let longest = texts.iter().flatten().map(|t| t.chars().count()).max().unwrap_or(1).max(1) as f64;
    let px = even((ch * 0.45).min(cw * 0.9 / (longest * 0.62)).min(16.0));
    if px >= 7.0 {
        for (r, row) in texts.iter().enumerate() {
            for (c, text) in row.iter().enumerate() {
                let fill = cell_colour(value(r, c));
                let ink = if is_dark(fill) { WHITE } else { BLACK };
                let style = font(px).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(text.clone(), (c as f64, r as f64), style)))?;
            }
        }
    }
    if vmin <= vmax {
        let bar_axis = Axis::exact(Scale::Linear, vmin, vmax, 8);
        let lo_v = bar_axis.lo();
        let hi_v = bar_axis.hi();
        let bands: Vec<RGBColor> = (0..128)
            .map(|i| {
                let v = lo_v + (hi_v - lo_v) * (i as f64 + 0.5) / 128.0;
                viridis(norm(v))
            })
            .collect();
        draw_colour_bar(&side, bar_axis, &p.value_label, 10, x_area + 10, &bands)?;
    } else {
        note_in_area(&side, "no finite value")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Contours

/// Edges of the colour bands of values in `lo..=hi`: 12 bands, geometric when `log` (offset so
/// that a minimum ≤ 0 works), one band when the values are all equal.
fn levels(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    let n = 12;
    if hi <= lo || hi.is_nan() || lo.is_nan() {
        return vec![lo, lo];
    }
    let span = hi - lo;
    (0..=n)
        .map(|k| {
            let f = k as f64 / n as f64;
            if !log {
                lo + span * f
            } else if k == 0 {
                lo
            } else if lo > 0.0 && hi / lo > 1.0 + 1e-9 {
                lo * (hi / lo).powf(f)
            } else {
                // Offset: levels lo + d·(span/d)^f with d a ten-thousandth of the span.
                let d = span * 1e-4;
                lo + d * (span / d).powf(f)
            }
        })
        .collect()
}

/// Line segments where the bilinear interpolation of the grid `z[j][i]` (at `xs[i]`, `ys[j]`)
/// crosses `level` (marching squares).
fn iso_segments(z: &[Vec<f64>], xs: &[f64], ys: &[f64], level: f64) -> Vec<[(f64, f64); 2]> {
    let mut out = vec![];
    for j in 0..ys.len().saturating_sub(1) {
        for i in 0..xs.len().saturating_sub(1) {
            let c = [
                (xs[i], ys[j], z[j][i]),
                (xs[i + 1], ys[j], z[j][i + 1]),
                (xs[i + 1], ys[j + 1], z[j + 1][i + 1]),
                (xs[i], ys[j + 1], z[j + 1][i]),
            ];
            if c.iter().any(|p| !p.2.is_finite()) {
                continue;
            }
            let mut pts = [(0.0, 0.0); 4];
            let mut n = 0;
            for e in 0..4 {
                let (a, b) = (c[e], c[(e + 1) % 4]);
                let (da, db) = (a.2 - level, b.2 - level);
                if (da < 0.0) != (db < 0.0) {
                    let t = da / (da - db);
                    pts[n] = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                    n += 1;
                }
            }
            if n >= 2 {
                out.push([pts[0], pts[1]]);
            }
            if n == 4 {
                out.push([pts[2], pts[3]]);
            }
        }
    }
    out
}

/// Corners of a five-pointed star of outer radius `r` pixels around (0, 0).
fn star(r: f64) -> Vec<(i32, i32)> {
    (0..10)
        .map(|k| {
            let a = -std::f64::consts::FRAC_PI_2 + k as f64 * std::f64::consts::PI / 5.0;
            let r = if k % 2 == 0 { r } else { r * 0.45 };
            ((r * a.cos()).round() as i32, (r * a.sin()).round() as i32)
        })
        .collect()
}

fn draw_contour(area: &Area<'_>, p: &ContourPlot<'_>) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let (main, side) = area.split_horizontally(w.saturating_sub(150) as i32);
    let xa = Axis::exact(Scale::Linear, p.x_range.0, p.x_range.1, 8);
    let ya = Axis::exact(Scale::Linear, p.y_range.0, p.y_range.1, 8);
    let x_area = (FONTS.tick + FONTS.desc * 1.4 + 22.0) as u32;
    let mut chart = ChartBuilder::on(&main)
        .margin(10)
        .x_label_area_size(x_area)
        .y_label_area_size(y_label_area(area, &ya, &FONTS)?)
        .build_cartesian_2d(xa.clone(), ya.clone())?;
    let (fx, fy) = (|v: &f64| xa.label(*v), |v: &f64| ya.label(*v));
    chart
        .configure_mesh()
        .set_all_tick_mark_size(5)
        .disable_mesh()
        .x_labels(20)
        .y_labels(20)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(font(FONTS.tick))
        .axis_desc_style(font(FONTS.desc))
        .draw()?;

    // The function on a grid of about one vertex per 4 pixels.
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let (nx, ny) = ((pw / 4).clamp(8, 400) as usize, (ph / 4).clamp(8, 400) as usize);
    let (x0, x1, y0, y1) = (xa.lo(), xa.hi(), ya.lo(), ya.hi());
    let xs: Vec<f64> = (0..=nx).map(|i| x0 + (x1 - x0) * i as f64 / nx as f64).collect();
    let ys: Vec<f64> = (0..=ny).map(|j| y0 + (y1 - y0) * j as f64 / ny as f64).collect();
    let z: Vec<Vec<f64>> =
        ys.iter().map(|&y| xs.iter().map(|&x| (p.f)(x, y)).map(|v| if v.is_finite() { v } else { f64::NAN }).collect()).collect();
    let (zmin, zmax) =
        z.iter().flatten().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let edges = if zmin <= zmax { levels(zmin, zmax, p.log_levels) } else { vec![] };
    let n_bands = edges.len().saturating_sub(1);
    let bands: Vec<RGBColor> = (0..n_bands).map(|b| lighten(viridis((b as f64 + 0.5) / n_bands as f64), 0.3)).collect();
    let band_of = |v: f64| -> Option<usize> {
        if !v.is_finite() || n_bands == 0 {
            return None;
        }
        Some(edges[1..n_bands].iter().filter(|e| v >= **e).count())
    };
    chart.draw_series((0..ny).flat_map(|j| {
        let (z, xs, ys, bands) = (&z, &xs, &ys, &bands);
        (0..nx).map(move |i| {
            let v = (z[j][i] + z[j][i + 1] + z[j + 1][i] + z[j + 1][i + 1]) / 4.0;
            let c = band_of(v).map_or(MISSING, |b| bands[b]);
            Rectangle::new([(xs[i], ys[j]), (xs[i + 1], ys[j + 1])], c.filled())
        })
    }))?;
    for level in edges.iter().take(n_bands).skip(1) {
        let segs = iso_segments(&z, &xs, &ys, *level);
        chart.draw_series(segs.into_iter().map(|[a, b]| PathElement::new(vec![a, b], RGBColor(40, 40, 40).mix(0.45).stroke_width(1))))?;
    }
    if n_bands == 0 {
        note_in_chart(&mut chart, "no data: f is not finite on this range")?;
    }

    // Paths, start rings, marks.
    let mut names: Vec<String> = vec![];
    let mut samples = vec![];
    let mut any_start = false;
    for (i, s) in p.paths.iter().enumerate() {
        let (c, dashed) = (colour(i), s.dashed);
        let runs = runs(s, Scale::Linear, Scale::Linear);
        if !s.name.is_empty() {
            legend_line(chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?, s.name.clone(), c, dashed);
            names.push(s.name.clone());
        }
        for run in &runs {
            let line: Vec<(f64, f64)> = run.iter().map(|q| (q.0, q.1)).collect();
            samples_along(&line, &xa, &ya, &mut samples);
            for piece in clip_polyline(&line, &xa, &ya) {
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(piece, 10, 6, c.stroke_width(2)))?;
                } else {
                    chart.draw_series(LineSeries::new(piece, c.stroke_width(2)))?;
                }
            }
            let inside = line.iter().filter(|q| xa.contains(q.0) && ya.contains(q.1));
            chart.draw_series(inside.map(|&q| Circle::new(q, 3, c.filled())))?;
        }
        if let Some(&(x, y, _)) = runs.first().and_then(|r| r.first()) {
            if xa.contains(x) && ya.contains(y) {
                any_start = true;
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x, y)) + Circle::new((0, 0), 8, WHITE.filled()) + Circle::new((0, 0), 8, c.stroke_width(3)),
                ))?;
            }
        }
    }
    if any_start {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
            .label("start of a path")
            .legend(|(x, y)| Circle::new((x + 12, y), 7, BLACK.stroke_width(2)));
        names.push("start of a path".to_string());
    }
    for (name, (x, y)) in &p.marks {
        let (x, y) = (*x, *y);
        if !(xa.contains(x) && ya.contains(y)) {
            continue;
        }
        samples.push((xa.frac(x), ya.frac(y)));
        let outline: Vec<(i32, i32)> = star(11.0).into_iter().chain(std::iter::once((0, -11))).collect();
        let label_style = font(FONTS.legend).pos(Pos::new(HPos::Left, VPos::Center));
        let drawn = chart.draw_series(std::iter::once(
            EmptyElement::at((x, y))
                + Polygon::new(star(11.0), GOLD.filled())
                + PathElement::new(outline, BLACK.stroke_width(1))
                + Text::new(name.clone(), (15, 0), label_style),
        ))?;
        if !name.is_empty() {
            drawn.label(name.as_str()).legend(|(x, y)| {
                Polygon::new(star(9.0).into_iter().map(|(dx, dy)| (x + 12 + dx, y + dy)).collect::<Vec<_>>(), GOLD.filled())
            });
            names.push(name.clone());
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    draw_legend(&mut chart, &main, &refs, &samples, FONTS.legend)?;

    // Colour bar: one band per level interval, the levels as ticks.
    if n_bands > 0 {
        let ticks = edges.iter().enumerate().map(|(k, e)| (k as f64, fmt_sig(*e, 3))).collect();
        let bar_axis = Axis { scale: Scale::Linear, t: (0.0, n_bands as f64), ticks: Some(ticks), max_ticks: n_bands + 1 };
        let label = if p.log_levels { "f(x, y), log-spaced levels" } else { "f(x, y)" };
        draw_colour_bar(&side, bar_axis, label, 10, x_area + 10, &bands)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh folder for one test's files, removed when dropped (kept if WGTRAIN_KEEP_PLOTS
    /// is set, to look at them).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir =
                std::env::temp_dir().join(format!("wgtrain-plot-{}-{}-{name}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if std::env::var_os("WGTRAIN_KEEP_PLOTS").is_none() {
                let _ = std::fs::remove_dir_all(&self.0);
            } else {
                eprintln!("plots kept in {}", self.0.display());
            }
        }
    }

    fn open(path: &Path) -> image::RgbImage {
        image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
    }

    fn distinct_colours(img: &image::RgbImage) -> usize {
        let mut seen = std::collections::HashSet::new();
        for p in img.pixels() {
            seen.insert(p.0);
        }
        seen.len()
    }

    fn count_colour(img: &image::RgbImage, c: RGBColor) -> usize {
        img.pixels().filter(|p| p.0 == [c.0, c.1, c.2]).count()
    }

    /// Dark pixels (text, axes) in rows `rows` of the image.
    fn dark_pixels(img: &image::RgbImage, rows: Range<u32>) -> usize {
        rows.flat_map(|y| (0..img.width()).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 100)).count()
    }

    fn loss_plot() -> LinePlot {
        LinePlot {
            title: "Validation loss by batch size (momentum, 10 epochs)".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy loss (nats)".into(),
            y_scale: Scale::Log10,
            series: vec![
                Series::new("batch 32", (1..=10).map(|e| (e as f64, 2.0 / e as f64)).collect()).with_err(vec![0.05; 10]),
                Series::new("batch 256 (train)", (1..=10).map(|e| (e as f64, 3.0 / (e as f64).sqrt())).collect()).dashed(),
            ],
            markers: true,
            ..LinePlot::default()
        }
    }

    #[test]
    fn line_plot_is_drawn_with_series_colours_and_text() {
        let dir = TempDir::new("line");
        let path = dir.0.join("line.png");
        loss_plot().save(&path).unwrap();
        let img = open(&path);
        assert_eq!(img.dimensions(), (1000, 650));
        assert!(distinct_colours(&img) > 50, "{} colours", distinct_colours(&img));
        assert!(count_colour(&img, PALETTE[0]) > 300, "{} pixels of series 0", count_colour(&img, PALETTE[0]));
        assert!(count_colour(&img, PALETTE[1]) > 100, "{} pixels of series 1", count_colour(&img, PALETTE[1]));
        assert_eq!(count_colour(&img, PALETTE[2]), 0, "no third series");
        // The title is text in the top band: dark pixels there.
        assert!(dark_pixels(&img, 0..40) > 200, "title band has {} dark pixels", dark_pixels(&img, 0..40));

        // Without series: no series colour anywhere (the check above can fail).
        let empty = LinePlot { series: vec![], ..loss_plot() };
        let path = dir.0.join("empty.png");
        empty.save(&path).unwrap();
        let img = open(&path);
        assert_eq!(count_colour(&img, PALETTE[0]), 0);
        assert!(distinct_colours(&img) > 10);
    }

    #[test]
    fn line_plot_survives_bad_data() {
        let dir = TempDir::new("bad");
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let cases: Vec<(&str, LinePlot)> = vec![
            ("no-series", LinePlot::default()),
            ("empty-series", LinePlot { series: vec![Series::new("empty", vec![])], ..LinePlot::default() }),
            ("all-nan", LinePlot { series: vec![Series::new("nan", vec![(nan, nan), (1.0, nan), (inf, 2.0)])], ..LinePlot::default() }),
            ("one-point", LinePlot { series: vec![Series::new("one", vec![(3.0, 0.5)])], ..LinePlot::default() }),
            ("all-equal", LinePlot { series: vec![Series::new("flat", vec![(0.0, 0.0), (0.0, 0.0)])], ..LinePlot::default() }),
            (
                "log-negative",
                LinePlot {
                    x_scale: Scale::Log2,
                    y_scale: Scale::Log10,
                    series: vec![Series::new("mixed", vec![(-1.0, 1.0), (0.0, 1.0), (2.0, -3.0), (4.0, 0.1), (8.0, nan), (16.0, 0.01)])
                        .with_err(vec![nan, -1.0, inf, 5.0])],
                    ..LinePlot::default()
                },
            ),
            (
                "huge-and-tiny",
                LinePlot {
                    series: vec![Series::new("big", vec![(1e-300, 1e300), (2e-300, -1e300), (f64::MAX, f64::MIN_POSITIVE)])],
                    ..LinePlot::default()
                },
            ),
        ];
        for (name, plot) in cases {
            let path = dir.0.join(format!("{name}.png"));
            plot.save(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(open(&path).dimensions(), (1000, 650), "{name}");
        }
        save_panels(&dir.0.join("no-panels.png"), "nothing", &[]).unwrap();
        BarPlot::default().save(&dir.0.join("no-bars.png")).unwrap();
        BarPlot { groups: vec![("g".into(), vec![Bar { label: "a".into(), value: nan, err: Some(inf) }])], ..BarPlot::default() }
            .save(&dir.0.join("nan-bar.png"))
            .unwrap();
        Heatmap::default().save(&dir.0.join("no-cells.png")).unwrap();
        Heatmap { values: vec![vec![nan, inf], vec![]], ..Heatmap::default() }.save(&dir.0.join("nan-cells.png")).unwrap();
        let f = |_: f64, _: f64| f64::NAN;
        ContourPlot {
            title: "nan".into(),
            x_label: String::new(),
            y_label: String::new(),
            x_range: (1.0, 1.0),
            y_range: (2.0, -2.0),
            f: &f,
            log_levels: true,
            paths: vec![Series::new("p", vec![(nan, 0.0), (1e9, 1e9), (1.0, 0.0)])],
            marks: vec![("far".into(), (1e9, 0.0))],
        }
        .save(&dir.0.join("nan-contour.png"))
        .unwrap();
        let bad = ContourPlot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x_range: (nan, 1.0),
            y_range: (0.0, 1.0),
            f: &f,
            log_levels: false,
            paths: vec![],
            marks: vec![],
        };
        let err = bad.save(&dir.0.join("bad-range.png")).unwrap_err().to_string();
        assert!(err.contains("bad-range.png") && err.contains("x_range"), "{err}");
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let dir = TempDir::new("unwritable");
        let path = dir.0.join("no-such-folder").join("plot.png");
        let err = loss_plot().save(&path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        let err = save_panels(&path, "t", &[loss_plot()]).unwrap_err();
        assert!(err.to_string().contains("no-such-folder"), "{err}");
    }

    #[test]
    fn missing_font_is_an_error_not_a_panic() {
        let dir = TempDir::new("font");
        let path = dir.0.join("font.png");
        let err = render(&path, (100, 50), |root| {
            root.draw(&Text::new("x", (10, 10), ("no-such-font-family", 12.0).into_font()))?;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("font.png"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn panels_are_side_by_side() {
        let dir = TempDir::new("panels");
        let path = dir.0.join("panels.png");
        let acc = LinePlot {
            title: "Accuracy".into(),
            y_label: "accuracy (%)".into(),
            x_label: "epoch".into(),
            series: vec![Series::new("batch 32", vec![(1.0, 80.0), (2.0, 90.0)])],
            ..LinePlot::default()
        };
        save_panels(&path, "Batch size study", &[loss_plot(), acc.clone(), acc]).unwrap();
        let img = open(&path);
        assert_eq!(img.dimensions(), (1560, 650));
        assert!(distinct_colours(&img) > 50);
        // Series 0 appears in every third of the figure.
        for k in 0..3 {
            let n = img.enumerate_pixels().filter(|(x, _, p)| *x / 520 == k && p.0 == [PALETTE[0].0, PALETTE[0].1, PALETTE[0].2]).count();
            assert!(n > 50, "panel {k}: {n} pixels of series 0");
        }
    }

    fn bar_plot() -> BarPlot {
        let bars = |scale: f64| {
            ["SGD", "momentum 0.9", "Adam (lr 1e-3, β=(0.9, 0.999))", "RMSprop"]
                .iter()
                .enumerate()
                .map(|(i, l)| Bar { label: l.to_string(), value: scale * (90.0 + i as f64), err: Some(1.5) })
                .collect::<Vec<_>>()
        };
        BarPlot {
            title: "Test accuracy by optimizer (5-fold cross-validation, mean ± std)".into(),
            y_label: "test accuracy (%)".into(),
            groups: vec![("shapes".into(), bars(1.0)), ("mnist".into(), bars(0.95))],
        }
    }

    #[test]
    fn bar_plot_is_drawn() {
        let dir = TempDir::new("bars");
        let path = dir.0.join("bars.png");
        bar_plot().save(&path).unwrap();
        let img = open(&path);
        assert_eq!(img.dimensions(), (1000, 650));
        assert!(distinct_colours(&img) > 30);
        assert!(count_colour(&img, PALETTE[0]) > 5000, "{}", count_colour(&img, PALETTE[0]));
        assert!(count_colour(&img, PALETTE[1]) > 5000);
        // Many long labels, negative values.
        let many = BarPlot {
            title: "many".into(),
            y_label: "Δ loss".into(),
            groups: vec![(
                String::new(),
                (0..30).map(|i| Bar { label: format!("a rather long category name {i}"), value: i as f64 - 10.0, err: None }).collect(),
            )],
        };
        let path = dir.0.join("many.png");
        many.save(&path).unwrap();
        assert!(count_colour(&open(&path), PALETTE[0]) > 1000);
    }

    fn heatmap() -> Heatmap {
        let lrs = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1];
        let batches = [16, 32, 64, 128];
        Heatmap {
            title: "Validation accuracy over learning rate × batch size (SGD, 5 epochs)".into(),
            x_label: "learning rate".into(),
            y_label: "batch size (samples)".into(),
            x_ticks: lrs.iter().map(|l| format!("{l}")).collect(),
            y_ticks: batches.iter().map(|b| b.to_string()).collect(),
            values: batches
                .iter()
                .map(|&b| {
                    lrs.iter()
                        .map(|&l| if b == 128 && l == 1e-1 { f64::NAN } else { 100.0 - 400.0 * (l - 0.01f64).abs() - b as f64 / 20.0 })
                        .collect()
                })
                .collect(),
            value_label: "validation accuracy (%)".into(),
            decimals: None,
        }
    }

    #[test]
    fn heatmap_is_drawn() {
        let dir = TempDir::new("heatmap");
        let path = dir.0.join("heatmap.png");
        heatmap().save(&path).unwrap();
        let img = open(&path);
        assert_eq!(img.dimensions(), (1000, 650));
        assert!(distinct_colours(&img) > 50);
        // The NaN cell is grey.
        assert!(count_colour(&img, MISSING) > 1000);
        // The top of the colour map (the best cell) is there.
        assert!(count_colour(&img, viridis(1.0)) > 1000, "{}", count_colour(&img, viridis(1.0)));
    }

    fn rosenbrock(x: f64, y: f64) -> f64 {
        (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
    }

    fn contour() -> ContourPlot<'static> {
        let path: Vec<(f64, f64)> =
            (0..40).map(|i| i as f64 / 39.0).map(|t| (-1.5 + 2.5 * t, 2.0 - 1.0 * t + 0.3 * (6.0 * t).sin())).collect();
        ContourPlot {
            title: "Rosenbrock: SGD vs Adam, 40 steps".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: (-2.0, 2.0),
            y_range: (-1.0, 3.0),
            f: &rosenbrock,
            log_levels: true,
            paths: vec![
                Series::new("SGD (lr 1e-3)", path.clone()),
                Series::new("Adam", path.iter().map(|&(x, y)| (x * 0.8, y * 0.9)).collect()).dashed(),
            ],
            marks: vec![("minimum (1, 1)".into(), (1.0, 1.0))],
        }
    }

    #[test]
    fn contour_plot_is_drawn() {
        let dir = TempDir::new("contour");
        let path = dir.0.join("contour.png");
        contour().save(&path).unwrap();
        let img = open(&path);
        assert_eq!(img.dimensions(), (1000, 650));
        assert!(distinct_colours(&img) > 50);
        assert!(count_colour(&img, PALETTE[0]) > 300, "{}", count_colour(&img, PALETTE[0]));
        assert!(count_colour(&img, GOLD) > 50, "{}", count_colour(&img, GOLD));
    }

    #[test]
    fn ticks_and_labels() {
        let a = Axis::exact(Scale::Log10, 1e-4, 1.0, 8);
        assert_eq!(a.majors().iter().map(|&v| a.label(v)).collect::<Vec<_>>(), ["1e-4", "0.001", "0.01", "0.1", "1"]);
        let a = Axis::exact(Scale::Log2, 16.0, 512.0, 8);
        assert_eq!(a.majors().iter().map(|&v| a.label(v)).collect::<Vec<_>>(), ["16", "32", "64", "128", "256", "512"]);
        let a = Axis::exact(Scale::Linear, 0.0, 1.0, 8);
        assert_eq!(a.majors().iter().map(|&v| a.label(v)).collect::<Vec<_>>(), ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let a = Axis::exact(Scale::Log10, 2.0, 3.0, 8);
        assert!(a.majors().len() >= 2, "{:?}", a.majors());
        let a = Axis::auto(Scale::Linear, [5.0], 8);
        assert!(a.lo() < 5.0 && a.hi() > 5.0);
        let a = Axis::auto(Scale::Log10, [f64::NAN, -1.0], 8);
        assert!(a.lo() > 0.0 && a.hi() > a.lo());
        assert_eq!(fmt_sig(0.98765, 3), "0.988");
        assert_eq!(fmt_sig(12.345, 3), "12.3");
        assert_eq!(fmt_sig(123456.0, 3), "1.23e5");
        assert_eq!(fmt_sig(0.000123, 3), "1.23e-4");
        assert_eq!(fmt_sig(f64::NAN, 3), "NaN");
    }

    #[test]
    fn clipping_keeps_the_inside() {
        let xa = Axis::exact(Scale::Linear, 0.0, 1.0, 8);
        let pieces = clip_polyline(&[(-1.0, 0.5), (0.5, 0.5), (2.0, 0.5), (0.5, 0.25)], &xa, &xa);
        // In at x = 0, out at x = 1, back in at (1, 1/3) on the way from (2, 0.5) to (0.5, 0.25).
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!(pieces[0], vec![(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]);
        assert_eq!(pieces[1].len(), 2);
        assert!((pieces[1][0].0 - 1.0).abs() < 1e-12 && (pieces[1][0].1 - 1.0 / 3.0).abs() < 1e-12, "{pieces:?}");
        assert_eq!(pieces[1][1], (0.5, 0.25));
        assert!(clip_polyline(&[(5.0, 5.0), (6.0, 6.0)], &xa, &xa).is_empty());
    }

    /// Writes one figure of each kind to $WGTRAIN_PLOT_EXAMPLES, when set, to look at.
    #[test]
    fn examples() {
        let Some(dir) = std::env::var_os("WGTRAIN_PLOT_EXAMPLES") else { return };
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        loss_plot().save(&dir.join("line.png")).unwrap();
        let acc = LinePlot {
            title: "Validation accuracy".into(),
            x_label: "batch size (samples)".into(),
            y_label: "accuracy (%)".into(),
            x_scale: Scale::Log2,
            series: vec![Series::new("momentum", vec![(16.0, 91.0), (32.0, 92.5), (64.0, 92.0), (128.0, 90.0), (256.0, 87.0)])
                .with_err(vec![0.5, 0.4, 0.6, 0.8, 1.2])],
            markers: true,
            ..LinePlot::default()
        };
        save_panels(&dir.join("panels.png"), "Batch size study (momentum, 10 epochs, 3 seeds)", &[loss_plot(), acc]).unwrap();
        bar_plot().save(&dir.join("bars.png")).unwrap();
        heatmap().save(&dir.join("heatmap.png")).unwrap();
        contour().save(&dir.join("contour.png")).unwrap();
    }
}
