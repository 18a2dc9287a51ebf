//! Stage 5: emit. The plan is lowered to a `Program` — constant tables, kernels and the ordered
//! operations of one time step — which the C and Rust emitters print through askama templates.

pub mod c;
pub mod rust;
pub mod syntax;

use crate::kernel::{lower_matrix, Kernel, Table};
use crate::plan::{LayerConstants, LayerPlan, MatrixPlan, Plan, Product, Source, TEMP_BUFFER};
use crate::spec::Activation;

/// A file of the generated output, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// A vector an operation reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vector {
    /// The step's input `x`.
    Input,
    /// The caller's output `y`.
    Output,
    /// A state-struct buffer.
    State(String),
}

/// One operation of a time step.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Comment(String),
    /// dst = table (a bias).
    Load {
        dst: Vector,
        table: String,
        len: usize,
    },
    Zero {
        dst: Vector,
        len: usize,
    },
    /// dst += W src through a generated kernel.
    MatVec {
        kernel: String,
        src: Vector,
        dst: Vector,
        uses_temp: bool,
    },
    Lstm {
        gates: String,
        cell: String,
        hidden: String,
        units: usize,
    },
    Gru {
        gates: String,
        hidden: String,
        units: usize,
    },
    FastGrnn {
        pre: String,
        b_z: String,
        b_h: String,
        zeta: f32,
        nu: f32,
        hidden: String,
        units: usize,
    },
    Activate {
        act: Activation,
        dst: Vector,
        len: usize,
    },
    Copy {
        dst: Vector,
        src: Vector,
        len: usize,
    },
}

impl Vector {
    fn is_state(&self) -> bool {
        matches!(self, Vector::State(_))
    }
}

impl Op {
    /// Whether the operation reads or writes the state struct.
    pub fn touches_state(&self) -> bool {
        match self {
            Op::Comment(_) => false,
            Op::Load { dst, .. } | Op::Zero { dst, .. } | Op::Activate { dst, .. } => {
                dst.is_state()
            }
            Op::MatVec {
                src,
                dst,
                uses_temp,
                ..
            } => *uses_temp || src.is_state() || dst.is_state(),
            Op::Lstm { .. } | Op::Gru { .. } | Op::FastGrnn { .. } => true,
            Op::Copy { dst, src, .. } => dst.is_state() || src.is_state(),
        }
    }

    /// Whether the operation reads the step input `x`.
    pub fn reads_input(&self) -> bool {
        matches!(
            self,
            Op::MatVec {
                src: Vector::Input,
                ..
            } | Op::Copy {
                src: Vector::Input,
                ..
            }
        )
    }

    pub fn any_state(ops: &[Op]) -> bool {
        ops.iter().any(Op::touches_state)
    }

    pub fn any_input(ops: &[Op]) -> bool {
        ops.iter().any(Op::reads_input)
    }
}

/// A kernel with what its printers need to know about its operands.
#[derive(Debug, Clone)]
pub struct KernelDef {
    pub kernel: Kernel,
    pub summary: String,
    pub dest_len: usize,
    pub temp_len: usize,
}

#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub target: String,
    pub input_features: usize,
    pub steps: usize,
    pub output_size: usize,
    pub tables: Vec<Table>,
    pub kernels: Vec<KernelDef>,
    pub buffers: Vec<(String, usize)>,
    /// Layers that carry state: run at every step.
    pub advance: Vec<Op>,
    /// Stateless layers after the last recurrent one: only their last-step output matters to
    /// `infer`, so it runs them once.
    pub head: Vec<Op>,
}

fn vector(src: &Source) -> Vector {
    match src {
        Source::ModelInput => Vector::Input,
        Source::Buffer(b) => Vector::State(b.clone()),
    }
}

fn dest_vector(name: &str) -> Vector {
    if name == "y" {
        Vector::Output
    } else {
        Vector::State(name.to_owned())
    }
}

fn summary(m: &MatrixPlan) -> String {
    let product = match &m.product {
        Product::Dense { stage } => format!(
            "dense {}x{}{}",
            m.rows,
            m.cols,
            if stage.unrolled { ", unrolled" } else { "" }
        ),
        Product::Kron {
            shape,
            order,
            stages,
            ..
        } => {
            let unrolled: Vec<&str> = stages
                .iter()
                .filter(|s| s.unrolled)
                .map(|s| s.factor.rsplit('_').next().unwrap_or(""))
                .collect();
            format!(
                "kp ({}x{}) kron ({}x{}), order {}{}",
                shape.m1,
                shape.n1,
                shape.m2,
                shape.n2,
                order.as_str(),
                if unrolled.is_empty() {
                    String::new()
                } else {
                    format!(", unrolled {}", unrolled.join(", ").to_uppercase())
                }
            )
        }
        Product::LowRank { rank, .. } => format!(
            "low rank {rank}: U ({}x{rank}) V ({rank}x{})",
            m.rows, m.cols
        ),
        Product::Sparse => format!("sparse {}x{}", m.rows, m.cols),
    };
    let overlay = m.overlay.as_ref().map_or(String::new(), |o| {
        format!(
            " + overlay {} nnz ({})",
            o.nnz,
            match o.encoding {
                crate::plan::OverlayEncoding::StraightLine => "straight-line",
                crate::plan::OverlayEncoding::Csr { .. } => "csr",
            }
        )
    });
    format!(
        "{}.{}: y += W x, {}{}; {} MACs (dense {})",
        m.id.split('_').next().unwrap_or(""),
        m.field,
        product,
        overlay,
        m.macs,
        m.dense_macs
    )
}

fn layer_ops(plan: &Plan, l: &LayerPlan, tables: &mut Vec<Table>, ops: &mut Vec<Op>) {
    let i = l.index;
    let input = vector(&l.input);
    let mut table = |name: String, values: &[f32]| {
        tables.push(Table::Floats {
            name: name.clone(),
            values: values.to_vec(),
        });
        name
    };
    let forms: Vec<String> = l
        .matrices
        .iter()
        .map(|m| format!("{} {}", m.field, m.form))
        .collect();
    ops.push(Op::Comment(format!(
        "layer {i}: {}, {} -> {} ({})",
        l.kind.as_str(),
        l.inputs,
        l.units,
        forms.join(", ")
    )));
    let mv = |m: &MatrixPlan, src: Vector| Op::MatVec {
        kernel: format!("{}_mv", m.id),
        src,
        dst: dest_vector(&m.dest),
        uses_temp: m.product.temp_len().is_some(),
    };
    let hidden = l.output.clone().unwrap_or_default();
    match &l.constants {
        LayerConstants::Lstm {
            bias,
            cell_state,
            gates,
        } => {
            let b = table(format!("l{i}_bias"), bias);
            ops.push(Op::Load {
                dst: Vector::State(gates.clone()),
                table: b,
                len: bias.len(),
            });
            ops.push(mv(&l.matrices[0], input));
            ops.push(mv(&l.matrices[1], Vector::State(hidden.clone())));
            ops.push(Op::Lstm {
                gates: gates.clone(),
                cell: cell_state.clone(),
                hidden,
                units: l.units,
            });
        }
        LayerConstants::Gru {
            bias_ih,
            bias_hh,
            gates,
        } => {
            let mut both = bias_ih.clone();
            both.extend_from_slice(bias_hh);
            let b = table(format!("l{i}_bias"), &both);
            ops.push(Op::Load {
                dst: Vector::State(gates.clone()),
                table: b,
                len: both.len(),
            });
            ops.push(mv(&l.matrices[0], input));
            ops.push(mv(&l.matrices[1], Vector::State(hidden.clone())));
            ops.push(Op::Gru {
                gates: gates.clone(),
                hidden,
                units: l.units,
            });
        }
        LayerConstants::FastGrnn {
            b_z,
            b_h,
            zeta,
            nu,
            gates,
        } => {
            let bz = table(format!("l{i}_b_z"), b_z);
            let bh = table(format!("l{i}_b_h"), b_h);
            ops.push(Op::Zero {
                dst: Vector::State(gates.clone()),
                len: l.units,
            });
            ops.push(mv(&l.matrices[0], input));
            ops.push(mv(&l.matrices[1], Vector::State(hidden.clone())));
            ops.push(Op::FastGrnn {
                pre: gates.clone(),
                b_z: bz,
                b_h: bh,
                zeta: *zeta,
                nu: *nu,
                hidden,
                units: l.units,
            });
        }
        LayerConstants::Dense { bias, activation } => {
            let dst = dest_vector(&l.matrices[0].dest);
            let b = table(format!("l{i}_bias"), bias);
            ops.push(Op::Load {
                dst: dst.clone(),
                table: b,
                len: bias.len(),
            });
            ops.push(mv(&l.matrices[0], input));
            if *activation != Activation::None {
                ops.push(Op::Activate {
                    act: *activation,
                    dst,
                    len: l.units,
                });
            }
        }
    }
    let _ = plan;
}

/// Lowers a plan to the program both emitters print.
pub fn lower(plan: &Plan) -> Program {
    let mut tables = Vec::new();
    let mut kernels = Vec::new();
    for m in plan.matrices() {
        let kernel = lower_matrix(m);
        tables.extend(kernel.tables.iter().cloned());
        let dest_len = if m.dest == "y" {
            plan.output_size
        } else {
            plan.buffer_len(&m.dest)
        };
        kernels.push(KernelDef {
            summary: summary(m),
            dest_len,
            temp_len: plan.buffer_len(TEMP_BUFFER),
            kernel,
        });
    }
    // Layers up to the last recurrent one carry state; the rest form the head.
    let split = plan
        .layers
        .iter()
        .rposition(|l| l.kind != crate::spec::LayerKind::Dense)
        .map_or(0, |i| i + 1);
    let mut advance = Vec::new();
    let mut head = Vec::new();
    for l in &plan.layers {
        let ops = if l.index < split {
            &mut advance
        } else {
            &mut head
        };
        layer_ops(plan, l, &mut tables, ops);
    }
    // A model ending in a recurrent layer outputs its hidden state.
    if let Some(last) = plan.layers.last() {
        if last.index < split {
            head.push(Op::Copy {
                dst: Vector::Output,
                src: Vector::State(last.output.clone().unwrap_or_default()),
                len: plan.output_size,
            });
        }
    }
    Program {
        name: plan.name.clone(),
        target: plan.target.clone(),
        input_features: plan.input_features,
        steps: plan.steps,
        output_size: plan.output_size,
        tables,
        kernels,
        buffers: plan
            .buffers
            .iter()
            .map(|b| (b.name.clone(), b.len))
            .collect(),
        advance,
        head,
    }
}

/// All generated files: `c/NAME.h`, `c/NAME.c`, `rust/Cargo.toml`, `rust/src/*.rs`.
pub fn emit(program: &Program) -> Result<Vec<GeneratedFile>, askama::Error> {
    let mut files = c::emit(program)?;
    files.extend(rust::emit(program)?);
    Ok(files)
}
