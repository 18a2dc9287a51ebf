//! The flash estimate of a lowered program: its constant data, byte for byte, plus its code,
//! counted construct by construct ([`Construct`]) and priced by the target's fitted table
//! ([`CodeSizes`], `[code]` of `targets/*.toml`). It stands for the model's own C object
//! (`.text` + `.rodata` + `.data`) compiled with the core's flags at `-Os`; tests/flash_estimate.rs
//! holds it within 10% of that object on every bundled example and conformance model.

use serde::Serialize;

use super::kernel::{blocks, Coef, Elem, Stmt, Table, Values};
use super::{Op, Program};
use crate::spec::{Activation, Precision};
use crate::target::{CodeSizes, Construct};

/// What the estimate stands for (the budget message and the report say it).
pub const COUNTS: &str = "code and constant data of the model's C object at -Os: weights, \
                          biases, overlay values and indices, activation tables, and code \
                          estimated per construct from the target's fitted [code] table";

/// The flash a build needs by estimate, with its parts.
#[derive(Debug, Clone, Serialize)]
pub struct FlashEstimate {
    /// `data_bytes + code_bytes`.
    pub total_bytes: u64,
    /// Constant tables, exact: stored weights at their width (biases narrowed in size builds),
    /// overlay values and indices, requantization tables, activation tables.
    pub data_bytes: u64,
    /// Code, estimated: the sum of [`CodeItem::bytes`].
    pub code_bytes: u64,
    pub what: &'static str,
    /// Every constant table: name and bytes.
    pub data: Vec<DataItem>,
    /// Every construct the program has: how many, bytes each, bytes.
    pub code: Vec<CodeItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataItem {
    pub name: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeItem {
    pub construct: Construct,
    pub count: usize,
    pub bytes_each: f64,
    pub bytes: f64,
}

/// The precision a program was lowered in.
pub fn precision(program: &Program) -> Precision {
    match program.fixed.as_ref().map(|f| f.bits) {
        None => Precision::F32,
        Some(8) => Precision::Int8,
        Some(_) => Precision::Int16,
    }
}

fn table_bytes(t: &Table) -> u64 {
    let n = match t {
        Table::Matrix { values, .. } => match values {
            Values::F32(v) => 4 * v.len(),
            Values::Int(e, v) => e.bytes() * v.len(),
        },
        Table::Floats { values, .. } => 4 * values.len(),
        Table::Ints { elem, values, .. } => elem.bytes() * values.len(),
        Table::Indices { bytes, values, .. } => bytes * values.len(),
    };
    n as u64
}

/// Every constant table of the program with its bytes: the program's tables, the float
/// sigmoid table, and the Q15 activation tables fixed point includes.
pub fn data(program: &Program) -> Vec<DataItem> {
    // The float sigmoid table is emitted with the pieces that read it: the cells' and a
    // dense layer's sigmoid and tanh (softmax and ReLU need none).
    let float_table = program.activation_table.as_ref().filter(|_| {
        program
            .advance
            .iter()
            .chain(&program.head)
            .any(|op| match op {
                Op::Lstm { .. } | Op::Gru { .. } | Op::FastGrnn { .. } => true,
                Op::Activate { act, .. } => matches!(act, Activation::Sigmoid | Activation::Tanh),
                _ => false,
            })
    });
    let mut out: Vec<DataItem> = program
        .tables
        .iter()
        .chain(float_table)
        .map(|t| DataItem {
            name: t.name().to_uppercase(),
            bytes: table_bytes(t),
        })
        .collect();
    if let Some(f) = &program.fixed {
        let lut = (crate::quant::fixed::LUT_LEN * Elem::I16.bytes()) as u64;
        if f.uses_sigmoid || f.uses_tanh {
            out.push(DataItem {
                name: "KP_TANH_Q15".to_owned(),
                bytes: lut,
            });
        }
        if f.uses_exp {
            out.push(DataItem {
                name: "KP_EXP_Q15".to_owned(),
                bytes: lut,
            });
        }
    }
    out
}

fn count_stmts(body: &[Stmt], n: &mut [usize; Construct::ALL.len()]) {
    for s in body {
        match s {
            Stmt::Loop { body, .. } => {
                n[Construct::Loop as usize] += 1;
                count_stmts(body, n);
            }
            Stmt::Sum { terms, .. } => {
                n[Construct::Sum as usize] += 1;
                let literals = terms
                    .iter()
                    .filter(|(c, _)| matches!(c, Coef::Literal(_)))
                    .count();
                // A stored weight read in a sum costs about two literal MACs (a load more).
                n[Construct::UnrolledMac as usize] += literals + 2 * (terms.len() - literals);
            }
            Stmt::Tile(t) => {
                // The remainder pass after the groups of a dual-MAC block or the full chunks
                // of a Helium integer block.
                let tail = match (t.mve, t.simd) {
                    (Some(v), _) => !v.by_rows && t.q % v.lanes != 0,
                    (None, Some(g)) => t.q % g.group != 0,
                    (None, None) => false,
                };
                n[Construct::TileLoop as usize] += usize::from(t.outer2.is_some());
                for (nb, rows, _) in blocks(t.p, t.ti) {
                    n[Construct::TileLoop as usize] += usize::from(nb > 1);
                    for (nr, cols, _) in blocks(t.outer, t.tr) {
                        n[Construct::TileLoop as usize] += usize::from(nr > 1);
                        n[Construct::TileBlock as usize] += 1;
                        n[Construct::TileMac as usize] += rows * cols;
                        if tail {
                            n[Construct::TileTail as usize] += rows * cols;
                        }
                    }
                }
            }
            Stmt::Csr { .. } => n[Construct::Csr as usize] += 1,
        }
    }
}

/// How many of each construct the program emits.
pub fn counts(program: &Program) -> Vec<(Construct, usize)> {
    let mut n = [0usize; Construct::ALL.len()];
    n[Construct::Program as usize] = 1;
    n[Construct::Kernel as usize] = program.kernels.len();
    for k in &program.kernels {
        count_stmts(&k.kernel.body, &mut n);
    }
    for op in program.advance.iter().chain(&program.head) {
        let once = match op {
            Op::Comment(_) => continue,
            Op::Lstm { .. } => Some(Construct::Lstm),
            Op::Gru { .. } => Some(Construct::Gru),
            Op::FastGrnn { .. } => Some(Construct::Fastgrnn),
            Op::Activate { act, .. } | Op::Narrow { act, .. } => match act {
                Activation::None => None,
                Activation::Relu => Some(Construct::Relu),
                Activation::Sigmoid => Some(Construct::Sigmoid),
                Activation::Tanh => Some(Construct::Tanh),
                Activation::Softmax => Some(Construct::Softmax),
            },
            _ => None,
        };
        n[Construct::Op as usize] += 1;
        if let Some(c) = once {
            n[c as usize] = 1;
        }
    }
    Construct::ALL
        .iter()
        .map(|&c| (c, n[c as usize]))
        .filter(|&(_, k)| k > 0)
        .collect()
}

/// The program's flash by estimate on a target whose code table is `sizes`.
pub fn estimate(program: &Program, sizes: &CodeSizes) -> FlashEstimate {
    let p = precision(program);
    let data = data(program);
    let code: Vec<CodeItem> = counts(program)
        .into_iter()
        .map(|(construct, count)| {
            let each = sizes.bytes(construct, p);
            CodeItem {
                construct,
                count,
                bytes_each: each,
                // To a tenth of a byte, as the table is written.
                bytes: (each * count as f64 * 10.0).round() / 10.0,
            }
        })
        .collect();
    let data_bytes: u64 = data.iter().map(|d| d.bytes).sum();
    let code_bytes = code.iter().map(|c| c.bytes).sum::<f64>().round().max(0.0) as u64;
    FlashEstimate {
        total_bytes: data_bytes + code_bytes,
        data_bytes,
        code_bytes,
        what: COUNTS,
        data,
        code,
    }
}
