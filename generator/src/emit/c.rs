//! The C99 emitter: `c/NAME.h` and `c/NAME.c`.

use askama::Template;

use super::syntax::{float_lit, kernel_body, table_definition, Lang};
use super::{GeneratedFile, Op, Program, Vector};
use crate::spec::Activation;

/// The hand-written runtime, one piece per helper with the pieces it calls. Only the helpers a
/// model uses are emitted: an unused `static` function is a warning under clang's -Wall.
const RUNTIME: &[(&str, &str, &[&str])] = &[
    (
        "expf",
        include_str!("../../../templates/c/runtime/expf.c"),
        &[],
    ),
    (
        "sigmoidf",
        include_str!("../../../templates/c/runtime/sigmoidf.c"),
        &["expf"],
    ),
    (
        "tanhf",
        include_str!("../../../templates/c/runtime/tanhf.c"),
        &["expf"],
    ),
    (
        "lstm",
        include_str!("../../../templates/c/runtime/lstm.c"),
        &["sigmoidf", "tanhf"],
    ),
    (
        "gru",
        include_str!("../../../templates/c/runtime/gru.c"),
        &["sigmoidf", "tanhf"],
    ),
    (
        "fastgrnn",
        include_str!("../../../templates/c/runtime/fastgrnn.c"),
        &["sigmoidf", "tanhf"],
    ),
    (
        "relu",
        include_str!("../../../templates/c/runtime/relu.c"),
        &[],
    ),
    (
        "sigmoid",
        include_str!("../../../templates/c/runtime/sigmoid.c"),
        &["sigmoidf"],
    ),
    (
        "tanh",
        include_str!("../../../templates/c/runtime/tanh.c"),
        &["tanhf"],
    ),
    (
        "softmax",
        include_str!("../../../templates/c/runtime/softmax.c"),
        &["expf"],
    ),
];

/// The runtime helpers an operation calls.
fn helper_of(op: &Op) -> Option<&'static str> {
    match op {
        Op::Lstm { .. } => Some("lstm"),
        Op::Gru { .. } => Some("gru"),
        Op::FastGrnn { .. } => Some("fastgrnn"),
        Op::Activate { act, .. } => match act {
            Activation::None => None,
            Activation::Relu => Some("relu"),
            Activation::Sigmoid => Some("sigmoid"),
            Activation::Tanh => Some("tanh"),
            Activation::Softmax => Some("softmax"),
        },
        _ => None,
    }
}

/// The runtime text a program needs, helpers in a fixed order (callees first).
fn runtime_for(p: &Program) -> String {
    let mut needed: Vec<&str> = p
        .advance
        .iter()
        .chain(&p.head)
        .filter_map(helper_of)
        .collect();
    // Close over dependencies; RUNTIME lists callees before callers.
    for (name, _, deps) in RUNTIME.iter().rev() {
        if needed.contains(name) {
            needed.extend_from_slice(deps);
        }
    }
    let pieces: Vec<&str> = RUNTIME
        .iter()
        .filter(|(name, _, _)| needed.contains(name))
        .map(|(_, text, _)| *text)
        .collect();
    if pieces.is_empty() {
        return String::new();
    }
    format!(
        "/* ---- kpgen runtime: activations and cell updates (single precision, no libm) ---- */\n\n{}\n",
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
}

struct KernelText {
    summary: String,
    signature: String,
    body: String,
}

#[derive(Template)]
#[template(path = "c/model.c", escape = "none")]
struct Source<'a> {
    name: &'a str,
    upper: String,
    target: &'a str,
    runtime: String,
    tables: Vec<String>,
    kernels: Vec<KernelText>,
    advance: Vec<String>,
    head: Vec<String>,
    reset: Vec<String>,
    step_indent: String,
    infer_indent: String,
}

fn vector(v: &Vector) -> String {
    match v {
        Vector::Input => "x".to_owned(),
        Vector::Output => "y".to_owned(),
        Vector::State(b) => format!("s->{b}"),
    }
}

fn op_lines(op: &Op) -> Vec<String> {
    match op {
        Op::Comment(c) => vec![format!("/* {c} */")],
        Op::Load { dst, table, len } => vec![format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}[k]; }}",
            vector(dst),
            table.to_uppercase()
        )],
        Op::Zero { dst, len } => vec![format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}; }}",
            vector(dst),
            float_lit(Lang::C, 0.0)
        )],
        Op::MatVec {
            kernel,
            src,
            dst,
            uses_temp,
        } => {
            let temp = if *uses_temp { ", s->kp_tmp" } else { "" };
            vec![format!("{kernel}({}, {}{temp});", vector(src), vector(dst))]
        }
        Op::Lstm {
            gates,
            cell,
            hidden,
            units,
        } => vec![format!(
            "kp_lstm_update(s->{gates}, s->{cell}, s->{hidden}, {units});"
        )],
        Op::Gru {
            gates,
            hidden,
            units,
        } => vec![format!("kp_gru_update(s->{gates}, s->{hidden}, {units});")],
        Op::FastGrnn {
            pre,
            b_z,
            b_h,
            zeta,
            nu,
            hidden,
            units,
        } => vec![format!(
            "kp_fastgrnn_update(s->{pre}, {}, {}, {}, {}, s->{hidden}, {units});",
            b_z.to_uppercase(),
            b_h.to_uppercase(),
            float_lit(Lang::C, *zeta),
            float_lit(Lang::C, *nu)
        )],
        Op::Activate { act, dst, len } => {
            let f = match act {
                Activation::None => return Vec::new(),
                Activation::Relu => "kp_relu",
                Activation::Sigmoid => "kp_sigmoid",
                Activation::Tanh => "kp_tanh",
                Activation::Softmax => "kp_softmax",
            };
            vec![format!("{f}({}, {len});", vector(dst))]
        }
        Op::Copy { dst, src, len } => vec![format!(
            "for (int k = 0; k < {len}; ++k) {{ {}[k] = {}[k]; }}",
            vector(dst),
            vector(src)
        )],
    }
}

fn body(ops: &[Op], reads_state: bool, reads_input: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if !reads_state {
        lines.push("(void)s;".to_owned());
    }
    if !reads_input {
        lines.push("(void)x;".to_owned());
    }
    lines.extend(ops.iter().flat_map(op_lines));
    lines
}

pub fn emit(p: &Program) -> Result<Vec<GeneratedFile>, askama::Error> {
    let upper = p.name.to_uppercase();
    let step_indent = " ".repeat(format!("void {}_step(", p.name).len());
    let infer_indent = " ".repeat(format!("void {}_infer(", p.name).len());
    let mut fields: Vec<String> = p
        .buffers
        .iter()
        .map(|(n, len)| format!("float {n}[{len}];"))
        .collect();
    if fields.is_empty() {
        // C99 forbids empty structs; a stateless model keeps one byte.
        fields.push("unsigned char unused;".to_owned());
    }
    let state_bytes = p.buffers.iter().map(|(_, l)| 4 * l).sum::<usize>().max(1);
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
    };
    let kernels = p
        .kernels
        .iter()
        .map(|k| KernelText {
            summary: k.summary.clone(),
            signature: format!(
                "{}(const float *restrict x, float *restrict y{})",
                k.kernel.name,
                if k.kernel.uses_temp {
                    ", float *restrict t"
                } else {
                    ""
                }
            ),
            body: kernel_body(Lang::C, &k.kernel),
        })
        .collect();
    let reset = if p.buffers.is_empty() {
        vec!["s->unused = 0;".to_owned()]
    } else {
        p.buffers
            .iter()
            .map(|(n, len)| {
                format!(
                    "for (int k = 0; k < {len}; ++k) {{ s->{n}[k] = {}; }}",
                    float_lit(Lang::C, 0.0)
                )
            })
            .collect()
    };
    let source = Source {
        name: &p.name,
        upper,
        target: &p.target,
        runtime: runtime_for(p),
        tables: p
            .tables
            .iter()
            .map(|t| table_definition(Lang::C, t))
            .collect(),
        kernels,
        advance: body(
            &p.advance,
            Op::any_state(&p.advance),
            Op::any_input(&p.advance),
        ),
        head: body(&p.head, Op::any_state(&p.head), Op::any_input(&p.head)),
        reset,
        step_indent,
        infer_indent,
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
    ])
}
