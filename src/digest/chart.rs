//! Renders the digest chart (mentions per time bucket, stacked by sentiment)
//! to PNG bytes, entirely in-process.
//!
//! * Geometry (bars, grid, axes, ticks) is drawn by plotters' `BitMapBackend`
//!   into an RGB buffer.
//! * Text is rasterised with `ab_glyph` from an embedded copy of DejaVu Sans,
//!   so neither building nor running needs fontconfig, freetype or any
//!   system font. (plotters' own `ab_glyph` text path ignores each glyph's
//!   left side bearing, which gives visibly uneven letter spacing —
//!   "Negat ive" — so we lay text out ourselves and never ask plotters to
//!   draw any.)
//! * The buffer is encoded with the `png` crate (plotters' `bitmap_encoder`
//!   can only write to a file path and pulls in `image` with jpeg and bmp).

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::*;

/// Width of the rendered PNG in pixels.
pub const WIDTH: u32 = 960;
/// Height of the rendered PNG in pixels.
pub const HEIGHT: u32 = 480;

/// Maximum number of characters of the title that are drawn.
pub(crate) const MAX_TITLE_CHARS: usize = 80;
/// Maximum number of characters of a bucket label that are drawn.
pub(crate) const MAX_LABEL_CHARS: usize = 24;
/// Maximum number of buckets in one chart (bars get thinner than a few
/// pixels past this).
pub(crate) const MAX_BUCKETS: usize = 240;

/// Colour of the negative series (bottom of each stack).
pub(crate) const NEGATIVE_COLOR: RGBColor = RGBColor(214, 69, 65);
/// Colour of the neutral series (middle of each stack). A slightly blue
/// grey: anti-aliased dark text on white produces pure greys, and the bars
/// should not be confusable with those.
pub(crate) const NEUTRAL_COLOR: RGBColor = RGBColor(150, 162, 173);
/// Colour of the positive series (top of each stack).
pub(crate) const POSITIVE_COLOR: RGBColor = RGBColor(67, 160, 71);

const TEXT_COLOR: RGBColor = RGBColor(33, 33, 33);
const GRID_COLOR: RGBColor = RGBColor(228, 228, 228);
const AXIS_COLOR: RGBColor = RGBColor(110, 110, 110);

const FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/DejaVuSans.ttf"
));

// Font sizes are ab_glyph pixel scales (ascent - descent, about 1.16 em for
// DejaVu Sans).
const TITLE_PX: f32 = 24.0;
const MIN_TITLE_PX: f32 = 16.0;
const LEGEND_PX: f32 = 16.0;
const TICK_PX: f32 = 15.0;
const DESC_PX: f32 = 16.0;

const MARGIN: i32 = 16;
const TITLE_Y: i32 = 10;
const LEGEND_Y: i32 = 46;
const LEGEND_SWATCH: i32 = 14;
const LEGEND_TEXT_GAP: i32 = 6;
const LEGEND_ITEM_GAP: i32 = 28;
const HEADER_HEIGHT: u32 = 72;
const Y_LABEL_AREA: u32 = 76;
const X_LABEL_AREA: u32 = 54;
const TICK_LEN: i32 = 5;
/// Horizontal space kept free between two x labels.
const X_LABEL_GAP: i32 = 14;

/// Each bucket owns `SLOT_UNITS` x units; its bar covers the middle
/// `BAR_UNITS` of them.
const SLOT_UNITS: u32 = 100;
const BAR_UNITS: u32 = 70;

/// One time bucket (an hour or a day) of mention counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub label: String,
    pub negative: u32,
    pub neutral: u32,
    pub positive: u32,
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct ChartSpec<'a> {
    pub title: &'a str,
    pub buckets: &'a [Bucket],
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart has no buckets to draw")]
    NoBuckets,
    #[error("chart has {got} buckets, at most {max} are supported")]
    TooManyBuckets { got: usize, max: usize },
    #[error("embedded chart font could not be parsed")]
    Font,
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart as PNG failed: {0}")]
    Encode(#[from] png::EncodingError),
}

fn draw_err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// The embedded font, parsed once per process. Safe to call from any number
/// of threads; later callers wait for the first to finish.
fn font() -> Result<&'static FontRef<'static>, ChartError> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
        .ok_or(ChartError::Font)
}

/// Makes untrusted text safe to draw: control characters become spaces,
/// surrounding whitespace is trimmed, and the result is capped at `max_chars`
/// (ending in an ellipsis when something was cut off, never inside a grapheme).
fn sanitize(text: &str, max_chars: usize) -> String {
    let clean: String = text
        .trim_matches(|c: char| c.is_whitespace() || c.is_control())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::chat::text::truncate(&clean, max_chars, crate::chat::text::Unit::Chars)
}

// ---------------------------------------------------------------------------
// Text

#[derive(Debug, Clone, Copy)]
enum Align {
    Start,
    Middle,
    End,
}

impl Align {
    fn factor(self) -> f32 {
        match self {
            Align::Start => 0.0,
            Align::Middle => 0.5,
            Align::End => 1.0,
        }
    }
}

/// A piece of text to draw once plotters is done with the buffer.
#[derive(Debug)]
struct Label {
    text: String,
    px: f32,
    /// Anchor point in image pixels.
    at: (i32, i32),
    /// Where the anchor is along the text / across it (top to bottom).
    along: Align,
    across: Align,
    /// Rotated 90° counter-clockwise (reads bottom to top).
    vertical: bool,
}

/// Advance width of `text` in pixels, with kerning.
fn text_width(font: &FontRef, px: f32, text: &str) -> f32 {
    let sf = font.as_scaled(PxScale::from(px));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            width += sf.kern(p, id);
        }
        width += sf.h_advance(id);
        prev = Some(id);
    }
    width
}

fn blend(rgb: &mut [u8], (x, y): (i32, i32), coverage: f32, color: RGBColor) {
    if x < 0 || y < 0 || x >= WIDTH as i32 || y >= HEIGHT as i32 {
        return;
    }
    let i = (y as usize * WIDTH as usize + x as usize) * 3;
    let a = coverage.clamp(0.0, 1.0);
    for (dst, src) in rgb[i..i + 3].iter_mut().zip([color.0, color.1, color.2]) {
        let d = f32::from(*dst);
        *dst = (d + (f32::from(src) - d) * a).round() as u8;
    }
}

fn draw_label(rgb: &mut [u8], font: &FontRef, label: &Label) {
    let scale = PxScale::from(label.px);
    let sf = font.as_scaled(scale);
    let width = text_width(font, label.px, &label.text);
    let height = sf.ascent() - sf.descent();
    // Offset of the anchor inside the (unrotated) text box, whole pixels.
    let dx = (width * label.along.factor()).round() as i32;
    let dy = (height * label.across.factor()).round() as i32;
    let (ax, ay) = label.at;
    let mut caret = 0.0;
    let mut prev = None;
    for c in label.text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(scale, point(caret, sf.ascent()));
        caret += sf.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue; // e.g. a space
        };
        let bounds = outline.px_bounds();
        let (bx, by) = (bounds.min.x as i32 - dx, bounds.min.y as i32 - dy);
        outline.draw(|gx, gy, coverage| {
            let (lx, ly) = (bx + gx as i32, by + gy as i32);
            let pos = if label.vertical {
                (ax + ly, ay - lx)
            } else {
                (ax + lx, ay + ly)
            };
            blend(rgb, pos, coverage, TEXT_COLOR);
        });
    }
}

/// Picks the title size (and if need be cuts the text) so the title fits in
/// `max_px`.
fn fit_title(font: &FontRef, title: &str, max_px: f32) -> (String, f32) {
    let mut px = TITLE_PX;
    while px > MIN_TITLE_PX && text_width(font, px, title) > max_px {
        px -= 1.0;
    }
    let mut text = title.to_owned();
    while text_width(font, px, &text) > max_px && text != "…" {
        // Drop the ellipsis (if any) and one more char, then re-add it.
        if text.ends_with('…') {
            text.pop();
        }
        text.pop();
        text.push('…');
    }
    (text, px)
}

// ---------------------------------------------------------------------------
// Layout helpers

/// Sum of one stack, in u64 so `3 * u32::MAX` fits.
fn bucket_total(b: &Bucket) -> u64 {
    u64::from(b.negative) + u64::from(b.neutral) + u64::from(b.positive)
}

/// A y axis from 0 to a "nice" max: a multiple of a 1/2/5×10^k step with
/// about 5 intervals, and always at least 1. Returns `(max, step)`.
fn nice_axis(max_total: u64) -> (u64, u64) {
    if max_total == 0 {
        return (1, 1);
    }
    let raw = max_total.div_ceil(5);
    let mut mag: u64 = 1;
    while let Some(next) = mag.checked_mul(10) {
        if next > raw {
            break;
        }
        mag = next;
    }
    let step = [1u64, 2, 5, 10]
        .iter()
        .filter_map(|m| m.checked_mul(mag))
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    let max = max_total.div_ceil(step).saturating_mul(step);
    (max, step)
}

/// Short tick label for a count: 950, 12k, 3.5M, 12.8B.
fn format_count(v: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")];
    if v < 10_000 {
        return v.to_string();
    }
    for (scale, suffix) in UNITS {
        if v >= scale {
            let whole = v / scale;
            let tenth = (v % scale) * 10 / scale;
            return if tenth == 0 || whole >= 100 {
                format!("{whole}{suffix}")
            } else {
                format!("{whole}.{tenth}{suffix}")
            };
        }
    }
    v.to_string()
}

/// One legend entry: a colour swatch followed by the series name.
#[derive(Debug, Clone, Copy)]
struct LegendItem {
    name: &'static str,
    color: RGBColor,
    /// Swatch corners in image pixels; `bottom_right` is exclusive.
    top_left: (i32, i32),
    bottom_right: (i32, i32),
}

/// The legend row, centred under the title.
fn legend_layout(font: &FontRef) -> [LegendItem; 3] {
    let items = [
        ("Negative", NEGATIVE_COLOR),
        ("Neutral", NEUTRAL_COLOR),
        ("Positive", POSITIVE_COLOR),
    ];
    let widths = items.map(|(name, _)| {
        LEGEND_SWATCH + LEGEND_TEXT_GAP + text_width(font, LEGEND_PX, name).ceil() as i32
    });
    let total: i32 = widths.iter().sum::<i32>() + LEGEND_ITEM_GAP * (items.len() as i32 - 1);
    let mut x = (WIDTH as i32 - total) / 2;
    // `from_fn` calls the closure for 0, 1, 2 in order.
    std::array::from_fn(|i| {
        let (name, color) = items[i];
        let item = LegendItem {
            name,
            color,
            top_left: (x, LEGEND_Y),
            bottom_right: (x + LEGEND_SWATCH, LEGEND_Y + LEGEND_SWATCH),
        };
        x += widths[i] + LEGEND_ITEM_GAP;
        item
    })
}

// ---------------------------------------------------------------------------
// Rendering

/// Renders the chart and returns the PNG file's bytes.
///
/// Safe to call concurrently from several threads.
pub fn render_png(spec: &ChartSpec) -> Result<Vec<u8>, ChartError> {
    let n = spec.buckets.len();
    if n == 0 {
        return Err(ChartError::NoBuckets);
    }
    if n > MAX_BUCKETS {
        return Err(ChartError::TooManyBuckets {
            got: n,
            max: MAX_BUCKETS,
        });
    }
    let font = font()?;
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    let labels = draw_geometry(spec, font, &mut rgb)?;
    for label in &labels {
        draw_label(&mut rgb, font, label);
    }
    encode_png(&rgb)
}

/// Draws everything but text with plotters and returns the text to draw.
fn draw_geometry(
    spec: &ChartSpec,
    font: &FontRef,
    rgb: &mut [u8],
) -> Result<Vec<Label>, ChartError> {
    let buckets = spec.buckets;
    let n = buckets.len() as u32; // <= MAX_BUCKETS
    let mut labels = Vec::new();
    let mut text = |text: String, px: f32, at: (i32, i32), along: Align, across: Align| {
        labels.push(Label {
            text,
            px,
            at,
            along,
            across,
            vertical: false,
        });
    };

    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let line = |from: (i32, i32), to: (i32, i32), color: RGBColor| {
        root.draw(&PathElement::new(vec![from, to], color.stroke_width(1)))
            .map_err(draw_err)
    };

    // Header: title, then the legend row.
    let title = sanitize(spec.title, MAX_TITLE_CHARS);
    let (title, title_px) = fit_title(font, &title, (WIDTH as i32 - 2 * MARGIN) as f32);
    text(
        title,
        title_px,
        (WIDTH as i32 / 2, TITLE_Y),
        Align::Middle,
        Align::Start,
    );
    for item in legend_layout(font) {
        let (top_left, bottom_right) = (item.top_left, item.bottom_right);
        root.draw(&Rectangle::new(
            [top_left, bottom_right],
            item.color.filled(),
        ))
        .map_err(draw_err)?;
        let at = (
            bottom_right.0 + LEGEND_TEXT_GAP,
            (top_left.1 + bottom_right.1) / 2,
        );
        text(
            item.name.to_owned(),
            LEGEND_PX,
            at,
            Align::Start,
            Align::Middle,
        );
    }

    // Plot area.
    let max_total = buckets.iter().map(bucket_total).max().unwrap_or(0);
    let (y_max, y_step) = nice_axis(max_total);
    let (_, body) = root.split_vertically(HEADER_HEIGHT);
    let mut chart = ChartBuilder::on(&body)
        .margin(MARGIN as u32)
        .margin_top(6)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(0u32..n * SLOT_UNITS, 0u64..y_max)
        .map_err(draw_err)?;
    let (x_px, y_px) = chart.plotting_area().get_pixel_range();
    let (axis_x, axis_y) = chart.backend_coord(&(0, 0));
    let right = x_px.end - 1;

    // Horizontal grid lines, y ticks and their labels.
    for tick in (0..=y_max / y_step).map(|i| i * y_step) {
        let (_, y) = chart.backend_coord(&(0, tick));
        if tick > 0 {
            line((axis_x, y), (right, y), GRID_COLOR)?;
        }
        line((axis_x - TICK_LEN, y), (axis_x - 1, y), AXIS_COLOR)?;
        let at = (axis_x - TICK_LEN - 4, y);
        text(format_count(tick), TICK_PX, at, Align::End, Align::Middle);
    }

    // Stacks: negative at the bottom, then neutral, then positive on top.
    let pad = (SLOT_UNITS - BAR_UNITS) / 2;
    let segments = buckets.iter().zip(0u32..).flat_map(|(b, i)| {
        let x0 = i * SLOT_UNITS + pad;
        let x1 = x0 + BAR_UNITS;
        let mut base = 0u64;
        [
            (b.negative, NEGATIVE_COLOR),
            (b.neutral, NEUTRAL_COLOR),
            (b.positive, POSITIVE_COLOR),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(move |(count, color)| {
            let top = base + u64::from(count);
            let rect = Rectangle::new([(x0, base), (x1, top)], color.filled());
            base = top;
            rect
        })
    });
    chart.draw_series(segments).map_err(draw_err)?;

    // Axes.
    line((axis_x, y_px.start), (axis_x, axis_y), AXIS_COLOR)?;
    line((axis_x, axis_y), (right, axis_y), AXIS_COLOR)?;

    // X labels: as many as fit without overlapping.
    let names: Vec<String> = buckets
        .iter()
        .map(|b| sanitize(&b.label, MAX_LABEL_CHARS))
        .collect();
    let widest = names
        .iter()
        .map(|s| text_width(font, TICK_PX, s).ceil() as i32)
        .max()
        .unwrap_or(0);
    let slot_px = ((right - axis_x) / n as i32).max(1);
    let every = ((widest + X_LABEL_GAP + slot_px - 1) / slot_px).max(1) as usize;
    for (i, name) in names.into_iter().enumerate().step_by(every) {
        let (x, _) = chart.backend_coord(&(i as u32 * SLOT_UNITS + SLOT_UNITS / 2, 0));
        line((x, axis_y + 1), (x, axis_y + TICK_LEN), AXIS_COLOR)?;
        let at = (x, axis_y + TICK_LEN + 4);
        text(name, TICK_PX, at, Align::Middle, Align::Start);
    }

    // Axis descriptions.
    let mid_x = (axis_x + right) / 2;
    text(
        "Time".to_owned(),
        DESC_PX,
        (mid_x, axis_y + 32),
        Align::Middle,
        Align::Start,
    );
    labels.push(Label {
        text: "Mentions".to_owned(),
        px: DESC_PX,
        at: (MARGIN + 8, (y_px.start + axis_y) / 2),
        along: Align::Middle,
        across: Align::Middle,
        vertical: true,
    });

    root.present().map_err(draw_err)?;
    Ok(labels)
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // The default level uses a very fast deflate (~135 KB for a 24-bucket
    // chart, ~1 ms); Best + adaptive filtering gives ~17 KB for ~15 ms,
    // which is the better trade for an image rendered once per digest.
    encoder.set_compression(png::Compression::Best);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Image {
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    }

    impl Image {
        fn pixel(&self, x: u32, y: u32) -> RGBColor {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            RGBColor(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
        }

        /// Pixels of exactly `color`, as (x, y).
        fn pixels_of(&self, color: RGBColor) -> Vec<(u32, u32)> {
            let mut out = Vec::new();
            for y in 0..self.height {
                for x in 0..self.width {
                    if self.pixel(x, y) == color {
                        out.push((x, y));
                    }
                }
            }
            out
        }

        fn distinct_colors(&self) -> usize {
            let mut set = std::collections::HashSet::new();
            for px in self.rgb.chunks_exact(3) {
                set.insert((px[0], px[1], px[2]));
            }
            set.len()
        }
    }

    fn decode(bytes: &[u8]) -> Image {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header decodes");
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("PNG frame decodes");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgb: buf,
        }
    }

    fn render(title: &str, buckets: &[Bucket]) -> Image {
        let png = render_png(&ChartSpec { title, buckets }).expect("renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let img = decode(&png);
        assert_eq!((img.width, img.height), (WIDTH, HEIGHT));
        img
    }

    fn bucket(label: impl Into<String>, negative: u32, neutral: u32, positive: u32) -> Bucket {
        Bucket {
            label: label.into(),
            negative,
            neutral,
            positive,
        }
    }

    fn hourly() -> Vec<Bucket> {
        (0..24u32)
            .map(|h| {
                let wave = (h as i32 - 12).unsigned_abs();
                bucket(format!("{h:02}:00"), wave % 5, 10 + wave, 20 - wave / 2)
            })
            .collect()
    }

    fn daily() -> Vec<Bucket> {
        [
            "Mon 04", "Tue 05", "Wed 06", "Thu 07", "Fri 08", "Sat 09", "Sun 10",
        ]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let i = i as u32;
            bucket(*d, 30 + 7 * i, 120 + 11 * i, 200 - 13 * i)
        })
        .collect()
    }

    fn swatch_of(color: RGBColor) -> ((i32, i32), (i32, i32)) {
        legend_layout(font().unwrap())
            .into_iter()
            .find(|item| item.color == color)
            .map(|item| (item.top_left, item.bottom_right))
            .unwrap()
    }

    fn in_rect((x, y): (u32, u32), ((x0, y0), (x1, y1)): ((i32, i32), (i32, i32))) -> bool {
        (x0..x1).contains(&(x as i32)) && (y0..y1).contains(&(y as i32))
    }

    /// Pixels of `color` that are not part of its legend swatch, i.e. bars.
    fn bar_pixels(img: &Image, color: RGBColor) -> Vec<(u32, u32)> {
        let swatch = swatch_of(color);
        img.pixels_of(color)
            .into_iter()
            .filter(|p| !in_rect(*p, swatch))
            .collect()
    }

    #[test]
    fn zero_buckets_is_an_error() {
        let err = render_png(&ChartSpec {
            title: "empty",
            buckets: &[],
        })
        .unwrap_err();
        assert!(matches!(err, ChartError::NoBuckets), "{err:?}");
        assert_eq!(err.to_string(), "chart has no buckets to draw");
    }

    #[test]
    fn too_many_buckets_is_an_error() {
        let buckets = vec![bucket("x", 1, 1, 1); MAX_BUCKETS + 1];
        let err = render_png(&ChartSpec {
            title: "t",
            buckets: &buckets,
        })
        .unwrap_err();
        assert!(matches!(err, ChartError::TooManyBuckets { .. }), "{err:?}");
    }

    #[test]
    fn hourly_chart_has_all_three_series_and_text() {
        let img = render("Mentions of Acme, last 24 h", &hourly());
        for color in [NEGATIVE_COLOR, NEUTRAL_COLOR, POSITIVE_COLOR] {
            assert!(!bar_pixels(&img, color).is_empty(), "no bars in {color:?}");
            let swatch = swatch_of(color);
            let legend = img
                .pixels_of(color)
                .into_iter()
                .filter(|p| in_rect(*p, swatch))
                .count();
            assert_eq!(legend, (LEGEND_SWATCH * LEGEND_SWATCH) as usize);
        }
        // Anti-aliased text produces many shades; flat bars alone would not.
        assert!(img.distinct_colors() > 20, "{}", img.distinct_colors());
        // The title is drawn: dark text pixels above the legend row.
        let title_ink = (0..LEGEND_Y as u32)
            .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let RGBColor(r, g, b) = img.pixel(x, y);
                r < 128 && r == g && g == b
            })
            .count();
        assert!(title_ink > 100, "title ink {title_ink}");
    }

    #[test]
    fn daily_chart_renders() {
        let img = render("Mentions of Acme, last 7 days", &daily());
        for color in [NEGATIVE_COLOR, NEUTRAL_COLOR, POSITIVE_COLOR] {
            assert!(!bar_pixels(&img, color).is_empty(), "no bars in {color:?}");
        }
        // 7 separate bars: count runs of negative colour along one row
        // just above the x axis.
        let neg = bar_pixels(&img, NEGATIVE_COLOR);
        let bottom = neg.iter().map(|p| p.1).max().unwrap();
        let mut xs: Vec<u32> = neg.iter().filter(|p| p.1 == bottom).map(|p| p.0).collect();
        xs.sort_unstable();
        let runs = 1 + xs.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert_eq!(runs, 7);
    }

    #[test]
    fn stack_order_is_negative_neutral_positive_bottom_up() {
        let img = render("order", &[bucket("only", 10, 10, 10)]);
        let neg = bar_pixels(&img, NEGATIVE_COLOR);
        let neu = bar_pixels(&img, NEUTRAL_COLOR);
        let pos = bar_pixels(&img, POSITIVE_COLOR);
        let x = neg[neg.len() / 2].0;
        let ys = |v: &[(u32, u32)]| -> (u32, u32) {
            let col: Vec<u32> = v.iter().filter(|p| p.0 == x).map(|p| p.1).collect();
            (*col.iter().min().unwrap(), *col.iter().max().unwrap())
        };
        let (neg_top, neg_bottom) = ys(&neg);
        let (neu_top, neu_bottom) = ys(&neu);
        let (pos_top, pos_bottom) = ys(&pos);
        // Image y grows downwards.
        assert!(pos_top < pos_bottom && pos_bottom < neu_top);
        assert!(neu_top < neu_bottom && neu_bottom < neg_top);
        assert!(neg_top < neg_bottom);
        // Equal counts give (nearly) equal heights.
        let h = |(a, b): (u32, u32)| i64::from(b - a);
        assert!((h((neg_top, neg_bottom)) - h((pos_top, pos_bottom))).abs() <= 2);
    }

    #[test]
    fn taller_stacks_have_more_pixels() {
        // The neutral-only reference bucket pins the y axis at 100 in both
        // charts, so only the negative bar's height differs.
        let short = render("s", &[bucket("ref", 0, 100, 0), bucket("x", 20, 0, 0)]);
        let tall = render("t", &[bucket("ref", 0, 100, 0), bucket("x", 80, 0, 0)]);
        let s = bar_pixels(&short, NEGATIVE_COLOR).len();
        let t = bar_pixels(&tall, NEGATIVE_COLOR).len();
        assert!(s > 0);
        assert!(t > s, "tall {t} <= short {s}");
        let ratio = t as f64 / s as f64;
        assert!((3.8..4.2).contains(&ratio), "ratio {ratio}");
        // The y axis ends at 100, so the reference bar reaches the topmost
        // grid line.
        // (Rows that are mostly grid colour; anti-aliased text has a few
        // pixels of that grey too.)
        let grid = tall.pixels_of(GRID_COLOR);
        let grid_top = (0..HEIGHT).find(|&y| grid.iter().filter(|p| p.1 == y).count() > 300);
        let bar_top = bar_pixels(&tall, NEUTRAL_COLOR).iter().map(|p| p.1).min();
        let (grid_top, bar_top) = (grid_top.unwrap(), bar_top.unwrap());
        assert!(
            grid_top.abs_diff(bar_top) <= 1,
            "grid {grid_top} bar {bar_top}"
        );
    }

    #[test]
    fn all_zero_chart_renders_with_only_legend_colours() {
        let buckets: Vec<Bucket> = hourly()
            .into_iter()
            .map(|b| bucket(b.label, 0, 0, 0))
            .collect();
        let img = render("quiet day", &buckets);
        for color in [NEGATIVE_COLOR, NEUTRAL_COLOR, POSITIVE_COLOR] {
            assert!(bar_pixels(&img, color).is_empty(), "bar drawn in {color:?}");
            assert!(!img.pixels_of(color).is_empty(), "legend swatch missing");
        }
        assert!(img.distinct_colors() > 20);
        assert_eq!(nice_axis(0), (1, 1));
    }

    #[test]
    fn huge_counts_do_not_panic() {
        let buckets = vec![
            bucket("a", u32::MAX, u32::MAX, u32::MAX),
            bucket("b", u32::MAX, 0, 0),
            bucket("c", 0, 0, u32::MAX),
            bucket("d", 1, 0, 0),
        ];
        let img = render("huge", &buckets);
        assert!(!bar_pixels(&img, NEGATIVE_COLOR).is_empty());
        assert!(!bar_pixels(&img, POSITIVE_COLOR).is_empty());
        let max = 3 * u64::from(u32::MAX);
        let (y_max, step) = nice_axis(max);
        assert!(y_max >= max && y_max % step == 0);
    }

    #[test]
    fn hostile_text_is_capped() {
        let long = "x".repeat(1_000_000);
        let t = sanitize(&long, MAX_TITLE_CHARS);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
        assert!(t.ends_with('…'));
        assert_eq!(sanitize("a\nb\tc\u{0}", 10), "a b c");
        assert_eq!(sanitize("  short  ", 10), "short");
        // A family emoji (one grapheme of 7 chars) is kept whole or dropped, never split.
        let family = "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        assert_eq!(sanitize(&format!("abcd{family}xyz"), 8), "abcd…");
        // Every label is capped before it is laid out, so a megabyte of title or label text
        // costs no more to draw than a short one (no timing here: the caps are the guarantee).
        let buckets: Vec<Bucket> = (0..24)
            .map(|i| bucket(format!("{long}{i}\u{1F600}"), 1, 2, 3))
            .collect();
        for b in &buckets {
            assert_eq!(
                sanitize(&b.label, MAX_LABEL_CHARS).chars().count(),
                MAX_LABEL_CHARS
            );
        }
        let img = render(&format!("{long}\n\u{202E}"), &buckets);
        assert!(!bar_pixels(&img, NEGATIVE_COLOR).is_empty());
    }

    #[test]
    fn nice_axis_steps() {
        assert_eq!(nice_axis(1), (1, 1));
        assert_eq!(nice_axis(3), (3, 1));
        assert_eq!(nice_axis(7), (8, 2));
        assert_eq!(nice_axis(37), (40, 10));
        assert_eq!(nice_axis(100), (100, 20));
        assert_eq!(nice_axis(101), (150, 50));
        assert_eq!(format_count(950), "950");
        assert_eq!(format_count(12_000), "12k");
        assert_eq!(format_count(3_500_000), "3.5M");
        assert_eq!(format_count(3 * u64::from(u32::MAX)), "12.8B");
    }

    #[test]
    fn renders_concurrently() {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    let buckets = if i % 2 == 0 { hourly() } else { daily() };
                    render_png(&ChartSpec {
                        title: "threads",
                        buckets: &buckets,
                    })
                    .map(|png| decode(&png).width)
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), WIDTH);
        }
    }

    /// Writes sample PNGs next to Cargo.toml for a human to look at.
    #[test]
    #[ignore = "writes files; run explicitly"]
    fn write_samples() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let hourly_png = render_png(&ChartSpec {
            title: "Acme mentions — last 24 hours",
            buckets: &hourly(),
        })
        .unwrap();
        std::fs::write(format!("{dir}/sample.png"), &hourly_png).unwrap();
        let daily_png = render_png(&ChartSpec {
            title: "Acme mentions — last 7 days",
            buckets: &daily(),
        })
        .unwrap();
        std::fs::write(format!("{dir}/sample-daily.png"), &daily_png).unwrap();
        let zero: Vec<Bucket> = hourly()
            .into_iter()
            .map(|b| bucket(b.label, 0, 0, 0))
            .collect();
        let zero_png = render_png(&ChartSpec {
            title: "Quiet day",
            buckets: &zero,
        })
        .unwrap();
        std::fs::write(format!("{dir}/sample-zero.png"), &zero_png).unwrap();
        let huge = vec![
            bucket("a", u32::MAX, u32::MAX, u32::MAX),
            bucket("b", u32::MAX, 0, 0),
            bucket("c", 0, 0, u32::MAX),
        ];
        let huge_png = render_png(&ChartSpec {
            title: &"A very long untrusted title ".repeat(10),
            buckets: &huge,
        })
        .unwrap();
        std::fs::write(format!("{dir}/sample-huge.png"), &huge_png).unwrap();
    }

    /// `cargo test --release -- --ignored bench_render --nocapture`
    #[test]
    #[ignore = "benchmark"]
    fn bench_render() {
        let buckets = hourly();
        let spec = ChartSpec {
            title: "Acme mentions — last 24 hours",
            buckets: &buckets,
        };
        let first = render_png(&spec).unwrap();
        let runs = 50;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(render_png(&spec).unwrap());
        }
        let per = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        println!("render_png: {per:.2} ms/render, {} bytes", first.len());
    }
}
