//! The C99 emitter: `c/NAME.h` and `c/NAME.c`.

use askama::Template;

use std::collections::BTreeSet;

use super::ops::{ops_lines, Arg, Calls, Syntax};
use super::syntax::{float_lit, kernel_body, table_definition};
use super::GeneratedFile;
use crate::lower::kernel::{Elem, Table};
use crate::lower::{FixedApi, Op, Program, Vector};
use crate::quant::fixed;
use crate::spec::Lang;

/// One piece of the hand-written C runtime: the function (or table) it defines, its text, and
/// the pieces it calls. A program gets exactly the pieces its code calls, closed over these
/// dependencies: an unused `static` function is a warning under clang's -Wall.
struct Piece {
    name: &'static str,
    /// Empty for the activation tables, which [`generated_piece`] prints.
    text: &'static str,
    calls: &'static [&'static str],
}

const fn piece(name: &'static str, text: &'static str, calls: &'static [&'static str]) -> Piece {
    Piece { name, text, calls }
}

/// The float runtime, in output order (callees before callers). `kp_sigmoidf` and `kp_tanhf`
/// come from [`EXACT_ACTIVATIONS`] or [`TABLE_ACTIVATIONS`], by the program's `activations`.
const FLOAT_RUNTIME: &[Piece] = &[
    piece("kp_fmaf", include_str!("../../../runtime/c/fmaf.c"), &[]),
    piece(
        "kp_f32x4_t",
        include_str!("../../../runtime/c/f32x4.c"),
        &[],
    ),
    piece(
        "kp_vld_f32x4",
        include_str!("../../../runtime/c/vld_f32x4.c"),
        &["kp_f32x4_t"],
    ),
    piece(
        "kp_vld_f32x4_n",
        include_str!("../../../runtime/c/vld_f32x4_n.c"),
        &["kp_f32x4_t"],
    ),
    piece(
        "kp_vzero_f32x4",
        include_str!("../../../runtime/c/vzero_f32x4.c"),
        &["kp_f32x4_t"],
    ),
    piece(
        "kp_vfma_n_f32x4",
        include_str!("../../../runtime/c/vfma_n_f32x4.c"),
        &["kp_f32x4_t"],
    ),
    piece(
        "kp_vst_f32x4_s",
        include_str!("../../../runtime/c/vst_f32x4_s.c"),
        &["kp_f32x4_t"],
    ),
    piece(
        "kp_vadd_f32x4_s",
        include_str!("../../../runtime/c/vadd_f32x4_s.c"),
        &["kp_f32x4_t"],
    ),
    piece("kp_expf", include_str!("../../../runtime/c/expf.c"), &[]),
    piece("KP_SIGMOID_F32", "", &[]),
    piece(
        "kp_sigmoid_tab",
        include_str!("../../../runtime/c/sigmoid_tab.c"),
        &["kp_fmaf", "KP_SIGMOID_F32"],
    ),
];

/// Sigmoid and tanh from the polynomial exp and a division (`activations: exact`).
const EXACT_ACTIVATIONS: &[Piece] = &[
    piece(
        "kp_sigmoidf",
        include_str!("../../../runtime/c/sigmoidf.c"),
        &["kp_expf"],
    ),
    piece(
        "kp_tanhf",
        include_str!("../../../runtime/c/tanhf.c"),
        &["kp_expf"],
    ),
];

/// Sigmoid and tanh interpolated in one table (`activations: table`).
const TABLE_ACTIVATIONS: &[Piece] = &[
    piece(
        "kp_sigmoidf",
        include_str!("../../../runtime/c/sigmoidf_table.c"),
        &["kp_sigmoid_tab"],
    ),
    piece(
        "kp_tanhf",
        include_str!("../../../runtime/c/tanhf_table.c"),
        &["kp_sigmoid_tab"],
    ),
];

/// The float cells' units one at a time, from a first unit: what every cell update calls.
const CELL_UNITS: &[Piece] = &[
    piece(
        "kp_lstm_units",
        include_str!("../../../runtime/c/lstm_units.c"),
        &["kp_sigmoidf", "kp_tanhf"],
    ),
    piece(
        "kp_gru_units",
        include_str!("../../../runtime/c/gru_units.c"),
        &["kp_sigmoidf", "kp_tanhf"],
    ),
    piece(
        "kp_fastgrnn_units",
        include_str!("../../../runtime/c/fastgrnn_units.c"),
        &["kp_sigmoidf", "kp_tanhf"],
    ),
];

/// The float cell updates, every unit one at a time.
const SCALAR_CELLS: &[Piece] = &[
    piece(
        "kp_lstm_update",
        include_str!("../../../runtime/c/lstm.c"),
        &["kp_lstm_units"],
    ),
    piece(
        "kp_gru_update",
        include_str!("../../../runtime/c/gru.c"),
        &["kp_gru_units"],
    ),
    piece(
        "kp_fastgrnn_update",
        include_str!("../../../runtime/c/fastgrnn.c"),
        &["kp_fastgrnn_units"],
    ),
];

/// The float cell updates with table activations on Helium cores: four units at a time through
/// the table in vector lanes (each vector piece compiles only there), the rest one at a time.
const HELIUM_CELLS: &[Piece] = &[
    piece(
        "kp_vsigmoid_tab4",
        include_str!("../../../runtime/c/vsigmoid_tab4.c"),
        &["KP_SIGMOID_F32"],
    ),
    piece(
        "kp_vsigmoidf4",
        include_str!("../../../runtime/c/vsigmoidf4.c"),
        &["kp_vsigmoid_tab4"],
    ),
    piece(
        "kp_vtanhf4",
        include_str!("../../../runtime/c/vtanhf4.c"),
        &["kp_vsigmoid_tab4"],
    ),
    piece(
        "kp_vlstm4",
        include_str!("../../../runtime/c/vlstm4.c"),
        &["kp_vsigmoidf4", "kp_vtanhf4"],
    ),
    piece(
        "kp_lstm_update",
        include_str!("../../../runtime/c/lstm_table.c"),
        &["kp_vlstm4", "kp_lstm_units"],
    ),
    piece(
        "kp_vgru4",
        include_str!("../../../runtime/c/vgru4.c"),
        &["kp_vsigmoidf4", "kp_vtanhf4"],
    ),
    piece(
        "kp_gru_update",
        include_str!("../../../runtime/c/gru_table.c"),
        &["kp_vgru4", "kp_gru_units"],
    ),
    piece(
        "kp_vfastgrnn4",
        include_str!("../../../runtime/c/vfastgrnn4.c"),
        &["kp_vsigmoidf4", "kp_vtanhf4"],
    ),
    piece(
        "kp_fastgrnn_update",
        include_str!("../../../runtime/c/fastgrnn_table.c"),
        &["kp_vfastgrnn4", "kp_fastgrnn_units"],
    ),
];

/// The dense layers' activations, after the activations they call.
const DENSE_ACTIVATIONS: &[Piece] = &[
    piece("kp_relu", include_str!("../../../runtime/c/relu.c"), &[]),
    piece(
        "kp_sigmoid",
        include_str!("../../../runtime/c/sigmoid.c"),
        &["kp_sigmoidf"],
    ),
    piece(
        "kp_tanh",
        include_str!("../../../runtime/c/tanh.c"),
        &["kp_tanhf"],
    ),
    piece(
        "kp_softmax",
        include_str!("../../../runtime/c/softmax.c"),
        &["kp_expf"],
    ),
];

/// The fixed-point runtime, in output order (callees before callers).
const FIXED_RUNTIME: &[Piece] = &[
    piece(
        "kp_shift_sat16_s64",
        include_str!("../../../runtime/c/q_shift_sat16_s64.c"),
        &[],
    ),
    piece(
        "kp_read32",
        include_str!("../../../runtime/c/q_read32.c"),
        &[],
    ),
    piece(
        "kp_read16",
        include_str!("../../../runtime/c/q_read16.c"),
        &[],
    ),
    piece(
        "kp_pkhbt",
        include_str!("../../../runtime/c/q_pkhbt.c"),
        &[],
    ),
    piece(
        "kp_pkhtb",
        include_str!("../../../runtime/c/q_pkhtb.c"),
        &[],
    ),
    piece(
        "kp_sxtb16",
        include_str!("../../../runtime/c/q_sxtb16.c"),
        &[],
    ),
    piece(
        "kp_sxtb16_ror8",
        include_str!("../../../runtime/c/q_sxtb16_ror8.c"),
        &["kp_sxtb16"],
    ),
    piece(
        "kp_smlad",
        include_str!("../../../runtime/c/q_smlad.c"),
        &[],
    ),
    piece(
        "kp_smlald",
        include_str!("../../../runtime/c/q_smlald.c"),
        &[],
    ),
    piece(
        "kp_i8x16_t",
        include_str!("../../../runtime/c/q_i8x16.c"),
        &[],
    ),
    piece(
        "kp_i16x8_t",
        include_str!("../../../runtime/c/q_i16x8.c"),
        &[],
    ),
    piece(
        "kp_vld_s8x16",
        include_str!("../../../runtime/c/q_vld_s8x16.c"),
        &["kp_i8x16_t"],
    ),
    piece(
        "kp_vld_s8x16_n",
        include_str!("../../../runtime/c/q_vld_s8x16_n.c"),
        &["kp_i8x16_t"],
    ),
    piece(
        "kp_vld_s8x8",
        include_str!("../../../runtime/c/q_vld_s8x8.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_vld_s8x8_n",
        include_str!("../../../runtime/c/q_vld_s8x8_n.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_vld_s16x8",
        include_str!("../../../runtime/c/q_vld_s16x8.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_vld_s16x8_n",
        include_str!("../../../runtime/c/q_vld_s16x8_n.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_vdot_s8x16",
        include_str!("../../../runtime/c/q_vdot_s8x16.c"),
        &["kp_i8x16_t"],
    ),
    piece(
        "kp_vdot_s16x8",
        include_str!("../../../runtime/c/q_vdot_s16x8.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_vdot_s16x8_s64",
        include_str!("../../../runtime/c/q_vdot_s16x8_s64.c"),
        &["kp_i16x8_t"],
    ),
    piece(
        "kp_div_pow2",
        include_str!("../../../runtime/c/q_div_pow2.c"),
        &[],
    ),
    piece(
        "kp_requant_s64",
        include_str!("../../../runtime/c/q_requant_s64.c"),
        &[],
    ),
    piece("kp_sat", include_str!("../../../runtime/c/q_sat.c"), &[]),
    piece(
        "kp_clamp16",
        include_str!("../../../runtime/c/q_clamp16.c"),
        &[],
    ),
    piece(
        "kp_shift_sat16",
        include_str!("../../../runtime/c/q_shift_sat16.c"),
        &["kp_clamp16"],
    ),
    piece(
        "kp_shift_sat16_s64_32",
        include_str!("../../../runtime/c/q_shift_sat16_s64_32.c"),
        &["kp_clamp16"],
    ),
    piece(
        "kp_clamp_code",
        include_str!("../../../runtime/c/q_clamp_code.c"),
        &[],
    ),
    piece(
        "kp_sat16",
        include_str!("../../../runtime/c/q_sat16.c"),
        &["kp_sat"],
    ),
    piece(
        "kp_rshift_round",
        include_str!("../../../runtime/c/q_rshift_round.c"),
        &[],
    ),
    piece(
        "kp_requant",
        include_str!("../../../runtime/c/q_requant.c"),
        &["kp_rshift_round"],
    ),
    piece(
        "kp_lut",
        include_str!("../../../runtime/c/q_lut.c"),
        &["kp_read32", "kp_smlad", "kp_clamp16"],
    ),
    piece("KP_TANH_Q15", "", &[]),
    piece(
        "kp_sigmoid_q15",
        include_str!("../../../runtime/c/q_sigmoid.c"),
        &["kp_read32", "kp_smlad", "KP_TANH_Q15"],
    ),
    piece("KP_EXP_Q15", "", &[]),
    piece(
        "kp_unit_code",
        include_str!("../../../runtime/c/q_unit.c"),
        &["kp_sat", "kp_rshift_round"],
    ),
    piece(
        "kp_lstm_q_units",
        include_str!("../../../runtime/c/q_lstm_units.c"),
        &[
            "kp_clamp16",
            "kp_clamp_code",
            "kp_lut",
            "kp_sigmoid_q15",
            "KP_TANH_Q15",
        ],
    ),
    piece(
        "kp_lstm_q",
        include_str!("../../../runtime/c/q_lstm.c"),
        &["kp_lstm_q_units"],
    ),
    piece(
        "kp_gru_q",
        include_str!("../../../runtime/c/q_gru.c"),
        LUT_CELL,
    ),
    piece(
        "kp_fastgrnn_q",
        include_str!("../../../runtime/c/q_fastgrnn.c"),
        &[
            "kp_clamp_code",
            "kp_rshift_round",
            "kp_lut",
            "kp_sigmoid_q15",
            "KP_TANH_Q15",
        ],
    ),
    piece(
        "kp_narrow_linear",
        include_str!("../../../runtime/c/q_narrow.c"),
        &["kp_div_pow2", "kp_sat"],
    ),
    piece(
        "kp_narrow_sigmoid",
        include_str!("../../../runtime/c/q_narrow_sigmoid.c"),
        &["kp_sigmoid_q15", "kp_unit_code"],
    ),
    piece(
        "kp_narrow_tanh",
        include_str!("../../../runtime/c/q_narrow_tanh.c"),
        &["kp_sat", "kp_rshift_round", "kp_lut", "KP_TANH_Q15"],
    ),
    piece(
        "kp_narrow_softmax",
        include_str!("../../../runtime/c/q_narrow_softmax.c"),
        &["kp_sat", "kp_lut", "KP_EXP_Q15"],
    ),
    piece(
        "kp_quantize",
        include_str!("../../../runtime/c/q_quantize.c"),
        &[],
    ),
];

/// On Helium cores, what replaces `kp_lstm_q` of [`FIXED_RUNTIME`]: four units per vector (the
/// vector piece compiles only there), the rest one at a time.
const HELIUM_LSTM_Q: &[Piece] = &[
    piece(
        "kp_vlstm_q4",
        include_str!("../../../runtime/c/q_vlstm4.c"),
        &["KP_TANH_Q15"],
    ),
    piece(
        "kp_lstm_q",
        include_str!("../../../runtime/c/q_lstm_helium.c"),
        &["kp_vlstm_q4", "kp_lstm_q_units"],
    ),
];

/// The fixed-point runtime of a target, with or without Helium, in output order.
fn fixed_runtime(helium: bool) -> Vec<&'static Piece> {
    FIXED_RUNTIME
        .iter()
        .flat_map(|p| match (helium, p.name) {
            (true, "kp_lstm_q") => HELIUM_LSTM_Q.iter().collect(),
            _ => vec![p],
        })
        .collect()
}

/// What the fixed-point GRU calls.
const LUT_CELL: &[&str] = &[
    "kp_sat",
    "kp_clamp_code",
    "kp_rshift_round",
    "kp_lut",
    "kp_sigmoid_q15",
    "KP_TANH_Q15",
];

/// The pieces of `table` that `calls` (C names) need, closed over their dependencies, in
/// the table's order.
fn pieces_for(table: &[&'static Piece], calls: &BTreeSet<String>) -> Vec<&'static Piece> {
    let mut needed: BTreeSet<&str> = calls.iter().map(String::as_str).collect();
    loop {
        let before = needed.len();
        let callees: Vec<&str> = table
            .iter()
            .filter(|p| needed.contains(p.name))
            .flat_map(|p| p.calls.iter().copied())
            .collect();
        needed.extend(callees);
        if needed.len() == before {
            break;
        }
    }
    table
        .iter()
        .copied()
        .filter(|p| needed.contains(p.name))
        .collect()
}

/// The runtime pieces that are data, printed by [`generated_piece`].
#[cfg(test)]
const GENERATED_PIECES: &[&str] = &["KP_SIGMOID_F32", "KP_TANH_Q15", "KP_EXP_Q15"];

/// The generated text of a runtime piece that is data: an activation table.
fn generated_piece(p: &Program, name: &str) -> Option<String> {
    if name == "KP_SIGMOID_F32" {
        let table = p.activation_table.as_ref()?;
        return Some(format!(
            "/* f32 sigmoid at 0, 0.05, ..., 12.8 less h^2/12 sigmoid'' (zero-mean error), \
             the last twice */\n{}\n",
            table_definition(Lang::C, table)
        ));
    }
    let values = match name {
        "KP_TANH_Q15" => fixed::tanh_lut(),
        "KP_EXP_Q15" => fixed::exp_lut(),
        _ => return None,
    };
    let table = Table::Ints {
        name: name.to_owned(),
        elem: Elem::I16,
        values: values.into_iter().map(i32::from).collect(),
    };
    Some(format!(
        "/* Q15 values at Q3.12 inputs -8, -8 + 1/32, ..., 8 */\n{}\n",
        table_definition(Lang::C, &table)
    ))
}

/// The float runtime with one definition of sigmoid and tanh and one form of the cell updates
/// (their shared units first), in output order.
fn float_runtime(activations: &'static [Piece], cells: &'static [Piece]) -> Vec<&'static Piece> {
    FLOAT_RUNTIME
        .iter()
        .chain(activations)
        .chain(CELL_UNITS)
        .chain(cells)
        .chain(DENSE_ACTIVATIONS)
        .collect()
}

/// The runtime pieces a program draws from, in output order.
fn runtime_table(p: &Program) -> Vec<&'static Piece> {
    if p.fixed.is_some() {
        fixed_runtime(p.helium)
    } else if p.activation_table.is_some() && p.helium {
        float_runtime(TABLE_ACTIVATIONS, HELIUM_CELLS)
    } else if p.activation_table.is_some() {
        float_runtime(TABLE_ACTIVATIONS, SCALAR_CELLS)
    } else {
        float_runtime(EXACT_ACTIVATIONS, SCALAR_CELLS)
    }
}

/// The runtime text of a program whose kernels and operations call `calls`. The float API of
/// a fixed-point program always quantizes.
fn runtime_for(p: &Program, calls: &Calls) -> String {
    let mut names: BTreeSet<String> = calls.iter().map(|c| format!("kp_{c}")).collect();
    let what = if p.fixed.is_some() {
        names.insert("kp_quantize".to_owned());
        "fixed-point arithmetic, activation tables and cell updates"
    } else {
        "activations and cell updates (single precision, no libm)"
    };
    let pieces: Vec<String> = pieces_for(&runtime_table(p), &names)
        .into_iter()
        .map(|piece| generated_piece(p, piece.name).unwrap_or_else(|| piece.text.to_owned()))
        .collect();
    if pieces.is_empty() {
        return String::new();
    }
    format!(
        "/* ---- kpgen runtime: {what} ---- */\n\n{}\n",
        pieces.join("\n")
    )
}

#[derive(Template)]
#[template(path = "c/model.h", escape = "none")]
struct Header<'a> {
    name: &'a str,
    upper: String,
    target: &'a str,
    features: usize,
    steps: usize,
    output: usize,
    state_bytes: usize,
    fields: Vec<String>,
    step_indent: String,
    infer_indent: String,
    fixed: Option<FixedText>,
}

/// The C spelling of a fixed-point program's interface.
struct FixedText {
    code: &'static str,
    code_min: String,
    code_max: String,
    input_scale: String,
    input_inv_scale: String,
    input_zero_point: i32,
    output_scale: String,
    output_zero_point: i32,
    step_q_indent: String,
    infer_q_indent: String,
}

fn fixed_text(name: &str, f: &FixedApi) -> FixedText {
    let lo = -(1i64 << (f.bits - 1));
    FixedText {
        code: f.code.c_name(),
        code_min: format!("({lo})"),
        code_max: ((1i64 << (f.bits - 1)) - 1).to_string(),
        input_scale: float_lit(Lang::C, f.input.scale as f32),
        input_inv_scale: float_lit(Lang::C, (1.0 / f.input.scale) as f32),
        input_zero_point: f.input.zero_point,
        output_scale: float_lit(Lang::C, f.output.scale as f32),
        output_zero_point: f.output.zero_point,
        step_q_indent: " ".repeat(format!("void {name}_step_q(").len()),
        infer_q_indent: " ".repeat(format!("void {name}_infer_q(").len()),
    }
}

struct KernelText {
    summary: String,
    signature: String,
    body: String,
}

/// `c/CMakeLists.txt` and `c/kpgen.mk`: the output as a CMake library and a Make fragment.
#[derive(Template)]
#[template(path = "c/CMakeLists.txt", escape = "none")]
struct CMakeLists<'a> {
    name: &'a str,
    target: &'a str,
}

#[derive(Template)]
#[template(path = "c/kpgen.mk", escape = "none")]
struct MakeFragment<'a> {
    name: &'a str,
    upper: &'a str,
    target: &'a str,
}

#[derive(Template)]
#[template(path = "c/model.c", escape = "none")]
struct Source<'a> {
    name: &'a str,
    upper: String,
    target: &'a str,
    /// (`#if` condition, the target's flags) of the core check.
    arch_check: Option<(String, String)>,
    runtime: String,
    tables: Vec<String>,
    kernels: Vec<KernelText>,
    advance: Vec<String>,
    head: Vec<String>,
    reset: Vec<String>,
    step_indent: String,
    infer_indent: String,
    fixed: Option<FixedText>,
    /// The element type of step inputs and outputs inside the model: float or kp_code_t.
    io: &'static str,
}

fn vector(v: &Vector) -> String {
    match v {
        Vector::Input => "x".to_owned(),
        Vector::Output => "y".to_owned(),
        Vector::State(b) => format!("s->{b}"),
    }
}

/// C's spelling of the step's operations (see [`super::ops`]).
struct C;

impl C {
    fn args(args: &[Arg]) -> String {
        args.iter()
            .map(|a| match a {
                Arg::Read(v) | Arg::Write(v) => vector(v),
                Arg::Table(t) => t.to_uppercase(),
                Arg::Len(n) => n.to_string(),
                Arg::Int(n) => n.to_string(),
                Arg::Float(v) => float_lit(Lang::C, *v),
                Arg::Flag(b) => i32::from(*b).to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Syntax for C {
    fn comment(&self, text: &str) -> String {
        format!("/* {text} */")
    }

    fn runtime_call(&self, name: &str, args: &[Arg]) -> String {
        format!("kp_{name}({});", C::args(args))
    }

    fn kernel_call(&self, kernel: &str, args: &[Arg]) -> String {
        format!("{kernel}({});", C::args(args))
    }

    fn load(&self, dst: &Vector, table: &str, len: usize, _elem: Elem) -> String {
        // C widens an integer element on assignment.
        format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}[k]; }}",
            vector(dst),
            table.to_uppercase()
        )
    }

    fn zero(&self, dst: &Vector, len: usize, elem: Elem) -> String {
        format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}; }}",
            vector(dst),
            zero(elem)
        )
    }

    fn copy(&self, dst: &Vector, src: &Vector, len: usize) -> String {
        format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}[k]; }}",
            vector(dst),
            vector(src)
        )
    }
}

fn zero(elem: Elem) -> String {
    match elem {
        Elem::F32 => float_lit(Lang::C, 0.0),
        _ => "0".to_owned(),
    }
}

fn body(ops: &[Op], calls: &mut Calls) -> Vec<String> {
    let mut lines = Vec::new();
    if !Op::any_state(ops) {
        lines.push("(void)s;".to_owned());
    }
    if !Op::any_input(ops) {
        lines.push("(void)x;".to_owned());
    }
    lines.extend(ops_lines(&C, ops, calls));
    lines
}

pub fn emit(p: &Program) -> Result<Vec<GeneratedFile>, askama::Error> {
    let upper = p.name.to_uppercase();
    let step_indent = " ".repeat(format!("void {}_step(", p.name).len());
    let infer_indent = " ".repeat(format!("void {}_infer(", p.name).len());
    let mut fields: Vec<String> = p
        .buffers
        .iter()
        .map(|(n, len, e)| format!("{} {n}[{len}];", e.c_name()))
        .collect();
    if fields.is_empty() {
        // C99 forbids empty structs; a stateless model keeps one byte.
        fields.push("unsigned char unused;".to_owned());
    }
    let state_bytes = p
        .buffers
        .iter()
        .map(|(_, l, e)| e.bytes() * l)
        .sum::<usize>()
        .max(1);
    let header = Header {
        name: &p.name,
        upper: upper.clone(),
        target: &p.target,
        features: p.input_features,
        steps: p.steps,
        output: p.output_size,
        state_bytes,
        fields,
        step_indent: step_indent.clone(),
        infer_indent: infer_indent.clone(),
        fixed: p.fixed.as_ref().map(|f| fixed_text(&p.name, f)),
    };
    let mut calls = Calls::new();
    let kernels: Vec<KernelText> = p
        .kernels
        .iter()
        .map(|k| KernelText {
            summary: k.summary.clone(),
            signature: {
                let o = k.kernel.operands;
                format!(
                    "{}(const {} *restrict x, {} *restrict y{})",
                    k.kernel.name,
                    o.x.c_name(),
                    o.y.c_name(),
                    if k.kernel.uses_temp {
                        format!(", {} *restrict t", o.t.c_name())
                    } else {
                        String::new()
                    }
                )
            },
            body: {
                let printed = kernel_body(Lang::C, &k.kernel);
                calls.extend(printed.calls);
                printed.body
            },
        })
        .collect();
    let advance = body(&p.advance, &mut calls);
    let head = body(&p.head, &mut calls);
    let reset = if p.buffers.is_empty() {
        vec!["s->unused = 0;".to_owned()]
    } else {
        p.buffers
            .iter()
            .map(|(n, len, e)| {
                format!(
                    "for (int k = 0; k < {len}; ++k) {{ s->{n}[k] = {}; }}",
                    zero(*e)
                )
            })
            .collect()
    };
    let source = Source {
        name: &p.name,
        upper,
        target: &p.target,
        arch_check: p.arch_check.clone(),
        runtime: runtime_for(p, &calls),
        tables: p
            .tables
            .iter()
            .map(|t| table_definition(Lang::C, t))
            .collect(),
        kernels,
        advance,
        head,
        reset,
        step_indent,
        infer_indent,
        fixed: p.fixed.as_ref().map(|f| fixed_text(&p.name, f)),
        io: if p.fixed.is_some() {
            "kp_code_t"
        } else {
            "float"
        },
    };
    let cmake = CMakeLists {
        name: &p.name,
        target: &p.target,
    };
    let make = MakeFragment {
        name: &p.name,
        upper: &source.upper,
        target: &p.target,
    };
    Ok(vec![
        GeneratedFile {
            path: format!("c/{}.h", p.name),
            contents: header.render()?,
        },
        GeneratedFile {
            path: format!("c/{}.c", p.name),
            contents: source.render()?,
        },
        GeneratedFile {
            path: "c/CMakeLists.txt".to_owned(),
            contents: cmake.render()?,
        },
        GeneratedFile {
            path: "c/kpgen.mk".to_owned(),
            contents: make.render()?,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece's declared calls are exactly the pieces its source mentions, and come before
    /// it: the tables cannot drift from runtime/c.
    #[test]
    fn declared_calls_match_the_sources() {
        for table in [
            float_runtime(EXACT_ACTIVATIONS, SCALAR_CELLS),
            float_runtime(TABLE_ACTIVATIONS, SCALAR_CELLS),
            float_runtime(TABLE_ACTIVATIONS, HELIUM_CELLS),
            fixed_runtime(false),
            fixed_runtime(true),
        ] {
            for (k, p) in table.iter().enumerate() {
                let mentioned: BTreeSet<&str> = table
                    .iter()
                    .filter(|q| q.name != p.name)
                    .filter(|q| {
                        // a call, an argument, a table indexed or offset, or a type used
                        let type_use = if q.name.ends_with("_t") { " " } else { "(" };
                        ["(", ",", "[", " +", type_use]
                            .iter()
                            .any(|after| p.text.contains(&format!("{}{after}", q.name)))
                    })
                    .map(|q| q.name)
                    .collect();
                let declared: BTreeSet<&str> = p.calls.iter().copied().collect();
                assert_eq!(declared, mentioned, "the calls of {}", p.name);
                for c in p.calls {
                    let at = table.iter().position(|q| q.name == *c).unwrap();
                    assert!(at < k, "{} comes after its caller {}", c, p.name);
                }
                if p.text.is_empty() {
                    assert!(GENERATED_PIECES.contains(&p.name), "{} has no text", p.name);
                } else {
                    // A function, or a type (`typedef ... kp_name_t;`).
                    let defined = if p.name.ends_with("_t") {
                        format!(" {};", p.name)
                    } else {
                        format!("{}(", p.name)
                    };
                    assert!(
                        p.text.contains(&defined),
                        "{} does not define {}",
                        p.text.lines().next().unwrap_or(""),
                        p.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_call_brings_its_callees_in_table_order() {
        let calls: BTreeSet<String> = ["kp_narrow_sigmoid".to_owned()].into();
        let fixed: Vec<&Piece> = FIXED_RUNTIME.iter().collect();
        let names: Vec<&str> = pieces_for(&fixed, &calls).iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "kp_read32",
                "kp_smlad",
                "kp_sat",
                "kp_rshift_round",
                "KP_TANH_Q15",
                "kp_sigmoid_q15",
                "kp_unit_code",
                "kp_narrow_sigmoid"
            ]
        );
    }
}
