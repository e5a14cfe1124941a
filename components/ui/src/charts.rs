//! Charts, drawn server-side as SVG by plotters (its SVG backend: no fonts to load, no
//! script, nothing fetched), inlined in the page.
//!
//! Each chart is a picture of the table printed beside it, which carries the numbers (and is
//! what a screen reader reads): the SVG is `role="img"` with a label. Colours are set by
//! plotters as attributes; the stylesheet restyles text and grid for dark mode (`.chart`),
//! and no chart relies on colour alone: the table names every series.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// The drawing size; the stylesheet scales the SVG to its column's width.
const SIZE: (u32, u32) = (640, 260);

/// Lead-time median line, and the band up to the p90.
const MEDIAN: RGBColor = RGBColor(37, 99, 235);
const BAND: RGBColor = RGBColor(147, 197, 253);
const BARS: RGBColor = RGBColor(13, 148, 136);
/// The lead-time stages, in order.
const STAGES: [RGBColor; 3] = [
    RGBColor(37, 99, 235),
    RGBColor(217, 119, 6),
    RGBColor(124, 58, 237),
];

/// One period of a chart: its label and its figures.
pub(crate) struct Point {
    pub(crate) label: String,
    pub(crate) value: Option<f64>,
    /// The p90, for a band above the median.
    pub(crate) upper: Option<f64>,
}

/// What a chart draws.
pub(crate) enum Chart<'a> {
    /// A line of medians with a band to each period's p90 (durations).
    Band(&'a [Point]),
    /// A bar per period.
    Bars(&'a [Point]),
    /// One horizontal bar split in named parts (the lead-time stages).
    Stacked(&'a [(&'a str, f64)]),
}

/// The chart as an `<svg>` element labelled `label`, or a note when there is nothing to draw.
pub(crate) fn svg(chart: &Chart<'_>, label: &str, y_unit: &str) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        let drawn = match chart {
            Chart::Band(points) => band(&root, points, y_unit),
            Chart::Bars(points) => bars(&root, points, y_unit),
            Chart::Stacked(parts) => stacked(&root, parts),
        };
        drawn.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(()) => {
            let escaped = maud::html! { (label) }.into_string();
            out.replacen(
                "<svg ",
                &format!("<svg role=\"img\" aria-label=\"{escaped}\" class=\"plot\" "),
                1,
            )
        }
        Err(error) => format!("<p class=\"note\">The chart could not be drawn: {error}.</p>"),
    }
}

fn top(points: &[Point]) -> f64 {
    let top = points
        .iter()
        .flat_map(|p| [p.value, p.upper])
        .flatten()
        .fold(0.0f64, f64::max);
    if top > 0.0 { top * 1.1 } else { 1.0 }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn axes<'a, 'b>(
    root: &'b Area<'a>,
    points: &[Point],
    y_unit: &str,
) -> Result<ChartContext<'b, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let count = points.len().max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5..count - 0.5, 0.0..top(points))
        .map_err(|e| e.to_string())?;
    let labels: Vec<&str> = points.iter().map(|p| p.label.as_str()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Major lines only: a light line between each pair would double the page's weight.
        .max_light_lines(0)
        .y_labels(5)
        .x_labels(points.len().clamp(1, 8))
        .x_label_formatter(&|x| {
            let index = x.round();
            if (x - index).abs() > 0.01 || index < 0.0 {
                return String::new();
            }
            labels.get(index as usize).copied().unwrap_or("").to_owned()
        })
        .y_desc(y_unit)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

fn band(root: &Area<'_>, points: &[Point], y_unit: &str) -> Result<(), String> {
    let mut chart = axes(root, points, y_unit)?;
    // The band: medians left to right, then p90s back; a period without either breaks it.
    let lower: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i as f64, p.value?)))
        .collect();
    let upper: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i as f64, p.upper?)))
        .collect();
    if lower.len() > 1 && lower.len() == upper.len() {
        let outline: Vec<(f64, f64)> = lower
            .iter()
            .copied()
            .chain(upper.iter().rev().copied())
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                BAND.mix(0.5).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    // The median line joins consecutive weeks only: a week without figures is a gap, not
    // a straight line across it.
    let mut run: Vec<(f64, f64)> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        match point.value {
            Some(value) => run.push((index as f64, value)),
            None => draw_line(&mut chart, &mut run)?,
        }
    }
    draw_line(&mut chart, &mut run)?;
    chart
        .draw_series(
            lower
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, MEDIAN.filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws the run of points as one line, and empties it.
fn draw_line(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    run: &mut Vec<(f64, f64)>,
) -> Result<(), String> {
    if run.len() > 1 {
        chart
            .draw_series(LineSeries::new(run.iter().copied(), MEDIAN.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    run.clear();
    Ok(())
}

fn bars(root: &Area<'_>, points: &[Point], y_unit: &str) -> Result<(), String> {
    let mut chart = axes(root, points, y_unit)?;
    chart
        .draw_series(points.iter().enumerate().filter_map(|(i, p)| {
            let x = i as f64;
            Some(Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, p.value?)],
                BARS.filled(),
            ))
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn stacked(root: &Area<'_>, parts: &[(&str, f64)]) -> Result<(), String> {
    let total: f64 = parts.iter().map(|(_, v)| v.max(0.0)).sum();
    let total = if total > 0.0 { total } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(28)
        .build_cartesian_2d(0.0..total, 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .max_light_lines(0)
        .x_labels(6)
        .x_desc("minutes")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let mut start = 0.0;
    for (index, (name, value)) in parts.iter().enumerate() {
        let end = start + value.max(0.0);
        let colour = STAGES[index % STAGES.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, 0.3), (end, 0.7)],
                colour.filled(),
            )))
            .map_err(|e| e.to_string())?;
        // The part's name above it: the colours are a key, not the only one.
        chart
            .draw_series(std::iter::once(Text::new(
                (*name).to_owned(),
                (start, 0.8 - 0.1 * index as f64),
                ("sans-serif", 12).into_font().color(&colour),
            )))
            .map_err(|e| e.to_string())?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(f64, f64)]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, (v, u))| Point {
                label: format!("W{i}"),
                value: Some(*v),
                upper: Some(*u),
            })
            .collect()
    }

    #[test]
    fn a_chart_is_an_svg_without_inline_styles() {
        let points = points(&[(1.0, 2.0), (3.0, 5.0), (2.0, 2.5)]);
        for chart in [Chart::Band(&points), Chart::Bars(&points)] {
            let svg = svg(&chart, "Lead time <median>", "minutes");
            assert!(svg.starts_with("<svg role=\"img\" aria-label=\"Lead time &lt;median&gt;\""));
            // The page's CSP allows no inline style: plotters must not write any.
            assert!(!svg.contains("style="), "{svg}");
            assert!(svg.contains("W1"), "the x labels are the periods: {svg}");
        }
        let stacked = svg(&Chart::Stacked(&[("build", 3.0), ("deploy", 1.0)]), "x", "");
        assert!(stacked.contains("build") && !stacked.contains("style="));
    }

    #[test]
    fn an_empty_series_still_draws_axes() {
        let svg = svg(&Chart::Bars(&[]), "none", "deployments");
        assert!(svg.starts_with("<svg"), "{svg}");
    }
}
