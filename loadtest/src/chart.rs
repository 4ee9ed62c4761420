//! An SVG chart of a run: admitted and refused requests per group over
//! time, the cleanup cost each group left (from the gateway's ledger when
//! it was read, else estimated), and each group's worst source key against
//! its refuse budget.
//!
//! plotters is built with only its SVG backend and no font features: text
//! goes into the SVG as `<text>` elements that the viewer renders, so
//! drawing needs neither fontconfig nor a font file on this machine.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1300;

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
    let (top, bottom) = root.split_vertically(HEIGHT * 44 / 100);
    let (left, right) = top.split_horizontally(WIDTH / 2);
    timeline(&left, report, 0, "admitted requests per second")?;
    timeline(&right, report, 1, "refused requests per second")?;
    let (middle, lowest) = bottom.split_vertically((HEIGHT * 56 / 100) / 2);
    cleanup_bars(&middle, report)?;
    budget_bars(&lowest, report)?;
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
        .max(report.elapsed_secs.ceil() as usize)
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
        // Headroom above the lines for the legend.
        .build_cartesian_2d(0f64..secs as f64, 0f64..(peak as f64 * 1.5))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("requests/s")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, g) in report.groups.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> =
            g.timeline.iter().enumerate().map(|(s, t)| (s as f64, t[which] as f64)).collect();
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

/// Labels of the groups for a categorical x axis.
fn group_axis(labels: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 0.01 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// A chart with one slot per group on the x axis (labelled with the group names) and
/// `0..y_max` on the y axis, its mesh drawn: the frame both bar charts share.
fn group_bar_chart<'a, 'b>(
    area: &'a Area<'b>,
    (caption, size): (&str, u32),
    labels: &[String],
    y_max: f64,
    y_desc: &str,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    Box<dyn std::error::Error>,
> {
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", size))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)?;
    let fmt = group_axis(labels);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_labels(n)
        .x_label_formatter(&fmt)
        .x_label_style(("sans-serif", 13))
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// One bar per group of the cleanup units it left.
fn cleanup_bars(area: &Area<'_>, report: &Report) -> DrawResult {
    let peak =
        report.groups.iter().map(|g| g.cleanup.cleanup_units).fold(0.0f64, f64::max).max(1.0);
    let labels: Vec<String> = report.groups.iter().map(|g| g.label.clone()).collect();
    let ledger = report.groups.iter().any(|g| g.cleanup.basis == "ledger");
    let caption = if ledger {
        "cleanup units charged per group (gateway ledger: accounts that expired unclaimed)"
    } else {
        "cleanup cost per group (ESTIMATED: unclaimed accounts x cost per account; no ledger read)"
    };
    let mut chart = group_bar_chart(area, (caption, 17), &labels, peak * 1.2, "cost units")?;
    chart.draw_series(report.groups.iter().enumerate().map(|(i, g)| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.35, 0.0), (x + 0.35, g.cleanup.cleanup_units)],
            Palette99::pick(i).to_rgba().filled(),
        )
    }))?;
    chart.draw_series(report.groups.iter().enumerate().map(|(i, g)| {
        let c = &g.cleanup;
        let text = if c.basis == "ledger" {
            format!(
                "{:.0} u, {} expired, {} claimed",
                c.cleanup_units, c.accounts_expired_unclaimed, c.accounts_claimed
            )
        } else {
            format!("{:.1}", c.cleanup_units)
        };
        Text::new(text, (i as f64 - 0.4, c.cleanup_units + peak * 0.04), ("sans-serif", 12))
    }))?;
    Ok(())
}

/// Per group: its worst source key's debt as a share of that key's refuse
/// budget, with the budget (100%) and the harder proof-of-work threshold
/// marked.
fn budget_bars(area: &Area<'_>, report: &Report) -> DrawResult {
    let labels: Vec<String> = report.groups.iter().map(|g| g.label.clone()).collect();
    let pct = |g: &crate::report::GroupReport| -> Option<(f64, f64, Option<f64>)> {
        let k = g.cleanup.worst_key.as_ref()?;
        let b = k.refuse_at.max(1) as f64;
        Some((
            100.0 * k.debt as f64 / b,
            100.0 * k.allowed as f64 / b,
            k.harder_pow_at.map(|h| 100.0 * h as f64 / b),
        ))
    };
    let peak =
        report.groups.iter().filter_map(|g| pct(g).map(|p| p.0.max(p.1))).fold(100.0f64, f64::max);
    let any = report.groups.iter().any(|g| g.cleanup.worst_key.is_some());
    let caption = if any {
        "worst source key per group: ledger debt as % of its refuse budget (red = refuse budget, orange = harder proof-of-work, black = allowance after a trip)"
    } else {
        "budgets not checked: no gateway ledger or policy budgets were read"
    };
    let mut chart =
        group_bar_chart(area, (caption, 16), &labels, peak * 1.25, "% of refuse budget")?;
    chart.draw_series(report.groups.iter().enumerate().filter_map(|(i, g)| {
        let (p, _, _) = pct(g)?;
        let x = i as f64;
        Some(Rectangle::new([(x - 0.3, 0.0), (x + 0.3, p)], Palette99::pick(i).to_rgba().filled()))
    }))?;
    chart.draw_series(report.groups.iter().enumerate().filter_map(|(i, g)| {
        pct(g)?;
        let x = i as f64;
        Some(PathElement::new(vec![(x - 0.42, 100.0), (x + 0.42, 100.0)], RED.stroke_width(3)))
    }))?;
    chart.draw_series(report.groups.iter().enumerate().filter_map(|(i, g)| {
        let h = pct(g)?.2?;
        let x = i as f64;
        Some(PathElement::new(
            vec![(x - 0.42, h), (x + 0.42, h)],
            RGBColor(230, 140, 0).stroke_width(2),
        ))
    }))?;
    // Once a key tripped, accounts it created before the trip may still
    // be charged: its allowance (black) can sit above the budget.
    chart.draw_series(report.groups.iter().enumerate().filter_map(|(i, g)| {
        let k = g.cleanup.worst_key.as_ref()?;
        k.tripped_after_secs?;
        let (_, allowed, _) = pct(g)?;
        let x = i as f64;
        Some(PathElement::new(
            vec![(x - 0.42, allowed), (x + 0.42, allowed)],
            BLACK.stroke_width(2),
        ))
    }))?;
    chart.draw_series(report.groups.iter().enumerate().filter_map(|(i, g)| {
        let k = g.cleanup.worst_key.as_ref()?;
        let (p, allowed, _) = pct(g)?;
        let kind = crate::ledger::key_kind(&k.key).to_string();
        let text = format!(
            "{}/{} {kind}{}{}",
            k.debt,
            k.refuse_at,
            match k.tripped_after_secs {
                Some(t) => format!(", trip {t}s"),
                None => String::new(),
            },
            if k.within { "" } else { " OVER" }
        );
        Some(Text::new(
            text,
            (i as f64 - 0.42, p.max(allowed).max(100.0) + peak * 0.1),
            ("sans-serif", 12),
        ))
    }))?;
    Ok(())
}
