//! Stage: lowering. The plan (and, for fixed point, its quantization) becomes a [`Program`]:
//! constant tables, one language-neutral kernel per matrix ([`kernel`]) and the ordered
//! operations of one time step. Both emitters print the same program.

pub mod flash;
pub mod kernel;

use crate::plan::{
    BufferRole, LayerConstants, LayerPlan, MatrixPlan, Plan, Product, Source, TEMP_BUFFER,
};
use crate::quant::{LayerQuant, QFormat, QuantPlan};
use crate::spec::{Activation, Activations, Optimize};
use kernel::{lower_matrix, Elem, Kernel, Table};

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
    /// dst = table (a bias); `elem` is the table's element type, narrower than dst's
    /// int32 where a size build stores bias codes in fewer bytes (each widened on load).
    Load {
        dst: Vector,
        table: String,
        len: usize,
        elem: Elem,
    },
    Zero {
        dst: Vector,
        len: usize,
        elem: Elem,
    },
    /// dst += W src through a generated kernel; `temp` is the shared KP / low-rank
    /// intermediate it works in, if it needs one.
    MatVec {
        kernel: String,
        src: Vector,
        dst: Vector,
        temp: Option<Vector>,
    },
    Lstm {
        gates: String,
        cell: String,
        hidden: String,
        units: usize,
        /// Fixed point: (cell state, hidden state) fraction bits.
        fracs: Option<(u32, u32)>,
    },
    Gru {
        gates: String,
        hidden: String,
        units: usize,
        /// Fixed point: hidden state fraction bits.
        hidden_frac: Option<u32>,
    },
    FastGrnn {
        pre: String,
        b_z: String,
        b_h: String,
        zeta: f32,
        nu: f32,
        hidden: String,
        units: usize,
        /// Fixed point: zeta and nu in Q15, hidden state fraction bits.
        fixed: Option<(i32, i32, u32)>,
    },
    /// Fixed point: an int32 accumulator through the activation into output codes.
    Narrow {
        acc: String,
        dst: Vector,
        len: usize,
        act: Activation,
        acc_shift: u32,
        zero_point: i32,
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
            Op::Narrow { .. } => true,
            Op::MatVec { src, dst, temp, .. } => temp.is_some() || src.is_state() || dst.is_state(),
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

/// The integer interface of a fixed-point program.
#[derive(Debug, Clone)]
pub struct FixedApi {
    /// Element type of input and output codes.
    pub code: Elem,
    pub bits: u32,
    pub input: QFormat,
    pub output: QFormat,
    /// Which activation tables the runtime needs.
    pub uses_sigmoid: bool,
    pub uses_tanh: bool,
    pub uses_exp: bool,
}

#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub target: String,
    /// `#if` condition true on an Arm core other than the target's, and the flags to use.
    pub arch_check: Option<(String, String)>,
    pub input_features: usize,
    pub steps: usize,
    pub output_size: usize,
    pub tables: Vec<Table>,
    /// The float sigmoid table (`KP_SIGMOID_F32`) of f32 programs built with table
    /// activations; `None` for exact activations and fixed point.
    pub activation_table: Option<Table>,
    /// The target has Helium (MVE).
    pub helium: bool,
    pub kernels: Vec<KernelDef>,
    /// State-struct arrays: name, length, element type.
    pub buffers: Vec<(String, usize, Elem)>,
    /// Present for int8 / int16 programs.
    pub fixed: Option<FixedApi>,
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
        Product::MultiKron {
            factors,
            order,
            stages,
            ..
        } => {
            let unrolled = stages.iter().filter(|s| s.unrolled).count();
            format!(
                "kp {}, factors applied in the order {}, {unrolled} of {} unrolled",
                factors.text().replace(" ⊗ ", " kron "),
                crate::plan::shapes::order_text(order),
                stages.len()
            )
        }
        Product::LowRank { rank, .. } => format!(
            "low rank {rank}: U ({}x{rank}) V ({rank}x{})",
            m.rows, m.cols
        ),
        Product::Sparse => format!("sparse {}x{}", m.rows, m.cols),
    };
    let product = match m.product.dense_rows() {
        0 => product,
        r => format!("hybrid, {r} dense rows over {product}"),
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

/// The element type a bias table is stored in: float, or the int32 codes, which a size build
/// stores in the narrowest integer type holding every one of them (the same values).
fn bias_elem(codes: Option<&Vec<i32>>, optimize: Optimize) -> Elem {
    match codes {
        None => Elem::F32,
        Some(c) if optimize == Optimize::Size => {
            let fits = |lo: i32, hi: i32| c.iter().all(|&v| (lo..=hi).contains(&v));
            if fits(i8::MIN.into(), i8::MAX.into()) {
                Elem::I8
            } else if fits(i16::MIN.into(), i16::MAX.into()) {
                Elem::I16
            } else {
                Elem::I32
            }
        }
        Some(_) => Elem::I32,
    }
}

fn layer_ops(
    l: &LayerPlan,
    quant: Option<&LayerQuant>,
    optimize: Optimize,
    tables: &mut Vec<Table>,
    ops: &mut Vec<Op>,
) {
    let i = l.index;
    let input = vector(&l.input);
    // Float constants, or their integer codes in a fixed-point program: the table's name and
    // element type.
    // `loaded`: the table is only copied into an int32 buffer (Op::Load), so a size build may
    // store it narrower; a table a cell reads in place stays int32.
    let mut table = |name: String, values: &[f32], codes: Option<&Vec<i32>>, loaded: bool| {
        let elem = match codes {
            Some(_) if !loaded => Elem::I32,
            _ => bias_elem(codes, optimize),
        };
        tables.push(match codes {
            Some(c) => Table::Ints {
                name: name.clone(),
                elem,
                values: c.clone(),
            },
            None => Table::Floats {
                name: name.clone(),
                values: values.to_vec(),
            },
        });
        (name, elem)
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
        temp: m
            .product
            .temp_len()
            .map(|_| Vector::State(TEMP_BUFFER.to_owned())),
    };
    let hidden = l.output.clone().unwrap_or_default();
    match &l.constants {
        LayerConstants::Lstm {
            bias,
            cell_state,
            gates,
        } => {
            let (codes, fracs) = match quant {
                Some(LayerQuant::Lstm {
                    bias,
                    cell_frac,
                    hidden_frac,
                }) => (Some(bias), Some((*cell_frac, *hidden_frac))),
                _ => (None, None),
            };
            let (b, elem) = table(format!("l{i}_bias"), bias, codes, true);
            ops.push(Op::Load {
                dst: Vector::State(gates.clone()),
                table: b,
                len: bias.len(),
                elem,
            });
            ops.push(mv(&l.matrices[0], input));
            ops.push(mv(&l.matrices[1], Vector::State(hidden.clone())));
            ops.push(Op::Lstm {
                gates: gates.clone(),
                cell: cell_state.clone(),
                hidden,
                units: l.units,
                fracs,
            });
        }
        LayerConstants::Gru {
            bias_ih,
            bias_hh,
            gates,
        } => {
            let mut both = bias_ih.clone();
            both.extend_from_slice(bias_hh);
            let (codes, hidden_frac) = match quant {
                Some(LayerQuant::Gru { bias, hidden_frac }) => (Some(bias), Some(*hidden_frac)),
                _ => (None, None),
            };
            let (b, elem) = table(format!("l{i}_bias"), &both, codes, true);
            ops.push(Op::Load {
                dst: Vector::State(gates.clone()),
                table: b,
                len: both.len(),
                elem,
            });
            ops.push(mv(&l.matrices[0], input));
            ops.push(mv(&l.matrices[1], Vector::State(hidden.clone())));
            ops.push(Op::Gru {
                gates: gates.clone(),
                hidden,
                units: l.units,
                hidden_frac,
            });
        }
        LayerConstants::FastGrnn {
            b_z,
            b_h,
            zeta,
            nu,
            gates,
        } => {
            let (codes_z, codes_h, fixed) = match quant {
                Some(LayerQuant::FastGrnn {
                    b_z,
                    b_h,
                    zeta,
                    nu,
                    hidden_frac,
                }) => (Some(b_z), Some(b_h), Some((*zeta, *nu, *hidden_frac))),
                _ => (None, None, None),
            };
            let (bz, _) = table(format!("l{i}_b_z"), b_z, codes_z, false);
            let (bh, _) = table(format!("l{i}_b_h"), b_h, codes_h, false);
            ops.push(Op::Zero {
                dst: Vector::State(gates.clone()),
                len: l.units,
                elem: if fixed.is_some() {
                    Elem::I32
                } else {
                    Elem::F32
                },
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
                fixed,
            });
        }
        LayerConstants::Dense {
            bias,
            activation,
            acc,
        } => {
            let dst = dest_vector(&l.matrices[0].dest);
            let q = match quant {
                Some(LayerQuant::Dense {
                    bias,
                    acc_shift,
                    output,
                    ..
                }) => Some((bias, *acc_shift, output.zero_point)),
                _ => None,
            };
            let (b, elem) = table(format!("l{i}_bias"), bias, q.map(|q| q.0), true);
            ops.push(Op::Load {
                dst: dst.clone(),
                table: b,
                len: bias.len(),
                elem,
            });
            ops.push(mv(&l.matrices[0], input));
            match (acc, q) {
                (Some(acc), Some((_, acc_shift, zero_point))) => ops.push(Op::Narrow {
                    acc: acc.clone(),
                    dst: l
                        .output
                        .as_deref()
                        .map_or(Vector::Output, |o| Vector::State(o.to_owned())),
                    len: l.units,
                    act: *activation,
                    acc_shift,
                    zero_point,
                }),
                _ if *activation != Activation::None => ops.push(Op::Activate {
                    act: *activation,
                    dst,
                    len: l.units,
                }),
                _ => {}
            }
        }
    }
}

/// Element type of a buffer in a program of this precision.
fn buffer_elem(role: BufferRole, quant: Option<&QuantPlan>) -> Elem {
    match (quant, role) {
        (None, _) => Elem::F32,
        (Some(_), BufferRole::Accumulator) => Elem::I32,
        (Some(q), BufferRole::Activation) => Elem::int(q.act_bits),
        (Some(_), BufferRole::CellState | BufferRole::Temp) => Elem::I16,
    }
}

/// Lowers a plan (and, for fixed point, its quantization) to the program both emitters print.
pub fn program(plan: &Plan, quant: Option<&QuantPlan>) -> Program {
    let mut tables = Vec::new();
    let mut kernels = Vec::new();
    let act = quant.map(|q| Elem::int(q.act_bits));
    for m in plan.matrices() {
        let mq = quant.and_then(|q| q.matrix(&m.id)).zip(act);
        let kernel = lower_matrix(m, mq);
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
        layer_ops(
            l,
            quant.and_then(|q| q.layers.get(l.index)),
            plan.optimize,
            &mut tables,
            ops,
        );
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
    let arch_check = (!plan.arch_macros.is_empty()).then(|| {
        let none_defined: Vec<String> = plan
            .arch_macros
            .iter()
            .map(|m| format!("!defined({m})"))
            .collect();
        (
            format!("defined(__arm__) && {}", none_defined.join(" && ")),
            plan.cflags.join(" "),
        )
    });
    Program {
        name: plan.name.clone(),
        target: plan.target.clone(),
        arch_check,
        input_features: plan.input_features,
        steps: plan.steps,
        output_size: plan.output_size,
        tables,
        activation_table: (quant.is_none() && plan.activations == Activations::Table).then(|| {
            Table::Floats {
                name: "kp_sigmoid_f32".to_owned(),
                values: crate::model::cells::sigmoid_table().to_vec(),
            }
        }),
        helium: plan.helium,
        kernels,
        buffers: plan
            .buffers
            .iter()
            .map(|b| (b.name.clone(), b.len, buffer_elem(b.role, quant)))
            .collect(),
        fixed: quant.map(|q| fixed_api(q, &advance, &head)),
        advance,
        head,
    }
}

fn fixed_api(q: &QuantPlan, advance: &[Op], head: &[Op]) -> FixedApi {
    let ops = || advance.iter().chain(head);
    let narrow_uses = |acts: &[Activation]| {
        ops().any(|o| matches!(o, Op::Narrow { act, .. } if acts.contains(act)))
    };
    let cells = ops().any(|o| matches!(o, Op::Lstm { .. } | Op::Gru { .. } | Op::FastGrnn { .. }));
    FixedApi {
        code: Elem::int(q.act_bits),
        bits: q.act_bits,
        input: q.input,
        output: q.output,
        uses_sigmoid: cells || narrow_uses(&[Activation::Sigmoid]),
        uses_tanh: cells || narrow_uses(&[Activation::Tanh]),
        uses_exp: narrow_uses(&[Activation::Softmax]),
    }
}

#[cfg(test)]
mod tests {
    use super::{bias_elem, Elem, Optimize};

    #[test]
    fn a_size_build_stores_bias_codes_in_the_narrowest_type_that_holds_them() {
        let size = |c: &[i32]| bias_elem(Some(&c.to_vec()), Optimize::Size);
        assert_eq!(size(&[-128, 127]), Elem::I8);
        assert_eq!(size(&[-129, 0]), Elem::I16);
        assert_eq!(size(&[0, 128]), Elem::I16);
        assert_eq!(size(&[-32768, 32767]), Elem::I16);
        assert_eq!(size(&[32768]), Elem::I32);
        assert_eq!(size(&[i32::MIN, 5]), Elem::I32);
        assert_eq!(size(&[]), Elem::I8);
        // Speed keeps int32 (as every build did), float stays float.
        assert_eq!(bias_elem(Some(&vec![1, 2]), Optimize::Speed), Elem::I32);
        assert_eq!(bias_elem(None, Optimize::Size), Elem::F32);
    }
}
