//! A line chart of the training loss, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::NetError;

/// Draws `losses` (one per epoch) as an SVG line chart and writes it to `path`.
///
/// The y axis is logarithmic when the positive losses span more than a factor of 100.
pub fn plot_loss_svg(path: &Path, losses: &[f64]) -> Result<(), NetError> {
    let svg = loss_svg(losses).map_err(|e| with_path(e, path))?;
    std::fs::write(path, svg).map_err(|e| NetError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Draws `losses` (one per epoch) as an SVG document in memory.
pub fn loss_svg(losses: &[f64]) -> Result<String, NetError> {
    let fail = |message: String| NetError::Plot {
        path: Default::default(),
        message,
    };
    let points: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| ((i + 1) as f64, l))
        .collect();
    if points.is_empty() {
        return Err(fail("there are no finite loss values to draw".into()));
    }
    let positive = || points.iter().map(|p| p.1).filter(|&l| l > 0.0);
    let min = positive().fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let x_max = (points.len() as f64).max(2.0);
    let log = min.is_finite() && max / min > 100.0;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption("training loss (MSE)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        let style = RED.stroke_width(2);
        if log {
            let data: Vec<(f64, f64)> = points.into_iter().filter(|p| p.1 > 0.0).collect();
            let mut chart = builder
                .build_cartesian_2d(1f64..x_max, (min * 0.9..max * 1.1).log_scale())
                .map_err(|e| fail(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("loss (log scale)")
                .draw()
                .map_err(|e| fail(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(data, style))
                .map_err(|e| fail(e.to_string()))?;
        } else {
            let low = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let pad = ((max - low) * 0.05).max(max.abs() * 1e-3).max(1e-12);
            let mut chart = builder
                .build_cartesian_2d(1f64..x_max, (low - pad).min(0.0)..max + pad)
                .map_err(|e| fail(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("loss")
                .draw()
                .map_err(|e| fail(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}

fn with_path(error: NetError, path: &Path) -> NetError {
    match error {
        NetError::Plot { message, .. } => NetError::Plot {
            path: path.to_owned(),
            message,
        },
        other => other,
    }
}
