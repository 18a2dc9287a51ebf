//! The Rust emitter: a `#![no_std]`, `#![forbid(unsafe_code)]` crate in `rust/`.

use askama::Template;

use super::syntax::{float_lit, kernel_body, table_definition};
use super::GeneratedFile;
use crate::lower::kernel::{Elem, Table};
use crate::lower::{FixedApi, Op, Program, Vector};
use crate::quant::fixed;
use crate::spec::Activation;
use crate::spec::Lang;

const CELLS: &str = include_str!("../../../runtime/rust/cells.rs");
const CELLS_Q: &str = include_str!("../../../runtime/rust/cells_q.rs");

/// The fixed-point runtime with its code type and activation tables.
fn cells_q(f: &FixedApi) -> String {
    let tables = [
        ("SIGMOID_Q15", fixed::sigmoid_lut()),
        ("TANH_Q15", fixed::tanh_lut()),
        ("EXP_Q15", fixed::exp_lut()),
    ]
    .into_iter()
    .map(|(name, values)| {
        table_definition(
            Lang::Rust,
            &Table::Ints {
                name: name.to_owned(),
                elem: Elem::I16,
                values: values.into_iter().map(i32::from).collect(),
            },
        )
    })
    .collect::<Vec<_>>()
    .join("\n\n");
    format!(
        "{CELLS_Q}\n/// Codes of activations, inputs and outputs.\npub type Code = {};\npub const CODE_MIN: i32 = {};\npub const CODE_MAX: i32 = {};\n\n// Q15 values at Q3.12 inputs -8, -8 + 1/32, ..., 8.\n{tables}\n",
        f.code.rust_name(),
        -(1i64 << (f.bits - 1)),
        (1i64 << (f.bits - 1)) - 1
    )
}

/// The Rust spelling of a fixed-point program's interface.
struct FixedText {
    code: &'static str,
    input_scale: String,
    input_inv_scale: String,
    input_zero_point: i32,
    output_scale: String,
    output_zero_point: i32,
}

#[derive(Template)]
#[template(path = "rust/Cargo.toml", escape = "none")]
struct Manifest<'a> {
    name: &'a str,
    target: &'a str,
}

struct KernelText {
    summary: String,
    signature: String,
    body: String,
}

#[derive(Template)]
#[template(path = "rust/lib.rs", escape = "none")]
struct Lib<'a> {
    name: &'a str,
    target: &'a str,
    features: usize,
    steps: usize,
    output: usize,
    tables: Vec<String>,
    kernels: Vec<KernelText>,
    state_bytes: usize,
    fields: Vec<String>,
    inits: Vec<String>,
    advance_x: &'static str,
    advance: Vec<String>,
    head_x: &'static str,
    head: Vec<String>,
    fixed: Option<FixedText>,
    /// Element type of step inputs and outputs inside the model: f32 or Code.
    io: &'static str,
}

fn read(v: &Vector) -> String {
    match v {
        Vector::Input => "x".to_owned(),
        Vector::Output => "y".to_owned(),
        Vector::State(b) => format!("&self.{b}"),
    }
}

fn write(v: &Vector) -> String {
    match v {
        Vector::Input => "x".to_owned(),
        Vector::Output => "y".to_owned(),
        Vector::State(b) => format!("&mut self.{b}"),
    }
}

/// The place itself, for whole-array assignment.
fn place(v: &Vector) -> String {
    match v {
        Vector::Input => "*x".to_owned(),
        Vector::Output => "*y".to_owned(),
        Vector::State(b) => format!("self.{b}"),
    }
}

fn zero(elem: Elem) -> &'static str {
    match elem {
        Elem::F32 => "0.0",
        _ => "0",
    }
}

fn op_lines(op: &Op) -> Vec<String> {
    match op {
        Op::Comment(c) => vec![format!("// {c}")],
        Op::Load { dst, table, .. } => vec![format!("{} = {};", place(dst), table.to_uppercase())],
        Op::Zero { dst, len, elem } => vec![format!("{} = [{}; {len}];", place(dst), zero(*elem))],
        Op::MatVec {
            kernel,
            src,
            dst,
            uses_temp,
        } => {
            let temp = if *uses_temp { ", &mut self.kp_tmp" } else { "" };
            vec![format!("{kernel}({}, {}{temp});", read(src), write(dst))]
        }
        Op::Lstm {
            gates,
            cell,
            hidden,
            fracs: Some((cf, hf)),
            ..
        } => vec![format!(
            "cells::lstm_q(&self.{gates}, &mut self.{cell}, &mut self.{hidden}, {cf}, {hf});"
        )],
        Op::Gru {
            gates,
            hidden,
            hidden_frac: Some(hf),
            ..
        } => vec![format!(
            "cells::gru_q(&self.{gates}, &mut self.{hidden}, {hf});"
        )],
        Op::FastGrnn {
            pre,
            b_z,
            b_h,
            hidden,
            fixed: Some((zeta, nu, hf)),
            ..
        } => vec![format!(
            "cells::fastgrnn_q(&self.{pre}, &{}, &{}, {zeta}, {nu}, &mut self.{hidden}, {hf});",
            b_z.to_uppercase(),
            b_h.to_uppercase(),
        )],
        Op::Narrow {
            acc,
            dst,
            act,
            acc_shift,
            zero_point,
            ..
        } => vec![match act {
            Activation::None | Activation::Relu => format!(
                "cells::narrow_linear(&self.{acc}, {}, {acc_shift}, {zero_point}, {});",
                write(dst),
                *act == Activation::Relu
            ),
            Activation::Sigmoid => format!("cells::narrow_sigmoid(&self.{acc}, {});", write(dst)),
            Activation::Tanh => format!("cells::narrow_tanh(&self.{acc}, {});", write(dst)),
            Activation::Softmax => format!("cells::narrow_softmax(&self.{acc}, {});", write(dst)),
        }],
        Op::Lstm {
            gates,
            cell,
            hidden,
            ..
        } => vec![format!(
            "cells::lstm_update(&self.{gates}, &mut self.{cell}, &mut self.{hidden});"
        )],
        Op::Gru { gates, hidden, .. } => {
            vec![format!(
                "cells::gru_update(&self.{gates}, &mut self.{hidden});"
            )]
        }
        Op::FastGrnn {
            pre,
            b_z,
            b_h,
            zeta,
            nu,
            hidden,
            ..
        } => vec![format!(
            "cells::fastgrnn_update(&self.{pre}, &{}, &{}, {}, {}, &mut self.{hidden});",
            b_z.to_uppercase(),
            b_h.to_uppercase(),
            float_lit(Lang::Rust, *zeta),
            float_lit(Lang::Rust, *nu)
        )],
        Op::Activate { act, dst, .. } => {
            let f = match act {
                Activation::None => return Vec::new(),
                Activation::Relu => "relu",
                Activation::Sigmoid => "sigmoid",
                Activation::Tanh => "tanh",
                Activation::Softmax => "softmax",
            };
            vec![format!("cells::{f}({});", write(dst))]
        }
        Op::Copy { dst, src, .. } => vec![format!("{} = {};", place(dst), place(src))],
    }
}

pub fn emit(p: &Program) -> Result<Vec<GeneratedFile>, askama::Error> {
    let manifest = Manifest {
        name: &p.name,
        target: &p.target,
    };
    let kernels = p
        .kernels
        .iter()
        .map(|k| {
            // Each kernel takes the exact array types of the buffers it is called with, so
            // every constant index is provably in bounds.
            let o = k.kernel.operands;
            let temp = if k.kernel.uses_temp {
                format!(", t: &mut [{}; {}]", o.t.rust_name(), k.temp_len)
            } else {
                String::new()
            };
            KernelText {
                summary: k.summary.clone(),
                signature: format!(
                    "{}(x: &[{}; {}], y: &mut [{}; {}]{temp})",
                    k.kernel.name,
                    o.x.rust_name(),
                    k.kernel.input_len,
                    o.y.rust_name(),
                    k.dest_len
                ),
                body: kernel_body(Lang::Rust, &k.kernel),
            }
        })
        .collect();
    let lib = Lib {
        name: &p.name,
        target: &p.target,
        features: p.input_features,
        steps: p.steps,
        output: p.output_size,
        tables: p
            .tables
            .iter()
            .map(|t| table_definition(Lang::Rust, t))
            .collect(),
        kernels,
        state_bytes: p.buffers.iter().map(|(_, l, e)| e.bytes() * l).sum(),
        fields: p
            .buffers
            .iter()
            .map(|(n, l, e)| format!("{n}: [{}; {l}],", e.rust_name()))
            .collect(),
        inits: p
            .buffers
            .iter()
            .map(|(n, l, e)| format!("{n}: [{}; {l}],", zero(*e)))
            .collect(),
        advance_x: if Op::any_input(&p.advance) { "x" } else { "_x" },
        advance: p.advance.iter().flat_map(op_lines).collect(),
        head_x: if Op::any_input(&p.head) { "x" } else { "_x" },
        head: p.head.iter().flat_map(op_lines).collect(),
        fixed: p.fixed.as_ref().map(|f| FixedText {
            code: f.code.rust_name(),
            input_scale: float_lit(Lang::Rust, f.input.scale as f32),
            input_inv_scale: float_lit(Lang::Rust, (1.0 / f.input.scale) as f32),
            input_zero_point: f.input.zero_point,
            output_scale: float_lit(Lang::Rust, f.output.scale as f32),
            output_zero_point: f.output.zero_point,
        }),
        io: if p.fixed.is_some() {
            "cells::Code"
        } else {
            "f32"
        },
    };
    Ok(vec![
        GeneratedFile {
            path: "rust/Cargo.toml".to_owned(),
            contents: manifest.render()?,
        },
        GeneratedFile {
            path: "rust/src/lib.rs".to_owned(),
            contents: lib.render()?,
        },
        GeneratedFile {
            path: "rust/src/cells.rs".to_owned(),
            contents: match &p.fixed {
                Some(f) => format!("{CELLS}{}", cells_q(f)),
                None => CELLS.to_owned(),
            },
        },
    ])
}
