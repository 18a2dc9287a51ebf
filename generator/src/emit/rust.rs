//! The Rust emitter: a `#![no_std]`, `#![forbid(unsafe_code)]` crate in `rust/`.

use askama::Template;

use super::ops::{ops_lines, Arg, Calls, Syntax};
use super::syntax::{float_lit, kernel_body, table_definition};
use super::GeneratedFile;
use crate::lower::kernel::{Elem, Table};
use crate::lower::{FixedApi, Op, Program, Vector};
use crate::quant::fixed;
use crate::spec::Lang;

/// The module's inner doc and attributes: the other runtime files hold items only, so a test
/// can `include!` them.
const HEADER: &str = include_str!("../../../runtime/rust/header.rs");
const CELLS: &str = include_str!("../../../runtime/rust/cells.rs");
const CELLS_Q: &str = include_str!("../../../runtime/rust/cells_q.rs");
const ACT_EXACT: &str = include_str!("../../../runtime/rust/act_exact.rs");
const ACT_TABLE: &str = include_str!("../../../runtime/rust/act_table.rs");

/// The float runtime with the program's sigmoid and tanh (and their table).
fn cells(p: &Program) -> String {
    match &p.activation_table {
        Some(table) => format!(
            "{HEADER}{CELLS}{ACT_TABLE}\n{}\n",
            table_definition(Lang::Rust, table)
        ),
        None => format!("{HEADER}{CELLS}{ACT_EXACT}"),
    }
}

/// The fixed-point runtime with its code type and activation tables.
fn cells_q(f: &FixedApi) -> String {
    let tables = [
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

/// Rust's spelling of the step's operations (see [`super::ops`]).
struct Rust;

impl Rust {
    fn args(args: &[Arg]) -> String {
        args.iter()
            .filter_map(|a| match a {
                Arg::Read(v) => Some(read(v)),
                Arg::Write(v) => Some(write(v)),
                Arg::Table(t) => Some(format!("&{}", t.to_uppercase())),
                // Slices carry their length.
                Arg::Len(_) => None,
                Arg::Int(n) => Some(n.to_string()),
                Arg::Float(v) => Some(float_lit(Lang::Rust, *v)),
                Arg::Flag(b) => Some(b.to_string()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Syntax for Rust {
    fn comment(&self, text: &str) -> String {
        format!("// {text}")
    }

    fn runtime_call(&self, name: &str, args: &[Arg]) -> String {
        format!("cells::{name}({});", Rust::args(args))
    }

    fn kernel_call(&self, kernel: &str, args: &[Arg]) -> String {
        format!("{kernel}({});", Rust::args(args))
    }

    fn load(&self, dst: &Vector, table: &str, _len: usize, elem: Elem) -> String {
        match elem {
            Elem::I8 | Elem::I16 => format!(
                "for (d, s) in {}.iter_mut().zip({}.iter()) {{ *d = i32::from(*s); }}",
                place(dst),
                table.to_uppercase()
            ),
            _ => format!("{} = {};", place(dst), table.to_uppercase()),
        }
    }

    fn zero(&self, dst: &Vector, len: usize, elem: Elem) -> String {
        format!("{} = [{}; {len}];", place(dst), zero(elem))
    }

    fn copy(&self, dst: &Vector, src: &Vector, _len: usize) -> String {
        format!("{} = {};", place(dst), place(src))
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
                body: kernel_body(Lang::Rust, &k.kernel).body,
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
        // The whole Rust runtime is one module (unused functions are no warning there), so
        // the calls need not be collected.
        advance: ops_lines(&Rust, &p.advance, &mut Calls::new()),
        head_x: if Op::any_input(&p.head) { "x" } else { "_x" },
        head: ops_lines(&Rust, &p.head, &mut Calls::new()),
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
                Some(f) => format!("{}{}", cells(p), cells_q(f)),
                None => cells(p),
            },
        },
    ])
}
