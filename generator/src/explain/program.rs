//! The lower view: the program's tables, state arrays, kernels (as indented pseudo-code over the
//! statement IR) and the operations of one step.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::lower::kernel::{
    Access, Affine, Array, Coef, Elem, Fixed, Index, Kernel, Num, Stmt, Table, Values,
};
use crate::lower::{Op, Program, Vector};
use crate::spec::Activation;

macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

fn elem(e: Elem) -> &'static str {
    e.rust_name()
}

fn affine(a: &Affine) -> String {
    let mut parts = Vec::new();
    if a.constant != 0 || a.terms.is_empty() {
        parts.push(a.constant.to_string());
    }
    for &(var, coef) in &a.terms {
        parts.push(if coef == 1 {
            var.to_owned()
        } else {
            format!("{coef}{var}")
        });
    }
    parts.join(" + ")
}

fn array(a: &Array) -> &str {
    match a {
        Array::Input => "x",
        Array::Dest => "y",
        Array::Temp => "t",
        Array::Const(name) => name,
    }
}

fn access(a: &Access) -> String {
    match &a.index {
        Index::Flat(i) => format!("{}[{}]", array(&a.array), affine(i)),
        Index::Grid(r, c) => format!("{}[{}][{}]", array(&a.array), affine(r), affine(c)),
    }
}

fn num(n: Num) -> String {
    match n {
        Num::F32(v) => format!("{v:?}"),
        Num::Int(v) => v.to_string(),
    }
}

fn fixed(f: &Option<Fixed>) -> String {
    let Some(f) = f else {
        return String::new();
    };
    let acc = if f.wide { "int64" } else { "int32" };
    let requant = match f.shift_only {
        Some(k) => format!("shift {k}"),
        None => format!("requantize({}, {})", f.requant.multiplier, f.requant.shift),
    };
    let store = if f.narrow { ", saturate to int16" } else { "" };
    format!("    [{acc} accumulator, {requant}{store}]")
}

/// Terms joined by `+`, a negative term's sign taken into the operator: `a - b`, not `a + -b`.
fn sum(terms: &[String]) -> String {
    let mut out = String::new();
    for (k, term) in terms.iter().enumerate() {
        match (k, term.strip_prefix('-')) {
            (0, _) => out.push_str(term),
            (_, Some(rest)) => {
                out.push_str(" - ");
                out.push_str(rest);
            }
            (_, None) => {
                out.push_str(" + ");
                out.push_str(term);
            }
        }
    }
    out
}

fn stmts(out: &mut String, body: &[Stmt], depth: usize) {
    let pad = "  ".repeat(depth);
    for s in body {
        match s {
            Stmt::Loop { var, count, body } => {
                line!(out, "{pad}for {var} < {count}:");
                stmts(out, body, depth + 1);
            }
            Stmt::Sum {
                dst,
                accumulate,
                terms,
                fixed: f,
                offset,
            } => {
                let mut rhs: Vec<String> = terms
                    .iter()
                    .map(|(c, x)| match c {
                        Coef::Literal(n) => format!("{}·{}", num(*n), access(x)),
                        Coef::Load(w) => format!("{}·{}", access(w), access(x)),
                    })
                    .collect();
                if *offset != 0 {
                    rhs.insert(0, offset.to_string());
                }
                if rhs.is_empty() {
                    rhs.push("0".to_owned());
                }
                line!(
                    out,
                    "{pad}{} {} {}{}",
                    access(dst),
                    if *accumulate { "+=" } else { "=" },
                    sum(&rhs),
                    fixed(f)
                );
            }
            Stmt::Tile(t) => {
                // The second loop, shown only where a tile has one.
                let (outer2, out_r2, in_r2) = match t.outer2 {
                    Some(o) => (
                        format!(", outer2 {}", o.count),
                        format!(" + r2*{}", o.out_stride),
                        format!(" + r2*{}", o.in_stride),
                    ),
                    None => Default::default(),
                };
                line!(
                    out,
                    "{pad}tiles {}x{} of {} ({}x{}, outer {}{outer2}): {}[{} + i*{} + r*{}{out_r2}] {} Σ_j {}[i][j]·{}[{} + j*{} + r*{}{in_r2}]{}{}{}",
                    t.ti,
                    t.tr,
                    t.weights,
                    t.p,
                    t.q,
                    t.outer,
                    array(&t.output),
                    t.out_base,
                    t.out_i,
                    t.out_r,
                    if t.accumulate { "+=" } else { "=" },
                    t.weights,
                    array(&t.input),
                    t.in_base,
                    t.in_j,
                    t.in_r,
                    t.mve.map_or(String::new(), |v| if v.by_rows {
                        ", Helium vectors across up to 4 rows (f32: a weight vector per j, a VFMA per column)".to_owned()
                    } else {
                        format!(
                            ", Helium dot products over chunks of {} lanes ({} weights, {} inputs{})",
                            v.lanes,
                            elem(v.weight),
                            elem(v.input),
                            match t.q % v.lanes {
                                0 => String::new(),
                                n => format!(", the last chunk {n} lanes under a tail predicate"),
                            }
                        )
                    }) + &t.simd.map_or(String::new(), |s| format!(
                        ", dual MACs over groups of {} ({} weights, {} inputs{})",
                        s.group,
                        elem(s.weight),
                        elem(s.input),
                        if s.strided {
                            ", strided: pairs of rows j, j+1 built two columns at a time"
                        } else {
                            ""
                        }
                    )),
                    t.init
                        .as_ref()
                        .map_or(String::new(), |i| format!(", rows start at {i}[i]")),
                    fixed(&t.fixed)
                );
            }
            Stmt::Csr {
                rows,
                dest_offset,
                row_ptr,
                col_index,
                values,
                fixed: f,
                init,
            } => {
                line!(
                    out,
                    "{pad}for r < {rows}: y[{dest_offset} + r] += Σ_(k in {row_ptr}[r]..{row_ptr}[r+1]) {values}[k]·x[{col_index}[k]]{}{}",
                    init.as_ref()
                        .map_or(String::new(), |i| format!(", starting at {i}[r]")),
                    fixed(f)
                );
            }
        }
    }
}

fn table(t: &Table) -> (String, Value) {
    let (shape, ty, len) = match t {
        Table::Matrix {
            rows, cols, values, ..
        } => {
            let (ty, len) = match values {
                Values::F32(v) => ("f32", v.len()),
                Values::Int(e, v) => (elem(*e), v.len()),
            };
            (format!("[{rows}][{cols}]"), ty, len)
        }
        Table::Floats { values, .. } => (format!("[{}]", values.len()), "f32", values.len()),
        Table::Ints {
            elem: e, values, ..
        } => (format!("[{}]", values.len()), elem(*e), values.len()),
        Table::Indices { bytes, values, .. } => (
            format!("[{}]", values.len()),
            match bytes {
                1 => "u8",
                2 => "u16",
                _ => "u32",
            },
            values.len(),
        ),
    };
    let text = format!("{} {ty}{shape}", t.name());
    let json = json!({ "name": t.name(), "elem": ty, "len": len, "shape": shape });
    (text, json)
}

fn kernel_text(k: &Kernel) -> String {
    let mut out = String::new();
    stmts(&mut out, &k.body, 3);
    out
}

fn vector(v: &Vector) -> String {
    match v {
        Vector::Input => "x".to_owned(),
        Vector::Output => "y".to_owned(),
        Vector::State(s) => format!("state.{s}"),
    }
}

fn op(o: &Op) -> String {
    match o {
        Op::Comment(c) => format!("// {c}"),
        Op::Load {
            dst, table, len, ..
        } => format!("{}[0..{len}] = {table}", vector(dst)),
        Op::Zero { dst, len, elem: e } => {
            format!("{}[0..{len}] = 0 ({})", vector(dst), elem(*e))
        }
        Op::MatVec {
            kernel, src, dst, ..
        } => format!("{} += {kernel} · {}", vector(dst), vector(src)),
        Op::Lstm {
            gates,
            cell,
            hidden,
            units,
            fracs,
        } => format!(
            "lstm cell ({units} units): gates state.{gates} -> cell state.{cell}, hidden state.{hidden}{}",
            fracs.map_or(String::new(), |(c, h)| format!(
                " (cell Q.{c}, hidden Q.{h})"
            ))
        ),
        Op::Gru {
            gates,
            hidden,
            units,
            hidden_frac,
        } => format!(
            "gru cell ({units} units): gates state.{gates} -> hidden state.{hidden}{}",
            hidden_frac.map_or(String::new(), |h| format!(" (hidden Q.{h})"))
        ),
        Op::FastGrnn {
            pre,
            b_z,
            b_h,
            hidden,
            units,
            fixed,
            ..
        } => format!(
            "fastgrnn cell ({units} units): pre-activation state.{pre} + {b_z}, {b_h} -> hidden state.{hidden}{}",
            fixed.map_or(String::new(), |(z, n, h)| format!(
                " (zeta {z}, nu {n} in Q15, hidden Q.{h})"
            ))
        ),
        Op::Narrow {
            acc,
            dst,
            len,
            act,
            acc_shift,
            zero_point,
        } => {
            let f = match act {
                Activation::None => "narrow".to_owned(),
                _ => format!("narrow ∘ {}", json!(act).as_str().unwrap_or("")),
            };
            format!(
                "{}[0..{len}] = {f}(state.{acc}) (accumulator shift {acc_shift}, zero point {zero_point})",
                vector(dst)
            )
        }
        Op::Activate { act, dst, len } => format!(
            "{}[0..{len}] = {}({0}[0..{len}])",
            vector(dst),
            json!(act).as_str().unwrap_or("")
        ),
        Op::Copy { dst, src, len } => format!("{}[0..{len}] = {}", vector(dst), vector(src)),
    }
}

pub fn explain(p: &Program) -> (String, Value) {
    let mut t = String::new();
    line!(
        t,
        "program {} for {}: {} inputs, {} steps, {} outputs",
        p.name,
        p.target,
        p.input_features,
        p.steps,
        p.output_size
    );
    if let Some(f) = &p.fixed {
        line!(
            t,
            "  fixed point: {}-bit codes, input scale {:e} zero point {}, output scale {:e} zero point {}",
            f.bits,
            f.input.scale,
            f.input.zero_point,
            f.output.scale,
            f.output.zero_point
        );
    }
    line!(t, "  tables (flash):");
    let mut tables = Vec::new();
    for tb in &p.tables {
        let (text, json) = table(tb);
        line!(t, "    {text}");
        tables.push(json);
    }
    line!(t, "  state (caller-owned, RAM):");
    for (name, len, e) in &p.buffers {
        line!(t, "    {name} {}[{len}]", elem(*e));
    }
    line!(t, "  kernels:");
    let mut kernels = Vec::new();
    for k in &p.kernels {
        let o = k.kernel.operands;
        line!(
            t,
            "    {}: {} (x {}[{}], y {}[{}]{})",
            k.kernel.name,
            k.summary,
            elem(o.x),
            k.kernel.input_len,
            elem(o.y),
            k.dest_len,
            if k.kernel.uses_temp {
                format!(", t {}[{}]", elem(o.t), k.temp_len)
            } else {
                String::new()
            }
        );
        let body = kernel_text(&k.kernel);
        t.push_str(&body);
        kernels.push(json!({
            "name": k.kernel.name,
            "summary": k.summary,
            "input": { "elem": elem(o.x), "len": k.kernel.input_len },
            "dest": { "elem": elem(o.y), "len": k.dest_len },
            "temp": k.kernel.uses_temp.then(|| json!({ "elem": elem(o.t), "len": k.temp_len })),
            "tables": k.kernel.tables.iter().map(|tb| tb.name().to_owned()).collect::<Vec<_>>(),
            "body": body.lines().map(str::trim_start).collect::<Vec<_>>(),
        }));
    }
    line!(t, "  step (every time step):");
    for o in &p.advance {
        line!(t, "    {}", op(o));
    }
    line!(t, "  head (once, after the last step):");
    for o in &p.head {
        line!(t, "    {}", op(o));
    }
    let body = json!({
        "name": p.name,
        "target": p.target,
        "input_features": p.input_features,
        "steps": p.steps,
        "output_size": p.output_size,
        "fixed": p.fixed.as_ref().map(|f| json!({
            "bits": f.bits, "input": f.input, "output": f.output,
        })),
        "tables": tables,
        "state": p.buffers.iter().map(|(n, l, e)| json!({
            "name": n, "len": l, "elem": elem(*e),
        })).collect::<Vec<_>>(),
        "kernels": kernels,
        "step": p.advance.iter().map(op).collect::<Vec<_>>(),
        "head": p.head.iter().map(op).collect::<Vec<_>>(),
    });
    (t, body)
}
