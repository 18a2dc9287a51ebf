//! The one printer of a step's operations. Which runtime function an operation calls, with
//! which arguments in which order, is decided here once for both languages; a [`Syntax`] only
//! spells a call, a vector and the three array statements in its language. Every runtime
//! function a printed operation calls is recorded, so the emitters include exactly those
//! runtime pieces without searching the printed text.

use std::collections::BTreeSet;

use crate::lower::kernel::Elem;
use crate::lower::{Op, Vector};
use crate::spec::Activation;

/// Runtime functions a piece of printed code calls, by their language-neutral names
/// (`lstm_q`, `requant`, ...): C prefixes them with `kp_`, Rust finds them in `cells::`.
pub type Calls = BTreeSet<&'static str>;

/// An argument of a call, in the order the runtime function takes them.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A vector the callee only reads.
    Read(&'a Vector),
    /// A vector the callee writes.
    Write(&'a Vector),
    /// A constant table (bias) by its lowered name.
    Table(&'a str),
    /// An element count: C passes it, Rust's slices carry it.
    Len(usize),
    Int(i64),
    Float(f32),
    Flag(bool),
}

/// How one language spells what the op printer asks for.
pub trait Syntax {
    /// A comment on a line of its own.
    fn comment(&self, text: &str) -> String;
    /// A call of the runtime function `name` (language-neutral) as a statement.
    fn runtime_call(&self, name: &str, args: &[Arg]) -> String;
    /// A call of a generated kernel as a statement.
    fn kernel_call(&self, kernel: &str, args: &[Arg]) -> String;
    /// `dst[0..len] = TABLE`.
    /// dst = table, each element widened from the table's `elem` where it is narrower.
    fn load(&self, dst: &Vector, table: &str, len: usize, elem: Elem) -> String;
    /// `dst[0..len] = 0` in elements of `elem`.
    fn zero(&self, dst: &Vector, len: usize, elem: Elem) -> String;
    /// `dst[0..len] = src[0..len]`.
    fn copy(&self, dst: &Vector, src: &Vector, len: usize) -> String;
}

/// The lines of one operation, recording the runtime functions they call in `calls`.
pub fn op_lines(syntax: &impl Syntax, op: &Op, calls: &mut Calls) -> Vec<String> {
    use Arg::*;
    let state = |name: &str| Vector::State(name.to_owned());
    let mut call = |name: &'static str, args: &[Arg]| {
        calls.insert(name);
        vec![syntax.runtime_call(name, args)]
    };
    match op {
        Op::Comment(c) => vec![syntax.comment(c)],
        Op::Load {
            dst,
            table,
            len,
            elem,
        } => vec![syntax.load(dst, table, *len, *elem)],
        Op::Zero { dst, len, elem } => vec![syntax.zero(dst, *len, *elem)],
        Op::Copy { dst, src, len } => vec![syntax.copy(dst, src, *len)],
        Op::MatVec {
            kernel,
            src,
            dst,
            temp,
        } => {
            let mut args = vec![Read(src), Write(dst)];
            if let Some(t) = temp {
                args.push(Write(t));
            }
            vec![syntax.kernel_call(kernel, &args)]
        }
        Op::Lstm {
            gates,
            cell,
            hidden,
            units,
            fracs,
        } => {
            let (g, c, h) = (state(gates), state(cell), state(hidden));
            let mut args = vec![Read(&g), Write(&c), Write(&h), Len(*units)];
            match fracs {
                Some((cf, hf)) => {
                    args.extend([Int(i64::from(*cf)), Int(i64::from(*hf))]);
                    call("lstm_q", &args)
                }
                None => call("lstm_update", &args),
            }
        }
        Op::Gru {
            gates,
            hidden,
            units,
            hidden_frac,
        } => {
            let (g, h) = (state(gates), state(hidden));
            let mut args = vec![Read(&g), Write(&h), Len(*units)];
            match hidden_frac {
                Some(hf) => {
                    args.push(Int(i64::from(*hf)));
                    call("gru_q", &args)
                }
                None => call("gru_update", &args),
            }
        }
        Op::FastGrnn {
            pre,
            b_z,
            b_h,
            zeta,
            nu,
            hidden,
            units,
            fixed,
        } => {
            let (p, h) = (state(pre), state(hidden));
            match fixed {
                Some((zeta, nu, hf)) => call(
                    "fastgrnn_q",
                    &[
                        Read(&p),
                        Table(b_z),
                        Table(b_h),
                        Int(i64::from(*zeta)),
                        Int(i64::from(*nu)),
                        Write(&h),
                        Len(*units),
                        Int(i64::from(*hf)),
                    ],
                ),
                None => call(
                    "fastgrnn_update",
                    &[
                        Read(&p),
                        Table(b_z),
                        Table(b_h),
                        Float(*zeta),
                        Float(*nu),
                        Write(&h),
                        Len(*units),
                    ],
                ),
            }
        }
        Op::Narrow {
            acc,
            dst,
            len,
            act,
            acc_shift,
            zero_point,
        } => {
            let a = state(acc);
            let head = [Read(&a), Write(dst), Len(*len)];
            match act {
                Activation::None | Activation::Relu => {
                    let mut args = head.to_vec();
                    args.extend([
                        Int(i64::from(*acc_shift)),
                        Int(i64::from(*zero_point)),
                        Flag(*act == Activation::Relu),
                    ]);
                    call("narrow_linear", &args)
                }
                Activation::Sigmoid => call("narrow_sigmoid", &head),
                Activation::Tanh => call("narrow_tanh", &head),
                Activation::Softmax => call("narrow_softmax", &head),
            }
        }
        Op::Activate { act, dst, len } => {
            let name = match act {
                Activation::None => return Vec::new(),
                Activation::Relu => "relu",
                Activation::Sigmoid => "sigmoid",
                Activation::Tanh => "tanh",
                Activation::Softmax => "softmax",
            };
            call(name, &[Write(dst), Len(*len)])
        }
    }
}

/// The lines of a sequence of operations and the runtime functions they call.
pub fn ops_lines(syntax: &impl Syntax, ops: &[Op], calls: &mut Calls) -> Vec<String> {
    ops.iter()
        .flat_map(|op| op_lines(syntax, op, calls))
        .collect()
}
