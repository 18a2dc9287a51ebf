//! The spec, model, plan and quant views: each returns (text, JSON body).

use std::fmt::Write as _;

use serde_json::{json, Value};
use serde_saphyr::Spanned;

use crate::lower::flash::FlashEstimate;
use crate::lower::kernel::{Elem, Mve};
use crate::model::{value_range, Cell, Model, Weight};
use crate::plan::{LayerConstants, OverlayEncoding, Plan, Source, Stage};
use crate::quant::{LayerQuant, QFormat, QuantPlan, StageQuant};
use crate::spec::{Activation, LayerSpec, ScalarSpec, SparseSpec, SpecDocument, WeightSpec};

// `writeln!` into a String cannot fail.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

// ---- spec ---------------------------------------------------------------------------------------

fn at<T>(s: &Spanned<T>) -> u64 {
    s.referenced.line()
}

/// A sparse matrix as written: a tensor reference, or its arrays.
fn sparse_spec(s: &SparseSpec) -> (String, Value) {
    match s {
        SparseSpec::Tensor(p) => (p.clone(), json!(p)),
        SparseSpec::Parts(p) => {
            let shape: Vec<i64> = p.shape.value.iter().map(|d| d.value).collect();
            let mut text = vec![format!("shape {shape:?}")];
            let mut obj = serde_json::Map::new();
            obj.insert("shape".into(), json!(shape));
            for (name, v) in [
                ("values", Some(&p.values)),
                ("rows", p.rows.as_ref()),
                ("cols", p.cols.as_ref()),
                ("indptr", p.indptr.as_ref()),
                ("indices", p.indices.as_ref()),
            ] {
                if let Some(v) = v {
                    text.push(format!("{name} {}", v.value));
                    obj.insert(name.into(), json!(v.value));
                }
            }
            (format!("{{{}}}", text.join(", ")), Value::Object(obj))
        }
    }
}

fn weight_spec(w: &WeightSpec) -> (String, Value) {
    let names = |v: &Spanned<Vec<Spanned<String>>>| -> Vec<String> {
        v.value.iter().map(|s| s.value.clone()).collect()
    };
    match w {
        WeightSpec::Tensor(p) => (format!("dense {p}"), json!({ "tensor": p })),
        WeightSpec::Map(m) => {
            let mut parts = Vec::new();
            let mut obj = serde_json::Map::new();
            if let Some(k) = &m.kron {
                parts.push(format!("kron [{}]", names(k).join(", ")));
                obj.insert("kron".into(), json!(names(k)));
            }
            if let Some(u) = &m.dense_rows {
                parts.push(format!("dense_rows {}", u.value));
                obj.insert("dense_rows".into(), json!(u.value));
            }
            if let Some(d) = &m.dope {
                let (text, value) = sparse_spec(&d.value);
                parts.push(format!("dope {text}"));
                obj.insert("dope".into(), value);
            }
            if let Some(l) = &m.lowrank {
                parts.push(format!("lowrank [{}]", names(l).join(", ")));
                obj.insert("lowrank".into(), json!(names(l)));
            }
            if let Some(s) = &m.sparse {
                let (text, value) = sparse_spec(&s.value);
                parts.push(format!("sparse {text}"));
                obj.insert("sparse".into(), value);
            }
            if parts.is_empty() {
                parts.push("(an empty map)".into());
            }
            (parts.join(" + "), Value::Object(obj))
        }
    }
}

fn layer_fields(l: &LayerSpec) -> Vec<(&'static str, u64, String, Value)> {
    let mut out = Vec::new();
    let weights = [
        ("w_ih", &l.w_ih),
        ("w_hh", &l.w_hh),
        ("u", &l.u),
        ("w", &l.w),
    ];
    for (name, w) in weights {
        if let Some(w) = w {
            let (text, value) = weight_spec(&w.value);
            out.push((name, at(w), text, value));
        }
    }
    let tensors = [
        ("b_ih", &l.b_ih),
        ("b_hh", &l.b_hh),
        ("b_z", &l.b_z),
        ("b_h", &l.b_h),
        ("b", &l.b),
    ];
    for (name, t) in tensors {
        if let Some(t) = t {
            out.push((name, at(t), t.value.clone(), json!({ "tensor": t.value })));
        }
    }
    for (name, s) in [("zeta", &l.zeta), ("nu", &l.nu)] {
        if let Some(s) = s {
            let (text, value) = match &s.value {
                ScalarSpec::Value(v) => (format!("{v}"), json!({ "value": v })),
                ScalarSpec::Tensor(p) => (p.clone(), json!({ "tensor": p })),
            };
            out.push((name, at(s), text, value));
        }
    }
    if let Some(a) = &l.activation {
        let v = json!(a.value);
        let text = v.as_str().unwrap_or_default().to_owned();
        out.push(("activation", at(a), text, json!({ "value": v })));
    }
    out
}

pub fn spec(doc: &SpecDocument) -> (String, Value) {
    let s = &doc.spec;
    let mut t = String::new();
    line!(
        t,
        "spec {} (as written, not yet validated)",
        doc.path.display()
    );
    line!(t, "  line {:>3}  name: {}", at(&s.name), s.name.value);
    let steps = s.input.value.steps.as_ref();
    line!(
        t,
        "  line {:>3}  input: {} features, {}",
        at(&s.input),
        s.input.value.features.value,
        steps.map_or("steps omitted (1)".to_owned(), |n| format!(
            "{} steps",
            n.value
        ))
    );
    match &s.precision {
        Some(p) => line!(t, "  line {:>3}  precision: {}", at(p), p.value.as_str()),
        None => line!(t, "            precision: omitted (f32)"),
    }
    match &s.activations {
        Some(a) => line!(t, "  line {:>3}  activations: {}", at(a), a.value.as_str()),
        None => line!(t, "            activations: omitted (table)"),
    }
    match &s.optimize {
        Some(o) => line!(t, "  line {:>3}  optimize: {}", at(o), o.value.as_str()),
        None => line!(t, "            optimize: omitted (speed)"),
    }
    match &s.calibration {
        Some(c) => line!(t, "  line {:>3}  calibration: {}", at(c), c.value),
        None => line!(t, "            calibration: none"),
    }
    let mut layers = Vec::new();
    for (i, l) in s.layers.value.iter().enumerate() {
        let v = &l.value;
        line!(
            t,
            "  line {:>3}  layer {i}: {}, {} units",
            at(l),
            v.kind.value.as_str(),
            v.units.value
        );
        let mut fields = serde_json::Map::new();
        for (name, line_no, text, mut value) in layer_fields(v) {
            line!(t, "  line {line_no:>3}    {name}: {text}");
            if let Value::Object(o) = &mut value {
                o.insert("line".into(), json!(line_no));
            }
            fields.insert(name.into(), value);
        }
        layers.push(json!({
            "line": at(l),
            "kind": v.kind.value,
            "units": v.units.value,
            "fields": fields,
        }));
    }
    let body = json!({
        "path": doc.path.display().to_string(),
        "name": { "value": s.name.value, "line": at(&s.name) },
        "input": {
            "features": s.input.value.features.value,
            "steps": steps.map(|n| n.value),
            "line": at(&s.input),
        },
        "precision": s.precision.as_ref().map(|p| json!({ "value": p.value, "line": at(p) })),
        "activations": s.activations.as_ref().map(|a| json!({ "value": a.value, "line": at(a) })),
        "optimize": s.optimize.as_ref().map(|o| json!({ "value": o.value, "line": at(o) })),
        "calibration": s.calibration.as_ref().map(|c| json!({ "value": c.value, "line": at(c) })),
        "layers": layers,
    });
    (t, body)
}

// ---- model --------------------------------------------------------------------------------------

fn weight(w: &Weight) -> (String, Value) {
    let stored = w.stored_params();
    let dense = w.dense_params();
    let form = w.describe();
    let factors = w.stored_parts();
    let ranges: Vec<String> = factors
        .iter()
        .map(|p| format!("{} in [{:.4}, {:.4}]", p.name, p.min, p.max))
        .collect();
    let text = format!(
        "{} {}x{}: {form}; {stored} parameters stored for {dense} dense; {}",
        w.field,
        w.rows(),
        w.cols(),
        ranges.join(", ")
    );
    let mut json = json!({
        "field": w.field,
        "form": w.kind_name(),
        "rows": w.rows(),
        "cols": w.cols(),
        "stored_params": stored,
        "dense_params": dense,
        "factors": factors.iter().map(|p| json!({
            "name": p.name, "shape": [p.rows, p.cols], "min": p.min, "max": p.max,
        })).collect::<Vec<_>>(),
    });
    if let Some(s) = w.sparse_part() {
        json["nnz"] = json!(s.nnz());
        json["density"] = json!(s.density());
    }
    (text, json)
}

fn vectors(cell: &Cell) -> Vec<(&'static str, &[f64])> {
    match cell {
        Cell::Lstm(g) | Cell::Gru(g) => vec![("b_ih", &g.b_ih), ("b_hh", &g.b_hh)],
        Cell::FastGrnn(f) => vec![("b_z", &f.b_z), ("b_h", &f.b_h)],
        Cell::Dense(d) => vec![("b", &d.b)],
    }
}

pub fn model(m: &Model) -> (String, Value) {
    let mut t = String::new();
    line!(
        t,
        "model {}: {} input features, {} steps, {} outputs, precision {}{}, optimized for {}",
        m.name,
        m.input_features,
        m.steps,
        m.output_size(),
        m.precision.as_str(),
        if m.precision.is_fixed() {
            String::new()
        } else {
            format!(", {} activations", m.activations.as_str())
        },
        m.optimize.as_str()
    );
    match &m.calibration {
        Some(c) => line!(t, "  calibration: {}", c.display()),
        None => line!(
            t,
            "  calibration: none (fixed point uses the default random set)"
        ),
    }
    let mut layers = Vec::new();
    for (i, l) in m.layers.iter().enumerate() {
        let kind = l.cell.kind().as_str();
        let extra = match &l.cell {
            Cell::Dense(d) => format!(
                ", activation {}",
                json!(d.activation).as_str().unwrap_or("")
            ),
            Cell::FastGrnn(f) => format!(", zeta {} nu {} (raw)", f.zeta, f.nu),
            _ => String::new(),
        };
        line!(t, "  layer {i}: {kind} {} -> {}{extra}", l.inputs, l.units);
        let mut weights = Vec::new();
        for w in l.cell.weights() {
            let (text, json) = weight(w);
            line!(t, "    {text}");
            weights.push(json);
        }
        let mut biases = Vec::new();
        for (name, v) in vectors(&l.cell) {
            let (lo, hi) = value_range(v.iter().copied());
            line!(t, "    {name}: {} values in [{lo:.4}, {hi:.4}]", v.len());
            biases.push(json!({ "name": name, "len": v.len(), "min": lo, "max": hi }));
        }
        let mut layer = json!({
            "index": i,
            "kind": l.cell.kind(),
            "inputs": l.inputs,
            "units": l.units,
            "weights": weights,
            "biases": biases,
        });
        match &l.cell {
            Cell::Dense(d) => layer["activation"] = json!(d.activation),
            Cell::FastGrnn(f) => {
                layer["zeta"] = json!(f.zeta);
                layer["nu"] = json!(f.nu);
            }
            _ => {}
        }
        layers.push(layer);
    }
    line!(t, "  read from:");
    for s in &m.sources {
        line!(t, "    {}", s.display());
    }
    let body = json!({
        "name": m.name,
        "input_features": m.input_features,
        "steps": m.steps,
        "output_size": m.output_size(),
        "precision": m.precision,
        "activations": m.activations,
        "optimize": m.optimize,
        "calibration": m.calibration.as_ref().map(|c| c.display().to_string()),
        "layers": layers,
        "sources": m.sources.iter().map(|s| s.display().to_string()).collect::<Vec<_>>(),
    });
    (t, body)
}

// ---- plan ---------------------------------------------------------------------------------------

fn operand(op: crate::plan::Operand) -> &'static str {
    match op {
        crate::plan::Operand::Input => "x",
        crate::plan::Operand::Temp => "t",
        crate::plan::Operand::Dest => "y",
    }
}

/// `12 + ` before an index, nothing for 0.
fn offset(o: usize) -> String {
    if o == 0 {
        String::new()
    } else {
        format!("{o} + ")
    }
}

/// The Helium form a stage's lowering takes, if any: `Some(true)` across rows (float),
/// `Some(false)` dot products (integer).
fn helium_form(s: &Stage, fixed: bool) -> Option<bool> {
    let elem = if fixed { Elem::I8 } else { Elem::F32 };
    s.mve
        .then(|| Mve::for_stage(s.p, s.in_j, elem, elem, false))
        .flatten()
        .map(|v| v.by_rows)
}

fn stage_line(k: usize, s: &Stage, fixed: bool) -> String {
    let how = if s.unrolled {
        "unrolled (weights as literals, zeros dropped)".to_owned()
    } else {
        format!(
            "stored, register tile {}x{}{}",
            s.tile[0],
            s.tile[1],
            // The Helium form the lowering takes (integer weights and inputs stand for either
            // width: only float or not decides), else dual MACs where the input is contiguous
            // along the reduction.
            match helium_form(s, fixed) {
                Some(true) => ", Helium vectors across 4 rows",
                Some(false) => ", Helium vector dot products",
                None if s.simd && s.in_j == 1 => ", dual 16-bit MACs",
                None => "",
            }
        )
    };
    // The second loop, shown only where a stage has one.
    let (outer2, out_r2, in_r2) = if s.outer2 > 1 {
        (
            format!(", outer2 {}", s.outer2),
            format!(" + r2*{}", s.out_r2),
            format!(" + r2*{}", s.in_r2),
        )
    } else {
        Default::default()
    };
    format!(
        "stage {k}: {} {}x{}, outer {}{outer2}: {}[{}i*{} + r*{}{out_r2}] {} Σ_j F[i][j]·{}[{}j*{} + r*{}{in_r2}]; {}; {} MACs",
        s.factor,
        s.p,
        s.q,
        s.outer,
        operand(s.output),
        offset(s.out_offset),
        s.out_i,
        s.out_r,
        if s.accumulate { "+=" } else { "=" },
        operand(s.input),
        offset(s.in_offset),
        s.in_j,
        s.in_r,
        how,
        s.macs()
    )
}

fn source(s: &Source) -> String {
    match s {
        Source::ModelInput => "the step input x".to_owned(),
        Source::Buffer(b) => format!("state.{b}"),
    }
}

fn constants_line(c: &LayerConstants) -> String {
    match c {
        LayerConstants::Lstm {
            bias,
            cell_state,
            gates,
        } => format!(
            "bias {} (b_ih + b_hh folded), gates state.{gates}, cell state state.{cell_state}",
            bias.len()
        ),
        LayerConstants::Gru {
            bias_ih,
            bias_hh,
            gates,
        } => format!(
            "b_ih {}, b_hh {} (apart: b_hn sits inside r ⊙ (W_hn h + b_hn)), gates state.{gates}",
            bias_ih.len(),
            bias_hh.len()
        ),
        LayerConstants::FastGrnn {
            b_z,
            b_h,
            zeta,
            nu,
            gates,
        } => format!(
            "b_z {}, b_h {}, sigmoid(zeta) {zeta}, sigmoid(nu) {nu} (host-evaluated), pre-activation state.{gates}",
            b_z.len(),
            b_h.len()
        ),
        LayerConstants::Dense {
            bias,
            activation,
            acc,
        } => format!(
            "bias {}, activation {}{}",
            bias.len(),
            json!(activation).as_str().unwrap_or(""),
            acc.as_ref()
                .map_or(String::new(), |a| format!(", int32 accumulator state.{a}"))
        ),
    }
}

pub fn plan(p: &Plan, flash: &FlashEstimate) -> (String, Value) {
    let mut t = String::new();
    line!(
        t,
        "plan {} for {} ({}): {} inputs, {} steps, {} outputs",
        p.name,
        p.target,
        p.precision.as_str(),
        p.input_features,
        p.steps,
        p.output_size
    );
    let tile = p.rules.tile(p.precision.is_fixed());
    let unrolled = match p.rules.unroll_max_factor_elems {
        0 => "no matrix unrolled".to_owned(),
        n => format!("matrices of at most {n} elements unrolled"),
    };
    let straight = match p.rules.straight_line_max_nnz {
        0 => "every overlay in CSR".to_owned(),
        n => format!("overlays of at most {n} non-zeros straight-line"),
    };
    line!(
        t,
        "  optimized for {}: {unrolled}, register tiles {}x{}, {straight}",
        p.optimize.as_str(),
        tile[0],
        tile[1],
    );
    for l in &p.layers {
        line!(
            t,
            "  layer {}: {} {} -> {}, reads {}, writes {}",
            l.index,
            l.kind.as_str(),
            l.inputs,
            l.units,
            source(&l.input),
            l.output
                .as_ref()
                .map_or("the caller's y".to_owned(), |o| format!("state.{o}"))
        );
        for m in &l.matrices {
            line!(
                t,
                "    {} ({}, {}) {}x{} -> {}[{}..{}]: {}",
                m.id,
                m.field,
                m.form,
                m.rows,
                m.cols,
                m.dest,
                m.dest_offset,
                m.dest_offset + m.rows,
                m.product.describe()
            );
            for (k, s) in m.product.stages().iter().enumerate() {
                line!(t, "      {}", stage_line(k + 1, s, p.precision.is_fixed()));
            }
            if let Some(o) = &m.overlay {
                let enc = match &o.encoding {
                    OverlayEncoding::StraightLine => {
                        "straight-line (constant indices, no index storage)".to_owned()
                    }
                    OverlayEncoding::Csr { row_ptr, col_index } => format!(
                        "CSR, row pointers {}, column indices {}",
                        json!(row_ptr).as_str().unwrap_or(""),
                        json!(col_index).as_str().unwrap_or("")
                    ),
                };
                line!(
                    t,
                    "      overlay: {} non-zeros (density {:.4}), {enc}, {} index bytes",
                    o.nnz,
                    o.density,
                    o.index_bytes
                );
            }
            line!(
                t,
                "      {} MACs for {} dense, {} parameters stored for {}",
                m.macs,
                m.dense_macs,
                m.stored_params,
                m.dense_params
            );
        }
        line!(t, "    constants: {}", constants_line(&l.constants));
    }
    line!(t, "  state buffers ({} bytes):", p.state_bytes());
    for b in &p.buffers {
        line!(
            t,
            "    {} [{}] {} B, {}{}",
            b.name,
            b.len,
            b.bytes(p.precision),
            json!(b.role).as_str().unwrap_or(""),
            if b.recurrent {
                ", recurrent (zeroed by reset)"
            } else {
                ", scratch"
            }
        );
    }
    flash_lines(&mut t, flash);
    let mut json = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut json {
        o.insert(
            "flash".to_owned(),
            serde_json::to_value(flash).unwrap_or(Value::Null),
        );
    }
    (t, json)
}

/// The flash estimate: its total, the constant tables and the code per construct.
fn flash_lines(t: &mut String, f: &FlashEstimate) {
    line!(
        t,
        "  flash estimate: {} B = data {} B + code {} B ({})",
        f.total_bytes,
        f.data_bytes,
        f.code_bytes,
        f.what
    );
    let data: Vec<String> = f
        .data
        .iter()
        .map(|d| format!("{} {} B", d.name, d.bytes))
        .collect();
    line!(t, "    data: {}", data.join(", "));
    let code: Vec<String> = f
        .code
        .iter()
        .map(|c| format!("{} {} x {} B", c.construct.name(), c.count, c.bytes_each))
        .collect();
    line!(t, "    code: {}", code.join(", "));
}

// ---- quant --------------------------------------------------------------------------------------

fn format(f: &QFormat) -> String {
    if f.zero_point == 0 {
        format!("int{} scale {:e}", f.bits, f.scale)
    } else {
        format!(
            "int{} scale {:e} zero point {}",
            f.bits, f.scale, f.zero_point
        )
    }
}

fn stage_quant_line(name: &str, s: &StageQuant) -> String {
    let acc_max: i64 = if s.wide { i64::MAX } else { i32::MAX as i64 };
    let requant = match s.shift_only {
        Some(k) => format!("rounding shift by {k}"),
        None => format!(
            "requantize {}·2^({} − 31)",
            s.requant.multiplier, s.requant.shift
        ),
    };
    format!(
        "{name}: int{} weights scale {:e}, input scale {:e} -> output scale {:e}; {requant}; {} accumulator, bound {} of {acc_max}; {}",
        s.weight_bits,
        s.weight_scale,
        s.input_scale,
        s.output_scale,
        if s.wide { "int64" } else { "int32" },
        s.bound,
        if s.narrow {
            "saturated to an int16 temp"
        } else {
            "added to an int32 destination"
        }
    )
}

pub fn quant(p: &Plan, q: Option<&QuantPlan>) -> (String, Value) {
    let Some(q) = q else {
        let text = format!(
            "quant: none, {} is an f32 build (int8 / int16 builds are quantized: --precision)\n",
            p.name
        );
        return (text, json!({ "quantization": null }));
    };
    let mut t = String::new();
    line!(
        t,
        "quant {} ({}): {}-bit activations",
        p.name,
        q.precision.as_str(),
        q.act_bits
    );
    line!(t, "  calibration: {}", q.calibration);
    line!(t, "  input {}", format(&q.input));
    line!(t, "  output {}", format(&q.output));
    for (m, mq) in p.matrices().zip(&q.matrices) {
        line!(t, "  {}:", mq.id);
        for (s, sq) in m.product.stages().iter().zip(&mq.stages) {
            line!(t, "    {}", stage_quant_line(&s.factor, sq));
        }
        if let Some(ts) = mq.temp_scale {
            line!(t, "    temp: int16 scale {ts:e}");
        }
        if let Some(o) = &mq.overlay {
            line!(t, "    {}", stage_quant_line("overlay", o));
        }
    }
    for (i, l) in q.layers.iter().enumerate() {
        let text = match l {
            LayerQuant::Lstm {
                cell_frac,
                hidden_frac,
                ..
            } => format!(
                "lstm: gates Q.12 in int32, cell state int16 Q.{cell_frac}, hidden Q.{hidden_frac}"
            ),
            LayerQuant::Gru { hidden_frac, .. } => {
                format!("gru: gates Q.12 in int32, hidden Q.{hidden_frac}")
            }
            LayerQuant::FastGrnn {
                zeta,
                nu,
                hidden_frac,
                ..
            } => format!(
                "fastgrnn: sigmoid(zeta) {zeta} and sigmoid(nu) {nu} in Q15, hidden Q.{hidden_frac}"
            ),
            LayerQuant::Dense {
                activation,
                acc_shift,
                output,
                ..
            } => {
                let acc = match activation {
                    Activation::None | Activation::Relu => {
                        format!("int32 accumulator {acc_shift} bits below the output quantum")
                    }
                    _ => format!("int32 accumulator in Q.{acc_shift} (the gate format)"),
                };
                format!(
                    "dense, activation {}: {acc}, output {}",
                    json!(activation).as_str().unwrap_or(""),
                    format(output)
                )
            }
        };
        line!(t, "  layer {i} {text}");
    }
    (t, serde_json::to_value(q).unwrap_or(Value::Null))
}
