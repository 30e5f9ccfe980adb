//! The simulation report's SVG plots (plotters): the CDF of time to every member against
//! its bounds, the world map of one entry's spread, and idle traffic by federation size.

use std::path::Path;

use anyhow::{Result, anyhow};

use super::super::Setup;
use super::super::scenarios::Propagation;

/// A plotters error (its types differ by backend) as ours.
fn error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {error}")
}

/// CDF of time to every member, with the CDFs of the bound, 3× the bound and the physical
/// limit of the same entries' publishers.
pub(super) fn propagation(path: &Path, run: &Propagation) -> Result<()> {
    use plotters::prelude::*;
    let sorted = |mut values: Vec<u64>| {
        values.sort_unstable();
        values
    };
    let measured = sorted(run.spreads.iter().filter_map(|s| s.to_every_ms).collect());
    let bound = sorted(run.spreads.iter().map(|s| s.bound_ms).collect());
    let three = sorted(run.spreads.iter().map(|s| s.bound_ms * 3).collect());
    let physical = sorted(run.spreads.iter().map(|s| s.physical_ms).collect());
    let max = [&measured, &three]
        .iter()
        .filter_map(|values| values.last().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let total = run.spreads.len().max(1) as f64;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Time to every member, {} members", run.nodes),
            ("sans-serif", 18),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u64..max + max / 20, 0f64..1f64)
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("ms (simulated) from creation to stored on every member")
        .y_desc("fraction of entries")
        .draw()
        .map_err(error)?;
    let curves: [(&str, &Vec<u64>, RGBColor); 4] = [
        ("measured", &measured, BLUE),
        ("bound: farthest member, model", &bound, GREEN),
        ("3 × bound (goal)", &three, RED),
        ("physical limit", &physical, BLACK),
    ];
    for (label, values, colour) in curves {
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .map(|(index, ms)| (*ms, (index + 1) as f64 / total)),
                colour,
            ))
            .map_err(error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}

/// Members at their capitals (longitude, latitude), coloured from blue (earliest mean
/// arrival) to red (latest); members that stored nothing in black.
pub(super) fn world(path: &Path, run: &Propagation, setup: &Setup) -> Result<()> {
    use plotters::prelude::*;
    let known: Vec<f64> = run.mean_arrival_ms.iter().flatten().copied().collect();
    let low = known.iter().copied().fold(f64::INFINITY, f64::min);
    let high = known.iter().copied().fold(0.0, f64::max);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Mean arrival per member, {} members: blue {low:.0} ms to red {high:.0} ms",
                run.nodes
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-180f64..180f64, -60f64..80f64)
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("longitude")
        .y_desc("latitude")
        .draw()
        .map_err(error)?;
    let points = (0..setup.len()).filter_map(|node| {
        let capital = setup.capital(node)?;
        let colour = match run.mean_arrival_ms.get(node).copied().flatten() {
            Some(ms) => {
                let share = if high > low {
                    (ms - low) / (high - low)
                } else {
                    0.0
                };
                let red = (share * 255.0).round().clamp(0.0, 255.0) as u8;
                RGBColor(red, 0, 255 - red)
            }
            None => BLACK,
        };
        Some(Circle::new(
            (capital.longitude, capital.latitude),
            3,
            colour.filled(),
        ))
    });
    chart.draw_series(points).map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}

/// Idle bytes per node (in + out) against members.
pub(super) fn idle(path: &Path, points: &[(usize, f64)]) -> Result<()> {
    use plotters::prelude::*;
    let max_nodes = points.iter().map(|(nodes, _)| *nodes).max().unwrap_or(1);
    let max_bytes = points.iter().map(|(_, bytes)| *bytes).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Idle traffic per node", ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0usize..max_nodes + max_nodes / 10 + 1,
            0f64..max_bytes * 1.6,
        )
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("members")
        .y_desc("bytes/s per node, in + out")
        .draw()
        .map_err(error)?;
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(nodes, _)| *nodes);
    chart
        .draw_series(LineSeries::new(sorted.iter().copied(), &BLUE))
        .map_err(error)?;
    chart
        .draw_series(
            sorted
                .iter()
                .map(|point| Circle::new(*point, 4, BLUE.filled())),
        )
        .map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}
