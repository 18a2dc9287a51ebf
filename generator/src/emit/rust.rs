//! The Rust emitter: a `#![no_std]`, `#![forbid(unsafe_code)]` crate in `rust/`.

use askama::Template;

use super::syntax::{float_lit, kernel_body, table_definition, Lang};
use super::{GeneratedFile, Op, Program, Vector};
use crate::spec::Activation;

const CELLS: &str = include_str!("../../../templates/rust/cells.rs");

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

fn op_lines(op: &Op) -> Vec<String> {
    match op {
        Op::Comment(c) => vec![format!("// {c}")],
        Op::Load { dst, table, .. } => vec![format!("{} = {};", place(dst), table.to_uppercase())],
        Op::Zero { dst, len } => vec![format!("{} = [0.0; {len}];", place(dst))],
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
            let temp = if k.kernel.uses_temp {
                format!(", t: &mut [f32; {}]", k.temp_len)
            } else {
                String::new()
            };
            KernelText {
                summary: k.summary.clone(),
                signature: format!(
                    "{}(x: &[f32; {}], y: &mut [f32; {}]{temp})",
                    k.kernel.name, k.kernel.input_len, k.dest_len
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
        state_bytes: p.buffers.iter().map(|(_, l)| 4 * l).sum(),
        fields: p
            .buffers
            .iter()
            .map(|(n, l)| format!("{n}: [f32; {l}],"))
            .collect(),
        inits: p
            .buffers
            .iter()
            .map(|(n, l)| format!("{n}: [0.0; {l}],"))
            .collect(),
        advance_x: if Op::any_input(&p.advance) { "x" } else { "_x" },
        advance: p.advance.iter().flat_map(op_lines).collect(),
        head_x: if Op::any_input(&p.head) { "x" } else { "_x" },
        head: p.head.iter().flat_map(op_lines).collect(),
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
            contents: CELLS.to_owned(),
        },
    ])
}
