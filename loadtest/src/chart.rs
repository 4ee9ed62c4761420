//! An SVG chart of a run: admitted and refused requests per group over
//! time, and the estimated cleanup cost per group.
//!
//! plotters is built with only its SVG backend and no font features: text
//! goes into the SVG as `<text>` elements that the viewer renders, so
//! drawing needs neither fontconfig nor a font file on this machine.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 960;

/// Render the chart of `report` into an SVG string.
pub fn render_svg(report: &Report) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, report).map_err(|e| format!("chart: {e}"))?;
        root.present().map_err(|e| format!("chart: {e}"))?;
    }
    Ok(svg)
}

/// Render the chart of `report` into `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), String> {
    let svg = render_svg(report)?;
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(root: &Area<'_>, report: &Report) -> DrawResult {
    root.fill(&WHITE)?;
    let title = format!(
        "{} - {:.0}s, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms",
        report.scenario,
        report.elapsed_secs,
        report.totals.requests_per_sec,
        report.totals.latency.p50_ms,
        report.totals.latency.p99_ms
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(HEIGHT * 62 / 100);
    let (left, right) = top.split_horizontally(WIDTH / 2);
    timeline(&left, report, 0, "admitted requests per second")?;
    timeline(&right, report, 1, "refused requests per second")?;
    cleanup_bars(&bottom, report)?;
    Ok(())
}

/// One line per group of `timeline[*][which]`.
fn timeline(area: &Area<'_>, report: &Report, which: usize, caption: &str) -> DrawResult {
    let secs = report
        .groups
        .iter()
        .map(|g| g.timeline.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let peak = report
        .groups
        .iter()
        .flat_map(|g| g.timeline.iter().map(|t| t[which]))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..secs as f64, 0f64..(peak as f64 * 1.1))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("requests/s")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, g) in report.groups.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = g
            .timeline
            .iter()
            .enumerate()
            .map(|(s, t)| (s as f64, t[which] as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(g.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// One bar per group of its estimated cleanup cost.
fn cleanup_bars(area: &Area<'_>, report: &Report) -> DrawResult {
    let n = report.groups.len().max(1);
    let peak = report
        .groups
        .iter()
        .map(|g| g.estimated_cleanup_cost)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let labels: Vec<String> = report.groups.iter().map(|g| g.label.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "cleanup cost per group (estimated: unclaimed accounts x cost per account; no gateway ledger yet)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..peak * 1.15)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("cost units")
        .draw()?;
    chart.draw_series(report.groups.iter().enumerate().map(|(i, g)| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.35, 0.0), (x + 0.35, g.estimated_cleanup_cost)],
            Palette99::pick(i).to_rgba().filled(),
        )
    }))?;
    chart.draw_series(report.groups.iter().enumerate().map(|(i, g)| {
        Text::new(
            format!("{:.1}", g.estimated_cleanup_cost),
            (i as f64 - 0.1, g.estimated_cleanup_cost + peak * 0.02),
            ("sans-serif", 12),
        )
    }))?;
    Ok(())
}
