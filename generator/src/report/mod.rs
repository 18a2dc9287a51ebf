//! `report.json`: what was built, per layer and in total, plus measured costs after `kpgen test`.

pub mod html;

use serde::Serialize;

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};
use crate::model::Model;
use crate::plan::shapes::{Factors, KronOrder, KronShape};
use crate::plan::{MatrixPlan, OverlayEncoding, Plan, Product};
use crate::quant::QuantPlan;
use crate::spec::{Activations, LayerKind, Optimize, Precision};
use crate::target::Target;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub target: String,
    pub precision: Precision,
    /// f32 builds: how sigmoid and tanh are evaluated (`table` or `exact`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations: Option<Activations>,
    /// What the plan optimized for, the rules that gave it, and why.
    pub optimize: OptimizeReport,
    /// Fixed point: formats, calibration, and per matrix the requantization and the proven
    /// accumulator bound (|acc| <= bound; int64 accumulators where int32 could overflow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantPlan>,
    pub input_features: usize,
    pub input_steps: usize,
    pub output_size: usize,
    pub layers: Vec<LayerReport>,
    /// The caller-owned state struct, array by array in declaration order: what RAM holds.
    pub state: Vec<BufferReport>,
    pub totals: Totals,
    /// The flash the build needs by estimate: constant data exactly, code per construct from
    /// the target's fitted table ([`crate::lower::flash`]). Absent before lowering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash: Option<crate::lower::flash::FlashEstimate>,
    /// What the user should know about this build on this target (e.g. software floating point).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Filled in by `kpgen test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<serde_json::Value>,
}

/// The objective of a build and the plan rules it ran with ([`crate::plan::rules_for`]).
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    pub objective: Optimize,
    /// Stored matrices of at most this many elements became literals in code.
    pub unroll_max_factor_elems: usize,
    /// Overlays of at most this many non-zeros became straight-line code.
    pub straight_line_max_nnz: usize,
    /// Register tile `[rows, columns]` of the stored factors' loops.
    pub tile: [usize; 2],
    pub why: &'static str,
}

impl OptimizeReport {
    fn of(plan: &Plan) -> OptimizeReport {
        let rules = &plan.rules;
        OptimizeReport {
            objective: plan.optimize,
            unroll_max_factor_elems: rules.unroll_max_factor_elems,
            straight_line_max_nnz: rules.straight_line_max_nnz,
            tile: rules.tile(plan.precision.is_fixed()),
            why: match plan.optimize {
                Optimize::Speed => {
                    "speed: the target's plan rules, the fastest forms measured on the core"
                }
                Optimize::Size => {
                    "size: every factor a stored array read by a loop (literals cost several \
                     bytes of code per weight), no register tiles (their accumulators and \
                     remainder blocks are code; Helium keeps its float tile, one vector's \
                     rows), every overlay in CSR (one or two bytes of index \
                     per non-zero against several of code), int8/int16 bias codes in the \
                     narrowest type that holds them"
                }
            },
        }
    }
}

/// One array of the state struct.
#[derive(Debug, Clone, Serialize)]
pub struct BufferReport {
    pub name: String,
    pub elements: usize,
    pub bytes: usize,
    /// What it holds: activation (a layer's output), accumulator (sums of products and
    /// biases), cell_state, temp (the KP intermediate product).
    pub holds: crate::plan::BufferRole,
    /// Carried across steps and zeroed by reset; otherwise scratch within a step.
    pub recurrent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub index: usize,
    pub kind: LayerKind,
    pub inputs: usize,
    pub units: usize,
    pub matrices: Vec<MatrixReport>,
    pub bias_params: usize,
    pub params_stored: usize,
    pub params_dense: usize,
    pub compression: f64,
    pub macs_per_step: usize,
    pub dense_macs_per_step: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    pub field: &'static str,
    /// dense | kp | dkp
    pub form: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub kron: Option<KronShape>,
    /// Three or more Kronecker factors: their shapes and the order they are applied in
    /// (0-based, the cheapest permutation); `other_order_macs` then holds the MACs of the
    /// single-loop scheme not taken (trailing or leading), or, when a permutation beat both,
    /// of the cheaper of the two, which `other_factor_order` then names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factors: Option<Factors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_order: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_factor_order: Option<Vec<usize>>,
    /// Hybrid KP: the first rows kept dense.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense_rows: Option<usize>,
    /// Inner dimension of a low-rank weight.
    pub rank: Option<usize>,
    pub order: Option<KronOrder>,
    /// MACs of the order not chosen, to show the choice.
    pub other_order_macs: Option<usize>,
    /// Stored matrices whose weights became literals in code.
    pub unrolled: Vec<String>,
    pub macs: usize,
    pub dense_macs: usize,
    pub params_stored: usize,
    pub params_dense: usize,
    pub compression: f64,
    pub overlay: Option<OverlayReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverlayReport {
    pub nnz: usize,
    pub density: f64,
    /// straight_line | csr
    pub encoding: &'static str,
    pub row_ptr_type: Option<crate::plan::IndexType>,
    pub col_index_type: Option<crate::plan::IndexType>,
    pub index_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub params_stored: usize,
    pub params_dense: usize,
    pub compression: f64,
    pub macs_per_step: usize,
    pub dense_macs_per_step: usize,
    pub overlay_nnz: usize,
    pub overlay_index_bytes: usize,
    /// Weight bytes: stored parameters x 4 (f32), 2 (int16) or 1 (int8), literals included.
    pub weight_bytes: usize,
    pub state_bytes: usize,
}

/// 1234567 as "1,234,567", for tables people read.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[test]
fn thousands_are_grouped() {
    assert_eq!(thousands(1234567), "1,234,567");
    assert_eq!(thousands(123), "123");
    assert_eq!(thousands(0), "0");
}

fn ratio(a: usize, b: usize) -> f64 {
    let r = a as f64 / b.max(1) as f64;
    (r * 100.0).round() / 100.0
}

fn matrix_report(m: &MatrixPlan) -> MatrixReport {
    let unrolled: Vec<String> = m
        .product
        .stages()
        .iter()
        .filter(|s| s.unrolled)
        .map(|s| s.factor.clone())
        .collect();
    let (kron, order, other) = match &m.product {
        Product::Kron {
            shape,
            order,
            other_order_macs,
            ..
        } => (Some(*shape), Some(*order), Some(*other_order_macs)),
        Product::MultiKron {
            other_order_macs, ..
        } => (None, None, Some(*other_order_macs)),
        _ => (None, None, None),
    };
    let dense_rows = Some(m.product.dense_rows()).filter(|&r| r > 0);
    let (factors, factor_order) = match &m.product {
        Product::MultiKron { factors, order, .. } => (Some(factors.clone()), Some(order.clone())),
        _ => (None, None),
    };
    // Named only where a permutation won: otherwise it is the other scheme, as before.
    let other_factor_order = factor_order
        .as_deref()
        .filter(|o| crate::plan::in_place(o))
        .and_then(|_| m.product.other_order());
    let rank = match &m.product {
        Product::LowRank { rank, .. } => Some(*rank),
        _ => None,
    };
    MatrixReport {
        field: m.field,
        form: m.form,
        rows: m.rows,
        cols: m.cols,
        kron,
        factors,
        factor_order,
        other_factor_order,
        dense_rows,
        rank,
        order,
        other_order_macs: other,
        unrolled,
        macs: m.macs,
        dense_macs: m.dense_macs,
        params_stored: m.stored_params,
        params_dense: m.dense_params,
        compression: ratio(m.dense_params, m.stored_params),
        overlay: m.overlay.as_ref().map(|o| {
            let (encoding, rp, ci) = match o.encoding {
                OverlayEncoding::StraightLine => ("straight_line", None, None),
                OverlayEncoding::Csr { row_ptr, col_index } => {
                    ("csr", Some(row_ptr), Some(col_index))
                }
            };
            OverlayReport {
                nnz: o.nnz,
                density: o.density,
                encoding,
                row_ptr_type: rp,
                col_index_type: ci,
                index_bytes: o.index_bytes,
            }
        }),
    }
}

pub fn build_report(model: &Model, plan: &Plan, quant: Option<&QuantPlan>) -> Report {
    let layers: Vec<LayerReport> = plan
        .layers
        .iter()
        .zip(&model.layers)
        .map(|(lp, l)| {
            let matrices: Vec<MatrixReport> = lp.matrices.iter().map(matrix_report).collect();
            let bias = l.cell.bias_params();
            let stored = matrices.iter().map(|m| m.params_stored).sum::<usize>() + bias;
            let dense = matrices.iter().map(|m| m.params_dense).sum::<usize>() + bias;
            LayerReport {
                index: lp.index,
                kind: lp.kind,
                inputs: lp.inputs,
                units: lp.units,
                bias_params: bias,
                params_stored: stored,
                params_dense: dense,
                compression: ratio(dense, stored),
                macs_per_step: matrices.iter().map(|m| m.macs).sum(),
                dense_macs_per_step: matrices.iter().map(|m| m.dense_macs).sum(),
                matrices,
            }
        })
        .collect();
    let stored: usize = layers.iter().map(|l| l.params_stored).sum();
    let dense: usize = layers.iter().map(|l| l.params_dense).sum();
    let overlays = || {
        layers
            .iter()
            .flat_map(|l| &l.matrices)
            .filter_map(|m| m.overlay.as_ref())
    };
    let weight_size = plan.precision.value_bytes();
    Report {
        model: plan.name.clone(),
        target: plan.target.clone(),
        precision: plan.precision,
        activations: (!plan.precision.is_fixed()).then_some(plan.activations),
        optimize: OptimizeReport::of(plan),
        quantization: quant.cloned(),
        input_features: plan.input_features,
        input_steps: plan.steps,
        output_size: plan.output_size,
        totals: Totals {
            params_stored: stored,
            params_dense: dense,
            compression: ratio(dense, stored),
            macs_per_step: layers.iter().map(|l| l.macs_per_step).sum(),
            dense_macs_per_step: layers.iter().map(|l| l.dense_macs_per_step).sum(),
            overlay_nnz: overlays().map(|o| o.nnz).sum(),
            overlay_index_bytes: overlays().map(|o| o.index_bytes).sum(),
            weight_bytes: weight_size * stored,
            state_bytes: plan.state_bytes(),
        },
        layers,
        flash: None,
        state: plan
            .buffers
            .iter()
            .map(|b| BufferReport {
                name: b.name.clone(),
                elements: b.len,
                bytes: b.bytes(plan.precision),
                holds: b.role,
                recurrent: b.recurrent,
            })
            .collect(),
        notes: Vec::new(),
        measured: None,
    }
}

// ---- budgets ----------------------------------------------------------------------------------

/// Bytes of flash a model needs by estimate, and what the figure counts: the whole estimate
/// of [`Report::flash`] (code and data of the model's object) once the program is lowered;
/// before that (the early check, right after planning) a lower bound, its stored parameters
/// at their precision's width plus the index arrays of its CSR overlays.
pub fn estimated_flash(report: &Report) -> (u64, &'static str) {
    match &report.flash {
        Some(f) => (f.total_bytes, crate::lower::flash::COUNTS),
        None => (
            (report.totals.weight_bytes + report.totals.overlay_index_bytes) as u64,
            "at least: stored parameters at their precision's width and overlay indices, \
             before code is counted",
        ),
    }
}

/// Bytes of RAM a model needs by estimate: its state struct (`state_bytes`:
/// recurrent state and scratch buffers).
pub fn estimated_ram(report: &Report) -> u64 {
    report.totals.state_bytes as u64
}

/// Refuses a model whose [`estimated_flash`] or [`estimated_ram`] exceeds the target's budget;
/// one diagnostic per exceeded budget, naming the target, the figure and the budget.
pub fn check_budget(target: &Target, report: &Report) -> Result<(), Diagnostics> {
    let (flash, flash_counts) = estimated_flash(report);
    let checks = [
        (
            "flash",
            flash_counts,
            flash,
            target.budget.flash,
            "--flash-budget",
        ),
        (
            "RAM",
            "the state struct: recurrent state and scratch buffers",
            estimated_ram(report),
            target.budget.ram,
            "--ram-budget",
        ),
    ];
    let errors: Vec<Diagnostic> = checks
        .iter()
        .filter(|(_, _, need, budget, _)| need > budget)
        .map(|(what, how, need, budget, flag)| {
            Diagnostic::new(
                Place::file("--target".as_ref()),
                format!(
                    "model `{}` needs an estimated {need} bytes of {what} ({how}), over the \
                     {budget}-byte {what} budget of target `{}`",
                    report.model, target.name
                ),
            )
            .with_help(format!(
                "compress the model further, choose a larger target, or raise the budget \
                 with {flag} BYTES"
            ))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}
