//! The SVG plot: latency percentiles per path, and throughput against concurrency.

use crate::report::Report;
use crate::scenario::{PathKind, Scenario};
use plotters::prelude::*;
use std::path::Path;

/// The ten of matplotlib's "tab10": every path of a run with peers gets its own.
const COLORS: [RGBColor; 10] = [
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

/// Draws the plot for the first scenario measured (GetUser when it ran).
pub fn draw(report: &Report, concurrency: &[usize], file: &Path) -> anyhow::Result<()> {
    let scenario = if report.cells.iter().any(|c| c.scenario == Scenario::GetUser) {
        Scenario::GetUser
    } else {
        report.cells.first().map(|c| c.scenario).ok_or_else(|| anyhow::anyhow!("nothing to plot"))?
    };
    let paths: Vec<PathKind> = {
        // In the order the run measured them.
        let mut p: Vec<PathKind> = Vec::new();
        for c in report.cells.iter().filter(|c| c.scenario == scenario) {
            if !p.contains(&c.path) {
                p.push(c.path);
            }
        }
        p
    };
    let lo = *concurrency.iter().min().unwrap_or(&1);
    let root = SVGBackend::new(file, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);

    let labels = ["p50", "p90", "p99", "p99.9"];
    let pct = |p: PathKind| -> Option<[f64; 4]> {
        let l = report.cell(scenario, lo, p)?.latency_ms.as_ref()?;
        Some([l.p50, l.p90, l.p99, l.p999])
    };
    let max_ms = paths.iter().filter_map(|p| pct(*p)).flat_map(|a| a.into_iter()).fold(0.1f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("{} latency at concurrency {lo} (ms)", scenario.name()), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..3f64, 0f64..max_ms)?;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_labels(4)
        .x_label_formatter(&|x| labels.get(x.round() as usize).copied().unwrap_or("").to_owned())
        .y_desc("ms")
        .draw()?;
    for (i, p) in paths.iter().enumerate() {
        if let Some(v) = pct(*p) {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(v.iter().enumerate().map(|(x, y)| (x as f64, *y)), color.stroke_width(2)))?
                .label(p.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let rps = |p: PathKind, c: usize| report.cell(scenario, c, p).map(|x| x.requests_per_s);
    let max_rps =
        paths.iter().flat_map(|p| concurrency.iter().filter_map(move |c| rps(*p, *c))).fold(1f64, f64::max) * 1.1;
    let xs: Vec<usize> = {
        let mut v = concurrency.to_vec();
        v.sort_unstable();
        v
    };
    let mut chart = ChartBuilder::on(&right)
        .caption(format!("{} throughput against concurrency (req/s)", scenario.name()), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..(xs.len().max(2) - 1) as f64, 0f64..max_rps)?;
    let xs_for_labels = xs.clone();
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_labels(xs.len().max(2))
        .x_label_formatter(&move |x| {
            xs_for_labels.get(x.round() as usize).map(|c| format!("c={c}")).unwrap_or_default()
        })
        .y_desc("req/s")
        .draw()?;
    for (i, p) in paths.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> =
            xs.iter().enumerate().filter_map(|(ix, c)| rps(*p, *c).map(|v| (ix as f64, v))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(p.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
