//! PNG plots of a report: latency percentiles by load, and throughput over time.

use std::path::Path;

use plotters::prelude::*;

use super::report::{Report, RunReport};

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Registers a font for labels: `MORA_PLOT_FONT`, or DejaVu Sans where distributions install it.
pub(super) fn register_font() -> anyhow::Result<()> {
    let candidates = [
        std::env::var("MORA_PLOT_FONT").unwrap_or_default(),
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
        "/usr/share/fonts/dejavu/DejaVuSans.ttf".into(),
        "/usr/share/fonts/TTF/DejaVuSans.ttf".into(),
    ];
    let bytes = candidates
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no TrueType font found for the plots; set MORA_PLOT_FONT to a .ttf file"
            )
        })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("the plot font could not be read"))?;
    Ok(())
}

fn label(r: &RunReport) -> String {
    format!("{:?} {}", r.system, r.mode.short()).to_lowercase()
}

/// Reads one percentile.
type Pick = fn(&super::report::Percentiles) -> f64;

/// Latency p50, p99 and p99.9 against load, one panel each, one line per system and mode.
pub(super) fn latency_by_load(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1500, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let max = report
        .runs
        .iter()
        .flat_map(|r| r.steps.iter().map(|s| s.latency_ms.p999))
        .fold(1.0f64, f64::max)
        * 1.5;
    let pick: [(&str, Pick); 3] = [
        ("p50", |p| p.p50),
        ("p99", |p| p.p99),
        ("p99.9", |p| p.p999),
    ];
    for (panel, (name, get)) in panels.iter().zip(pick) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("event → action latency, {name}"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(20f64..105f64, (0.5f64..max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("load, % of the maximum sustainable rate")
            .y_desc("ms")
            .draw()?;
        for (i, run) in report.runs.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = run
                .steps
                .iter()
                .filter(|s| s.latency_ms.count > 0)
                .map(|s| (s.load * 100.0, get(&s.latency_ms).max(0.5)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(label(run))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Events consumed per second over each run's time (backlog, then the load steps).
pub(super) fn throughput_over_time(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let rates: Vec<Vec<(f64, f64)>> = report.runs.iter().map(per_second).collect();
    let t_max = rates
        .iter()
        .flat_map(|r| r.iter().map(|p| p.0))
        .fold(10.0f64, f64::max);
    let y_max = rates
        .iter()
        .flat_map(|r| r.iter().map(|p| p.1))
        .fold(100.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("events consumed per second", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the system started (backlog first, then 25/50/75/100% load)")
        .y_desc("events/s")
        .draw()?;
    for (i, (run, points)) in report.runs.iter().zip(rates).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(label(run))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Consumption rate between consecutive samples about a second apart.
fn per_second(run: &RunReport) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut last: Option<(f64, u64)> = None;
    for s in &run.series {
        match last {
            Some((t, c)) if s.t - t >= 0.95 => {
                out.push((s.t, s.consumed.saturating_sub(c) as f64 / (s.t - t)));
                last = Some((s.t, s.consumed));
            }
            None => last = Some((s.t, s.consumed)),
            _ => {}
        }
    }
    out
}
