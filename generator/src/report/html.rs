//! `report.html`: the report as a page people look at. One self-contained file: inline CSS
//! and SVG charts, no script, no fonts or images from anywhere. Everything shown is computed
//! here; the template (templates/report/report.html) only lays it out.

use askama::Template;

use crate::plan::Plan;
use crate::report::{thousands, MatrixReport, Report};

/// What `kpgen test` measured, per language and variant, for the page's last section.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Where it ran (`qemu-system-arm -M mps2-an386`, or the host compiler).
    pub platform: String,
    pub sequences: usize,
    pub reference_accuracy: Option<f64>,
    pub rows: Vec<MeasuredRow>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MeasuredRow {
    /// `model`, or `dense` for the same model with every matrix expanded.
    pub variant: String,
    pub lang: String,
    pub pass: bool,
    pub max_abs_error: f64,
    pub accuracy: Option<f64>,
    pub instructions_per_step: Option<u64>,
    pub flash_bytes: Option<u64>,
    pub ram_bytes: Option<u64>,
    pub stack_bytes: Option<u64>,
}

#[derive(Template)]
#[template(path = "report/report.html", escape = "html")]
struct Page {
    title: String,
    summary: Vec<(String, String)>,
    notes: Vec<String>,
    matrices: Vec<Vec<String>>,
    quant: Vec<Vec<String>>,
    quant_summary: Option<String>,
    params_chart: String,
    memory_chart: String,
    measured: Option<MeasuredView>,
}

struct MeasuredView {
    caption: String,
    rows: Vec<Vec<String>>,
    charts: Vec<String>,
    notes: Vec<String>,
}

/// The page for `report` (and the plan it describes), with `measured` when `kpgen test` ran.
pub fn render(report: &Report, plan: &Plan, measured: Option<&Measured>) -> String {
    let t = &report.totals;
    let page = Page {
        title: format!(
            "{} for {} ({})",
            report.model,
            report.target,
            precision_name(report)
        ),
        summary: vec![
            ("target".into(), report.target.clone()),
            ("precision".into(), precision_name(report).to_owned()),
            ("optimized for".into(), report.optimize.why.to_owned()),
            (
                "input".into(),
                format!(
                    "{} features x {} steps",
                    report.input_features, report.input_steps
                ),
            ),
            ("output".into(), format!("{} values", report.output_size)),
            (
                "parameters".into(),
                format!(
                    "{} stored for {} dense ({:.2}x)",
                    thousands(t.params_stored as u64),
                    thousands(t.params_dense as u64),
                    t.compression
                ),
            ),
            (
                "MACs per step".into(),
                format!(
                    "{} (dense {})",
                    thousands(t.macs_per_step as u64),
                    thousands(t.dense_macs_per_step as u64)
                ),
            ),
            (
                "weights".into(),
                format!(
                    "{} B + {} B of overlay indices",
                    thousands(t.weight_bytes as u64),
                    thousands(t.overlay_index_bytes as u64)
                ),
            ),
            (
                "flash estimate".into(),
                report.flash.as_ref().map_or_else(
                    || "not estimated".to_owned(),
                    |f| {
                        format!(
                            "{} B: data {} B + code {} B (the model's object at -Os)",
                            thousands(f.total_bytes),
                            thousands(f.data_bytes),
                            thousands(f.code_bytes)
                        )
                    },
                ),
            ),
            (
                "state (RAM)".into(),
                format!("{} B", thousands(t.state_bytes as u64)),
            ),
        ],
        notes: report.notes.clone(),
        matrices: report
            .layers
            .iter()
            .flat_map(|l| {
                l.matrices
                    .iter()
                    .map(move |m| matrix_row(l.index, &format!("{:?}", l.kind), m))
            })
            .collect(),
        quant: quant_rows(report),
        quant_summary: report.quantization.as_ref().map(|q| {
            format!(
                "input codes: {} bits, scale {:.3e}, zero point {}; output codes: {} bits, scale \
                 {:.3e}, zero point {}; calibrated on {}",
                q.input.bits,
                q.input.scale,
                q.input.zero_point,
                q.output.bits,
                q.output.scale,
                q.output.zero_point,
                q.calibration
            )
        }),
        params_chart: params_chart(report),
        memory_chart: memory_chart(report, plan),
        measured: measured.map(measured_view),
    };
    page.render()
        .unwrap_or_else(|e| format!("<!doctype html><p>report could not be rendered: {e}</p>\n"))
}

fn precision_name(report: &Report) -> &'static str {
    match report.precision {
        crate::spec::Precision::F32 => "float32",
        crate::spec::Precision::Int16 => "int16",
        crate::spec::Precision::Int8 => "int8",
    }
}

fn matrix_row(layer: usize, kind: &str, m: &MatrixReport) -> Vec<String> {
    let structure = match (&m.kron, &m.factors, m.rank) {
        (Some(k), _, _) => format!(
            "{}({}x{}) ⊗ ({}x{})",
            m.dense_rows
                .map_or(String::new(), |r| format!("{r} dense rows over ")),
            k.m1,
            k.n1,
            k.m2,
            k.n2
        ),
        (None, Some(f), _) => f
            .dims
            .iter()
            .map(|(r, c)| format!("({r}x{c})"))
            .collect::<Vec<_>>()
            .join(" ⊗ "),
        (None, None, Some(r)) => format!("rank {r}"),
        _ => String::new(),
    };
    let order = match (&m.order, &m.factor_order, m.other_order_macs) {
        (Some(o), _, Some(other)) => format!("{o:?} ({} MACs; other order {})", m.macs, other),
        (None, Some(f), Some(other)) => format!(
            "factors {} ({} MACs; other order {}{})",
            crate::plan::shapes::order_text(f),
            m.macs,
            other,
            m.other_factor_order
                .as_ref()
                .map_or(String::new(), |o| format!(
                    ": {}, the cheaper single-loop order",
                    crate::plan::shapes::order_text(o)
                ))
        ),
        _ => String::new(),
    };
    let overlay = m.overlay.as_ref().map_or(String::new(), |o| {
        format!(
            "{} non-zeros ({:.1}%), {}{}",
            o.nnz,
            100.0 * o.density,
            o.encoding.replace('_', "-"),
            if o.index_bytes > 0 {
                format!(", {} B of indices", o.index_bytes)
            } else {
                String::new()
            }
        )
    });
    vec![
        format!("{layer} {}", kind.to_lowercase()),
        m.field.to_owned(),
        format!("{}x{}", m.rows, m.cols),
        m.form.to_owned(),
        structure,
        order,
        if m.unrolled.is_empty() {
            "loops".to_owned()
        } else {
            format!("unrolled: {}", m.unrolled.join(", "))
        },
        overlay,
        thousands(m.params_stored as u64),
        thousands(m.params_dense as u64),
        format!("{:.2}x", m.compression),
        thousands(m.macs as u64),
    ]
}

fn quant_rows(report: &Report) -> Vec<Vec<String>> {
    let Some(q) = &report.quantization else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for m in &q.matrices {
        let stages = m
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("stage {i}"), s));
        for (what, s) in stages.chain(m.overlay.iter().map(|s| ("overlay".to_owned(), s))) {
            rows.push(vec![
                m.id.clone(),
                what,
                format!("{} bits", s.weight_bits),
                format!("{:.3e}", s.weight_scale),
                format!("{:.3e}", s.input_scale),
                format!("{:.3e}", s.output_scale),
                if s.wide { "int64" } else { "int32" }.to_owned(),
                thousands(s.bound.unsigned_abs()),
            ]);
        }
    }
    rows
}

/// Escapes text for SVG and HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart: per row a label and one bar per series, scaled to the largest value.
fn bar_chart(title: &str, unit: &str, series: &[&str], rows: &[(String, Vec<u64>)]) -> String {
    const COLOURS: [&str; 3] = ["#1f5fa8", "#b7c9e2", "#d98c1f"];
    let (label_w, bar_w, bar_h, gap) = (190.0, 420.0, 14.0, 8.0);
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let row_h = bar_h * series.len() as f64 + gap;
    let height = 40.0 + row_h * rows.len() as f64 + 24.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{w}\" height=\"{height}\" \
         viewBox=\"0 0 {w} {height}\" aria-label=\"{t}\">\n<text x=\"0\" y=\"16\" \
         class=\"chart-title\">{t}</text>\n",
        w = label_w + bar_w + 120.0,
        t = esc(title)
    );
    for (i, (label, values)) in rows.iter().enumerate() {
        let y0 = 32.0 + row_h * i as f64;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            label_w - 8.0,
            y0 + bar_h,
            esc(label)
        );
        for (k, v) in values.iter().enumerate() {
            let y = y0 + bar_h * k as f64;
            let w = (bar_w * *v as f64 / max).max(1.0);
            svg += &format!(
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {} {}</title></rect>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{} {}</text>\n",
                bar_h - 2.0,
                COLOURS[k % COLOURS.len()],
                esc(series[k]),
                thousands(*v),
                unit,
                label_w + w + 4.0,
                y + bar_h - 4.0,
                thousands(*v),
                unit
            );
        }
    }
    let legend_y = height - 8.0;
    for (k, s) in series.iter().enumerate() {
        let x = label_w + 140.0 * k as f64;
        svg += &format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{legend_y}\">{}</text>\n",
            legend_y - 9.0,
            COLOURS[k % COLOURS.len()],
            x + 14.0,
            esc(s)
        );
    }
    svg + "</svg>"
}

fn params_chart(report: &Report) -> String {
    let rows: Vec<(String, Vec<u64>)> = report
        .layers
        .iter()
        .flat_map(|l| {
            l.matrices.iter().map(move |m| {
                (
                    format!("layer {} {}", l.index, m.field),
                    vec![m.params_stored as u64, m.params_dense as u64],
                )
            })
        })
        .collect();
    bar_chart(
        "Parameters per matrix",
        "",
        &["stored", "dense equivalent"],
        &rows,
    )
}

fn memory_chart(report: &Report, plan: &Plan) -> String {
    let value_bytes = report.precision.value_bytes() as u64;
    let mut rows: Vec<(String, Vec<u64>)> = report
        .layers
        .iter()
        .map(|l| {
            let overlay: usize = l
                .matrices
                .iter()
                .filter_map(|m| m.overlay.as_ref())
                .map(|o| o.index_bytes)
                .sum();
            (
                format!("flash: layer {} weights", l.index),
                vec![l.params_stored as u64 * value_bytes + overlay as u64],
            )
        })
        .collect();
    if let Some(f) = &report.flash {
        rows.push(("flash: code (estimate)".to_owned(), vec![f.code_bytes]));
    }
    rows.extend(plan.buffers.iter().map(|b| {
        (
            format!("RAM: {}", b.name),
            vec![b.bytes(plan.precision) as u64],
        )
    }));
    bar_chart("Flash and RAM by part", "B", &["bytes"], &rows)
}

fn measured_view(m: &Measured) -> MeasuredView {
    let rows = m
        .rows
        .iter()
        .map(|r| {
            let opt = |v: Option<u64>| v.map_or("-".to_owned(), thousands);
            vec![
                r.variant.clone(),
                r.lang.clone(),
                if r.pass { "pass" } else { "FAIL" }.to_owned(),
                format!("{:.2e}", r.max_abs_error),
                r.accuracy
                    .map_or("-".to_owned(), |a| format!("{:.2}%", 100.0 * a)),
                opt(r.instructions_per_step),
                opt(r.flash_bytes),
                opt(r.ram_bytes),
                opt(r.stack_bytes),
            ]
        })
        .collect();
    let chart = |title: &str, unit: &str, pick: fn(&MeasuredRow) -> Option<u64>| {
        let mut langs: Vec<&str> = Vec::new();
        for r in &m.rows {
            if !langs.contains(&r.lang.as_str()) {
                langs.push(&r.lang);
            }
        }
        let variants: Vec<&str> = ["model", "dense"]
            .into_iter()
            .filter(|v| m.rows.iter().any(|r| r.variant == *v))
            .collect();
        let rows: Vec<(String, Vec<u64>)> = langs
            .iter()
            .map(|lang| {
                let values = variants
                    .iter()
                    .map(|v| {
                        m.rows
                            .iter()
                            .find(|r| r.lang == *lang && r.variant == *v)
                            .and_then(pick)
                            .unwrap_or(0)
                    })
                    .collect();
                ((*lang).to_owned(), values)
            })
            .collect();
        bar_chart(title, unit, &variants, &rows)
    };
    let has_cost = m.rows.iter().any(|r| r.instructions_per_step.is_some());
    MeasuredView {
        caption: format!(
            "{} sequence(s) on {}{}",
            m.sequences,
            m.platform,
            m.reference_accuracy.map_or(String::new(), |a| format!(
                "; reference accuracy {:.2}%",
                100.0 * a
            ))
        ),
        rows,
        charts: if has_cost {
            vec![
                chart("Instructions per step", "", |r| r.instructions_per_step),
                chart("Flash", "B", |r| r.flash_bytes),
                chart("RAM", "B", |r| r.ram_bytes),
                chart("Stack", "B", |r| r.stack_bytes),
            ]
        } else {
            Vec::new()
        },
        notes: m.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        let svg = bar_chart("t<", "B", &["s"], &[("r&".into(), vec![5])]);
        assert!(svg.contains("t&lt;") && svg.contains("r&amp;") && svg.starts_with("<svg"));
    }
}
