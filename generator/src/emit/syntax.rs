//! Printing lowered kernels as C or Rust. The two languages differ only in spelling here:
//! every loop, index and literal is printed from the same statement tree in the same order.

use crate::lower::kernel::{
    blocks, Access, Affine, Array, Coef, Elem, Fixed, Index, Kernel, Mve, Num, Simd, Stmt, Table,
    Tile, Values,
};

use super::ops::Calls;
use crate::spec::Lang;

/// An f32 literal that round-trips exactly (shortest representation).
pub fn float_lit(lang: Lang, v: f32) -> String {
    let body = format!("{v:?}");
    match lang {
        Lang::C => format!("{body}f"),
        Lang::Rust => format!("{body}_f32"),
    }
}

fn affine(a: &Affine) -> String {
    let mut parts: Vec<String> = a
        .terms
        .iter()
        .map(|&(v, c)| {
            if c == 1 {
                v.to_owned()
            } else {
                format!("{v} * {c}")
            }
        })
        .collect();
    if a.constant != 0 || parts.is_empty() {
        parts.push(a.constant.to_string());
    }
    parts.join(" + ")
}

fn array_name(a: &Array) -> String {
    match a {
        Array::Input => "x".to_owned(),
        Array::Dest => "y".to_owned(),
        Array::Temp => "t".to_owned(),
        Array::Const(name) => name.to_uppercase(),
    }
}

fn access(a: &Access) -> String {
    match &a.index {
        Index::Flat(i) => format!("{}[{}]", array_name(&a.array), affine(i)),
        Index::Grid(r, c) => format!("{}[{}][{}]", array_name(&a.array), affine(r), affine(c)),
    }
}

/// The accumulator type of a statement.
fn acc_elem(fixed: Option<Fixed>) -> Elem {
    match fixed {
        None => Elem::F32,
        Some(f) if f.wide => Elem::I64,
        Some(_) => Elem::I32,
    }
}

/// `a * b` in the accumulator's type: integer operands are widened first (C promotes int8 and
/// int16 to int by itself; int64 and Rust need the cast).
fn product(lang: Lang, acc: Elem, a: &str, b: &str) -> String {
    match (lang, acc) {
        (_, Elem::F32) => format!("{a} * {b}"),
        (Lang::C, Elem::I64) => format!("(int64_t){a} * {b}"),
        (Lang::C, _) => format!("{a} * {b}"),
        (Lang::Rust, e) => format!("{a} as {t} * {b} as {t}", t = e.rust_name()),
    }
}

fn sum(lang: Lang, terms: &[(Coef, Access)], acc: Elem, calls: &mut Calls) -> String {
    if lang == Lang::C && acc == Elem::F32 && terms.len() > 1 {
        calls.insert("fmaf");
        return fused_sum(terms);
    }
    if terms.is_empty() {
        return match acc {
            Elem::F32 => float_lit(lang, 0.0),
            _ => "0".to_owned(),
        };
    }
    let mut out = String::new();
    for (k, (coef, input)) in terms.iter().enumerate() {
        let (negative, c) = match coef {
            Coef::Literal(Num::F32(v)) if *v < 0.0 => (true, float_lit(lang, -v)),
            Coef::Literal(Num::F32(v)) => (false, float_lit(lang, *v)),
            Coef::Literal(Num::Int(v)) => (*v < 0, v.unsigned_abs().to_string()),
            Coef::Load(a) => (false, access(a)),
        };
        match (k, negative) {
            (0, true) => out.push('-'),
            (0, false) => {}
            (_, true) => out.push_str(" - "),
            (_, false) => out.push_str(" + "),
        }
        let term = match (lang, acc, coef) {
            // Integer literals need no cast of their own: the input's cast types the product.
            (Lang::Rust, Elem::I32 | Elem::I64, Coef::Literal(_)) => {
                format!("{c} * {} as {}", access(input), acc.rust_name())
            }
            _ => product(lang, acc, &c, &access(input)),
        };
        out.push_str(&term);
    }
    out
}

/// A float sum as a chain of fused multiply-adds in C, in the same term order:
/// `kp_fmaf(c2, x2, kp_fmaf(c1, x1, c0 * x0))`.
fn fused_sum(terms: &[(Coef, Access)]) -> String {
    let coef = |c: &Coef| match c {
        Coef::Literal(Num::F32(v)) => float_lit(Lang::C, *v),
        Coef::Literal(Num::Int(v)) => v.to_string(),
        Coef::Load(a) => access(a),
    };
    let (c0, x0) = &terms[0];
    let mut out = format!("{} * {}", coef(c0), access(x0));
    for (c, x) in &terms[1..] {
        out = format!("kp_fmaf({}, {}, {out})", coef(c), access(x));
    }
    out
}

/// The requantized value of an integer accumulator expression.
fn requantized(lang: Lang, f: Fixed, expr: &str, calls: &mut Calls) -> String {
    let prefix = match lang {
        Lang::C => "kp_",
        Lang::Rust => "cells::",
    };
    if let (true, Some(k)) = (f.narrow, f.shift_only) {
        let name = match (f.wide, f.saturate_in_i32) {
            (true, true) => "shift_sat16_s64_32",
            (true, false) => "shift_sat16_s64",
            _ => "shift_sat16",
        };
        calls.insert(name);
        return format!("{prefix}{name}({expr}, {k})");
    }
    calls.insert(if f.wide { "requant_s64" } else { "requant" });
    let r = if f.wide {
        format!(
            "{prefix}requant_s64({expr}, {}, {})",
            f.requant.reduced(),
            f.requant.shift
        )
    } else {
        format!(
            "{prefix}requant({expr}, {}, {})",
            f.requant.multiplier, f.requant.shift
        )
    };
    if f.narrow {
        calls.insert("sat16");
        format!("{prefix}sat16({r})")
    } else {
        r
    }
}

/// `dst (=|+=) value` for a float sum or a requantized integer one.
fn store(
    lang: Lang,
    dst: &str,
    accumulate: bool,
    fixed: Option<Fixed>,
    value: &str,
    calls: &mut Calls,
) -> String {
    match fixed {
        None => {
            let op = if accumulate { "+=" } else { "=" };
            format!("{dst} {op} {value};")
        }
        Some(f) => {
            let op = if f.narrow { "=" } else { "+=" };
            format!("{dst} {op} {};", requantized(lang, f, value, calls))
        }
    }
}

/// Where a tile block sits: `rows` factor rows from `row0` (plus `ib · rows` when blocks of
/// this size run in a loop), `cols` columns from `col0` (plus `rb · cols`).
#[derive(Debug, Clone, Copy)]
struct Block {
    rows: usize,
    row0: usize,
    ib: bool,
    cols: usize,
    col0: usize,
    rb: bool,
}

impl Block {
    /// The `ib · coef` term of an index, when the row blocks loop.
    fn ib(&self, coef: usize) -> Option<(&'static str, usize)> {
        self.ib.then_some(("ib", coef))
    }

    /// The `rb · coef` term of an index, when the column blocks loop.
    fn rb(&self, coef: usize) -> Option<(&'static str, usize)> {
        self.rb.then_some(("rb", coef))
    }
}

/// The present terms of an index, in order.
fn terms(list: &[Option<(&'static str, usize)>]) -> Vec<(&'static str, usize)> {
    list.iter().flatten().copied().collect()
}

struct Printer {
    lang: Lang,
    out: String,
    /// The runtime functions the printed code calls.
    calls: Calls,
}

impl Printer {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn stmts(&mut self, depth: usize, body: &[Stmt]) {
        for s in body {
            self.stmt(depth, s);
        }
    }

    fn loop_open(&mut self, depth: usize, var: &str, count: usize) {
        let head = match self.lang {
            Lang::C => format!("for (int {var} = 0; {var} < {count}; ++{var}) {{"),
            Lang::Rust => format!("for {var} in 0..{count} {{"),
        };
        self.line(depth, &head);
    }

    /// Declares the accumulator, starting at 0 or at `init` (an integer expression).
    fn acc_open(&mut self, depth: usize, acc: Elem, init: Option<String>) {
        let start = init.unwrap_or_else(|| "0".to_owned());
        let decl = match (self.lang, acc) {
            (Lang::C, Elem::F32) => format!("float acc = {};", float_lit(Lang::C, 0.0)),
            (Lang::Rust, Elem::F32) => format!("let mut acc = {};", float_lit(Lang::Rust, 0.0)),
            (Lang::C, e) => format!("{} acc = {start};", e.c_name()),
            (Lang::Rust, e) => format!("let mut acc: {} = {start};", e.rust_name()),
        };
        self.line(depth, &decl);
    }

    /// A [`Tile`]: full blocks of rows and columns in loops (`ib`, `rb`), the remainders as
    /// blocks of their own, each block a pass over j with its accumulators in registers; all
    /// inside the loop over `r2` when the tile has one.
    fn tile(&mut self, depth: usize, t: &Tile) {
        if let Some(o) = t.outer2 {
            self.loop_open(depth, "r2", o.count);
            self.tile_blocks(depth + 1, t);
            self.line(depth, "}");
        } else {
            self.tile_blocks(depth, t);
        }
    }

    fn tile_blocks(&mut self, depth: usize, t: &Tile) {
        for (nb, rows, row0) in blocks(t.p, t.ti) {
            let ib = nb > 1;
            if ib {
                self.loop_open(depth, "ib", nb);
            }
            let d1 = depth + usize::from(ib);
            for (nr, cols, col0) in blocks(t.outer, t.tr) {
                let rb = nr > 1;
                if rb {
                    self.loop_open(d1, "rb", nr);
                }
                let d2 = d1 + usize::from(rb);
                self.tile_block(
                    d2,
                    t,
                    Block {
                        rows,
                        row0,
                        ib,
                        cols,
                        col0,
                        rb,
                    },
                );
                if rb {
                    self.line(d1, "}");
                }
            }
            if ib {
                self.line(depth, "}");
            }
        }
    }

    /// One block of `rows x cols` outputs starting at (row0 [+ ib*ti], col0 [+ rb*tr]).
    fn tile_block(&mut self, depth: usize, t: &Tile, blk: Block) {
        if let Some(v) = t.mve.filter(|v| v.by_rows) {
            if self.lang == Lang::C {
                self.by_rows_block(depth, t, v, blk);
                return;
            }
        }
        let Block {
            rows,
            row0,
            cols,
            col0,
            ..
        } = blk;
        let c = self.lang == Lang::C;
        let acc = acc_elem(t.fixed);
        self.line(depth, "{");
        let d = depth + 1;
        let zero = if acc == Elem::F32 {
            float_lit(self.lang, 0.0)
        } else {
            "0".to_owned()
        };
        for a in 0..rows {
            let start = match &t.init {
                Some(table) => access(&Access::flat(
                    Array::Const(table.clone()),
                    Affine::new(row0 + a, &terms(&[blk.ib(rows)])),
                )),
                None => zero.clone(),
            };
            for b in 0..cols {
                self.line(
                    d,
                    &if c {
                        format!("{} acc{a}_{b} = {start};", acc.c_name())
                    } else {
                        format!("let mut acc{a}_{b}: {} = {start};", acc.rust_name())
                    },
                );
            }
        }
        if let Some(v) = t.mve.filter(|v| !v.by_rows) {
            self.mve_pass(d, t, v, blk, acc);
        } else if let Some(simd) = t.simd {
            self.simd_pass(d, t, simd, blk, acc);
        } else {
            self.scalar_pass(d, t, blk, acc);
        }
        for a in 0..rows {
            for b in 0..cols {
                let dst = Access::flat(
                    t.output.clone(),
                    Affine::new(
                        t.out_base + (row0 + a) * t.out_i + (col0 + b) * t.out_r,
                        &terms(&[blk.ib(rows * t.out_i), blk.rb(cols * t.out_r), t.r2_out()]),
                    ),
                );
                let text = store(
                    self.lang,
                    &access(&dst),
                    t.accumulate,
                    t.fixed,
                    &format!("acc{a}_{b}"),
                    &mut self.calls,
                );
                self.line(d, &text);
            }
        }
        self.line(depth, "}");
    }

    /// The j loop of a block with one MAC per weight.
    fn scalar_pass(&mut self, d: usize, t: &Tile, blk: Block, acc: Elem) {
        let Block {
            rows,
            row0,
            cols,
            col0,
            ..
        } = blk;
        let lang = self.lang;
        let operand = |name: String, value: String| match (lang, acc) {
            (Lang::C, Elem::F32) => format!("const float {name} = {value};"),
            (Lang::C, e) => format!("const {} {name} = {value};", e.c_name()),
            (Lang::Rust, Elem::F32) => format!("let {name} = {value};"),
            (Lang::Rust, e) => format!("let {name} = {value} as {};", e.rust_name()),
        };
        // Two j steps per iteration halve the loop overhead when q is even.
        let unroll = if t.q.is_multiple_of(2) && t.q >= 4 {
            2
        } else {
            1
        };
        let jvar = if unroll == 2 { "j2" } else { "j" };
        self.loop_open(d, jvar, t.q / unroll);
        for step in 0..unroll {
            let (dj, scoped) = if unroll == 2 {
                (d + 2, true)
            } else {
                (d + 1, false)
            };
            if scoped {
                self.line(d + 1, "{");
            }
            let weight = |a: usize| {
                Access::flat(
                    Array::Const(t.weights.clone()),
                    Affine::new(
                        row0 * t.q + step * rows + a,
                        &terms(&[blk.ib(rows * t.q), Some((jvar, unroll * rows))]),
                    ),
                )
            };
            let input = |b: usize| {
                Access::flat(
                    t.input.clone(),
                    Affine::new(
                        t.in_base + (col0 + b) * t.in_r + step * t.in_j,
                        &terms(&[
                            Some((jvar, unroll * t.in_j)),
                            blk.rb(cols * t.in_r),
                            t.r2_in(),
                        ]),
                    ),
                )
            };
            for a in 0..rows {
                self.line(dj, &operand(format!("w{a}"), access(&weight(a))));
            }
            for b in 0..cols {
                self.line(dj, &operand(format!("x{b}"), access(&input(b))));
            }
            for a in 0..rows {
                for b in 0..cols {
                    let mac = match (self.lang, acc) {
                        // C99 does not contract a*b+c by itself: fuse explicitly (one VFMA).
                        (Lang::C, Elem::F32) => {
                            self.calls.insert("fmaf");
                            format!("acc{a}_{b} = kp_fmaf(w{a}, x{b}, acc{a}_{b});")
                        }
                        _ => format!("acc{a}_{b} += w{a} * x{b};"),
                    };
                    self.line(dj, &mac);
                }
            }
            if scoped {
                self.line(d + 1, "}");
            }
        }
        self.line(d, "}");
    }

    /// A float block of four rows in C across Helium lanes (see [`Mve::by_rows`]): a vector
    /// accumulator per column; per j the block's four weights (consecutive in the j-major
    /// packing) as one vector and each column's input as the scalar of a VFMA; then each
    /// column's four outputs stored (or added) at once. Rust prints the scalar tile over the
    /// same packing.
    fn by_rows_block(&mut self, depth: usize, t: &Tile, v: Mve, blk: Block) {
        let Block {
            rows,
            row0,
            cols,
            col0,
            ..
        } = blk;
        let vt = v.vector_type();
        // A block of fewer than four rows: its weight loads and output stores under a tail
        // predicate.
        let partial = rows < 4;
        let (load, fma) = (v.load(Elem::F32, partial), v.dot(Elem::F32));
        let count = if partial {
            format!(", {rows}")
        } else {
            String::new()
        };
        let store = if t.accumulate {
            "vadd_f32x4_s"
        } else {
            "vst_f32x4_s"
        };
        self.calls.extend([vt, "vzero_f32x4", load, fma, store]);
        self.line(depth, "{");
        let d = depth + 1;
        for b in 0..cols {
            self.line(d, &format!("kp_{vt} v{b} = kp_vzero_f32x4();"));
        }
        self.loop_open(d, "j", t.q);
        let weight = access(&Access::flat(
            Array::Const(t.weights.clone()),
            Affine::new(row0 * t.q, &terms(&[blk.ib(rows * t.q), Some(("j", rows))])),
        ));
        self.line(
            d + 1,
            &format!("const kp_{vt} w = kp_{load}(&{weight}{count});"),
        );
        for b in 0..cols {
            let x = access(&Access::flat(
                t.input.clone(),
                Affine::new(
                    t.in_base + (col0 + b) * t.in_r,
                    &terms(&[Some(("j", t.in_j)), blk.rb(cols * t.in_r), t.r2_in()]),
                ),
            ));
            self.line(d + 1, &format!("v{b} = kp_{fma}(v{b}, w, {x});"));
        }
        self.line(d, "}");
        for b in 0..cols {
            let dst = access(&Access::flat(
                t.output.clone(),
                Affine::new(
                    t.out_base + row0 * t.out_i + (col0 + b) * t.out_r,
                    &terms(&[blk.ib(rows * t.out_i), blk.rb(cols * t.out_r), t.r2_out()]),
                ),
            ));
            self.line(
                d,
                &format!("kp_{store}(&{dst}, {}, v{b}, {rows});", t.out_i),
            );
        }
        self.line(depth, "}");
    }

    /// The j loop of a block in Helium chunks (see [`Mve`]): in C each row's and each column's
    /// chunk one vector load (the last, partial chunk with a tail predicate) and one dot
    /// product per pair; in Rust, which has no Helium target, one MAC per weight over the same
    /// row-major weights (integer sums are exact, so both agree bit for bit).
    fn mve_pass(&mut self, d: usize, t: &Tile, v: Mve, blk: Block, acc: Elem) {
        let Block {
            rows,
            row0,
            cols,
            col0,
            ..
        } = blk;
        let weight = |a: usize, j: Option<(&'static str, usize)>, j0: usize| {
            access(&Access::flat(
                Array::Const(t.weights.clone()),
                Affine::new((row0 + a) * t.q + j0, &terms(&[blk.ib(rows * t.q), j])),
            ))
        };
        let input = |b: usize, j: Option<(&'static str, usize)>, j0: usize| {
            access(&Access::flat(
                t.input.clone(),
                Affine::new(
                    t.in_base + (col0 + b) * t.in_r + j0 * t.in_j,
                    &terms(&[j, blk.rb(cols * t.in_r), t.r2_in()]),
                ),
            ))
        };
        if self.lang == Lang::Rust {
            let ty = acc.rust_name();
            self.loop_open(d, "j", t.q);
            for a in 0..rows {
                let w = weight(a, Some(("j", 1)), 0);
                self.line(d + 1, &format!("let w{a} = {w} as {ty};"));
            }
            for b in 0..cols {
                let x = input(b, Some(("j", t.in_j)), 0);
                self.line(d + 1, &format!("let x{b} = {x} as {ty};"));
            }
            for a in 0..rows {
                for b in 0..cols {
                    self.line(d + 1, &format!("acc{a}_{b} += w{a} * x{b};"));
                }
            }
            self.line(d, "}");
            return;
        }
        let l = v.lanes;
        let (full, rest) = (t.q / l, t.q % l);
        let vt = v.vector_type();
        let dot = v.dot(acc);
        self.calls.extend([vt, dot]);

        // One chunk at j = j0 (+ jv·lanes in the loop); `n` lanes when partial.
        let chunk = |me: &mut Self, depth: usize, jv: bool, j0: usize, n: Option<usize>| {
            let j = jv.then_some(("jv", l));
            let (wl, xl) = (v.load(v.weight, n.is_some()), v.load(v.input, n.is_some()));
            me.calls.extend([wl, xl]);
            let count = n.map_or(String::new(), |n| format!(", {n}"));
            for a in 0..rows {
                me.line(
                    depth,
                    &format!(
                        "const kp_{vt} w{a} = kp_{wl}(&{}{count});",
                        weight(a, j, j0)
                    ),
                );
            }
            for b in 0..cols {
                me.line(
                    depth,
                    &format!("const kp_{vt} x{b} = kp_{xl}(&{}{count});", input(b, j, j0)),
                );
            }
            for a in 0..rows {
                for b in 0..cols {
                    me.line(
                        depth,
                        &format!("acc{a}_{b} = kp_{dot}(acc{a}_{b}, w{a}, x{b});"),
                    );
                }
            }
        };
        if full > 1 {
            self.loop_open(d, "jv", full);
            chunk(self, d + 1, true, 0, None);
            self.line(d, "}");
        } else if full == 1 {
            self.line(d, "{");
            chunk(self, d + 1, false, 0, None);
            self.line(d, "}");
        }
        if rest > 0 {
            self.line(d, "{");
            chunk(self, d + 1, false, full * l, Some(rest));
            self.line(d, "}");
        }
    }

    /// The j loop of a block in groups of `simd.group`: in C one 32-bit word per row and
    /// input, dual MACs (kp_smlad / kp_smlald, SXTB16 for int8); in Rust the same groups one
    /// MAC at a time (integer sums are exact, so both agree bit for bit).
    fn simd_pass(&mut self, d: usize, t: &Tile, simd: Simd, blk: Block, acc: Elem) {
        let Block {
            rows,
            row0,
            cols,
            col0,
            ..
        } = blk;
        let g = simd.group;
        let weight = |a: usize, slot: usize| {
            access(&Access::flat(
                Array::Const(t.weights.clone()),
                Affine::new(
                    row0 * t.q + a * g + slot,
                    &terms(&[blk.ib(rows * t.q), Some(("jg", rows * g))]),
                ),
            ))
        };
        let input = |b: usize, k: usize| {
            access(&Access::flat(
                t.input.clone(),
                Affine::new(
                    t.in_base + (col0 + b) * t.in_r + k * t.in_j,
                    &terms(&[Some(("jg", g * t.in_j)), blk.rb(cols * t.in_r), t.r2_in()]),
                ),
            ))
        };
        // A 16-bit pair (x_k, x_k+1) of column b: one 32-bit load.
        let pair = |b: usize, k: usize| format!("kp_read32(&{})", input(b, k));
        self.loop_open(d, "jg", t.q / g);
        match self.lang {
            Lang::C if simd.strided => self.strided_group(d + 1, simd, blk, acc, &weight, &input),
            Lang::C => {
                let mac = format!("kp_{}", self.simd_runtime(simd, acc));
                for a in 0..rows {
                    self.line(
                        d + 1,
                        &format!("const uint32_t w{a} = kp_read32(&{});", weight(a, 0)),
                    );
                    if g == 4 {
                        self.line(d + 1, &format!("const uint32_t w{a}l = kp_sxtb16(w{a});"));
                        self.line(
                            d + 1,
                            &format!("const uint32_t w{a}h = kp_sxtb16_ror8(w{a});"),
                        );
                    }
                }
                for b in 0..cols {
                    match (g, simd.pairs_input()) {
                        (2, _) => {
                            self.line(d + 1, &format!("const uint32_t x{b} = {};", pair(b, 0)))
                        }
                        (_, true) => {
                            self.line(d + 1, &format!("const uint32_t x{b}l = {};", pair(b, 0)));
                            self.line(d + 1, &format!("const uint32_t x{b}h = {};", pair(b, 2)));
                        }
                        _ => {
                            self.line(
                                d + 1,
                                &format!("const uint32_t x{b} = kp_read32(&{});", input(b, 0)),
                            );
                            self.line(d + 1, &format!("const uint32_t x{b}l = kp_sxtb16(x{b});"));
                            self.line(
                                d + 1,
                                &format!("const uint32_t x{b}h = kp_sxtb16_ror8(x{b});"),
                            );
                        }
                    }
                }
                for a in 0..rows {
                    for b in 0..cols {
                        if g == 2 {
                            self.line(
                                d + 1,
                                &format!("acc{a}_{b} = {mac}(w{a}, x{b}, acc{a}_{b});"),
                            );
                        } else {
                            self.line(
                                d + 1,
                                &format!("acc{a}_{b} = {mac}(w{a}l, x{b}l, acc{a}_{b});"),
                            );
                            self.line(
                                d + 1,
                                &format!("acc{a}_{b} = {mac}(w{a}h, x{b}h, acc{a}_{b});"),
                            );
                        }
                    }
                }
            }
            Lang::Rust => {
                let ty = acc.rust_name();
                for k in 0..g {
                    for a in 0..rows {
                        self.line(
                            d + 1,
                            &format!("let w{a}_{k} = {} as {ty};", weight(a, simd.slot(k))),
                        );
                    }
                    for b in 0..cols {
                        self.line(d + 1, &format!("let x{b}_{k} = {} as {ty};", input(b, k)));
                    }
                    for a in 0..rows {
                        for b in 0..cols {
                            self.line(d + 1, &format!("acc{a}_{b} += w{a}_{k} * x{b}_{k};"));
                        }
                    }
                }
            }
        }
        self.line(d, "}");
        // The tail: the last q % group steps, one MAC each, weights j-major after the groups.
        let start = t.q / g * g;
        let lang = self.lang;
        let cast = |v: String| match lang {
            Lang::C => format!("({}){v}", acc.c_name()),
            Lang::Rust => format!("{v} as {}", acc.rust_name()),
        };
        for j in start..t.q {
            for a in 0..rows {
                let w = access(&Access::flat(
                    Array::Const(t.weights.clone()),
                    Affine::new(row0 * t.q + j * rows + a, &terms(&[blk.ib(rows * t.q)])),
                ));
                for b in 0..cols {
                    let x = access(&Access::flat(
                        t.input.clone(),
                        Affine::new(
                            t.in_base + (col0 + b) * t.in_r + j * t.in_j,
                            &terms(&[blk.rb(cols * t.in_r), t.r2_in()]),
                        ),
                    ));
                    self.line(
                        d,
                        &format!("acc{a}_{b} += {} * {};", cast(w.clone()), cast(x)),
                    );
                }
            }
        }
    }

    /// Records the runtime pieces every C SIMD pass calls (word loads, the dual MAC, and for
    /// int8 weights the unpacking) and returns the MAC's name.
    fn simd_runtime(&mut self, simd: Simd, acc: Elem) -> &'static str {
        let mac = if acc == Elem::I64 { "smlald" } else { "smlad" };
        self.calls.extend(["read32", mac]);
        if simd.group == 4 {
            self.calls.extend(["sxtb16", "sxtb16_ror8"]);
        }
        mac
    }

    /// One group of a strided SIMD pass in C (see [`Simd::strided`]): each row's weight word
    /// (unpacked into its two pairs for int8), then for each pair of j the column pairs built
    /// two columns at a time, and the dual MACs.
    #[allow(clippy::too_many_arguments)]
    fn strided_group(
        &mut self,
        d: usize,
        simd: Simd,
        blk: Block,
        acc: Elem,
        weight: &dyn Fn(usize, usize) -> String,
        input: &dyn Fn(usize, usize) -> String,
    ) {
        let g = simd.group;
        let mac = self.simd_runtime(simd, acc);
        for a in 0..blk.rows {
            self.line(
                d,
                &format!("const uint32_t w{a} = kp_read32(&{});", weight(a, 0)),
            );
            if g == 4 {
                self.line(d, &format!("const uint32_t w{a}_0 = kp_sxtb16(w{a});"));
                self.line(d, &format!("const uint32_t w{a}_1 = kp_sxtb16_ror8(w{a});"));
            }
        }
        for h in 0..g / 2 {
            let (j0, j1) = (2 * h, 2 * h + 1);
            let mut b = 0;
            while b < blk.cols {
                if b + 1 < blk.cols {
                    if simd.input == Elem::I8 {
                        // Rows j0 and j1 of columns b, b+1 as bytes (x0b, x0b1, x1b, x1b1):
                        // SXTB16 gives column b's pair, its rotation column b+1's.
                        self.calls.extend(["read16", "sxtb16", "sxtb16_ror8"]);
                        self.line(
                            d,
                            &format!(
                                "const uint32_t x{b}_{h} = kp_read16(&{}) | (kp_read16(&{}) << 16);",
                                input(b, j0),
                                input(b, j1)
                            ),
                        );
                        self.line(
                            d,
                            &format!("const uint32_t p{b}_{h} = kp_sxtb16(x{b}_{h});"),
                        );
                        self.line(
                            d,
                            &format!("const uint32_t p{}_{h} = kp_sxtb16_ror8(x{b}_{h});", b + 1),
                        );
                    } else {
                        self.calls.extend(["pkhbt", "pkhtb"]);
                        self.line(
                            d,
                            &format!("const uint32_t x{b}_{h}a = kp_read32(&{});", input(b, j0)),
                        );
                        self.line(
                            d,
                            &format!("const uint32_t x{b}_{h}b = kp_read32(&{});", input(b, j1)),
                        );
                        self.line(
                            d,
                            &format!("const uint32_t p{b}_{h} = kp_pkhbt(x{b}_{h}a, x{b}_{h}b);"),
                        );
                        self.line(
                            d,
                            &format!(
                                "const uint32_t p{}_{h} = kp_pkhtb(x{b}_{h}a, x{b}_{h}b);",
                                b + 1
                            ),
                        );
                    }
                    b += 2;
                } else {
                    // A lone column: its two values, sign-extended, joined.
                    self.calls.insert("pkhbt");
                    self.line(
                        d,
                        &format!(
                            "const uint32_t p{b}_{h} = kp_pkhbt((uint32_t)(int32_t){}, (uint32_t)(int32_t){});",
                            input(b, j0),
                            input(b, j1)
                        ),
                    );
                    b += 1;
                }
            }
            for a in 0..blk.rows {
                let w = if g == 4 {
                    format!("w{a}_{h}")
                } else {
                    format!("w{a}")
                };
                for b in 0..blk.cols {
                    self.line(
                        d,
                        &format!("acc{a}_{b} = kp_{mac}({w}, p{b}_{h}, acc{a}_{b});"),
                    );
                }
            }
        }
    }

    fn stmt(&mut self, depth: usize, s: &Stmt) {
        match s {
            Stmt::Loop { var, count, body } => {
                self.loop_open(depth, var, *count);
                self.stmts(depth + 1, body);
                self.line(depth, "}");
            }
            Stmt::Sum {
                dst,
                accumulate,
                terms,
                fixed,
                offset,
            } => {
                let mut value = sum(self.lang, terms, acc_elem(*fixed), &mut self.calls);
                if *offset != 0 {
                    value = match (terms.is_empty(), self.lang, acc_elem(*fixed)) {
                        (true, Lang::C, Elem::I64) => format!("(int64_t){offset}"),
                        (true, _, _) => offset.to_string(),
                        (false, Lang::C, Elem::I64) => format!("(int64_t){offset} + {value}"),
                        (false, _, _) => format!("{offset} + {value}"),
                    };
                }
                let text = match fixed {
                    // An all-zero row of a temp: requantizing 0 gives 0.
                    Some(f) if terms.is_empty() && *offset == 0 && f.narrow => {
                        format!("{} = 0;", access(dst))
                    }
                    _ => store(
                        self.lang,
                        &access(dst),
                        *accumulate,
                        *fixed,
                        &value,
                        &mut self.calls,
                    ),
                };
                self.line(depth, &text);
            }
            Stmt::Tile(t) => self.tile(depth, t),
            Stmt::Csr {
                rows,
                dest_offset,
                row_ptr,
                col_index,
                values,
                fixed,
                init,
            } => {
                let (row, col, val) = (
                    row_ptr.to_uppercase(),
                    col_index.to_uppercase(),
                    values.to_uppercase(),
                );
                let dst = affine(&Affine::new(*dest_offset, &[("r", 1)]));
                let acc = acc_elem(*fixed);
                self.loop_open(depth, "r", *rows);
                let start = init.as_ref().map(|t| format!("{}[r]", t.to_uppercase()));
                self.acc_open(depth + 1, acc, start);
                match self.lang {
                    Lang::C => {
                        self.line(depth + 1, &format!(
                            "for (uint32_t k = (uint32_t){row}[r]; k < (uint32_t){row}[r + 1]; ++k) {{"
                        ));
                        let mac = if acc == Elem::F32 {
                            self.calls.insert("fmaf");
                            format!("acc = kp_fmaf({val}[k], x[{col}[k]], acc);")
                        } else {
                            format!(
                                "acc += {};",
                                product(
                                    Lang::C,
                                    acc,
                                    &format!("{val}[k]"),
                                    &format!("x[{col}[k]]")
                                )
                            )
                        };
                        self.line(depth + 2, &mac);
                        self.line(depth + 1, "}");
                    }
                    Lang::Rust => {
                        // `get` instead of indexing: the tables are built consistent, and this
                        // keeps every panicking path out of the inference code.
                        self.line(
                            depth + 1,
                            &format!("let span = {row}[r] as usize..{row}[r + 1] as usize;"),
                        );
                        self.line(depth + 1, &format!(
                            "if let (Some(vals), Some(cols)) = ({val}.get(span.clone()), {col}.get(span)) {{"
                        ));
                        self.line(depth + 2, "for (v, &c) in vals.iter().zip(cols) {");
                        let text = match acc {
                            Elem::F32 => {
                                "acc += v * x.get(c as usize).copied().unwrap_or(0.0);".to_owned()
                            }
                            e => format!(
                                "acc += *v as {t} * x.get(c as usize).copied().unwrap_or(0) as {t};",
                                t = e.rust_name()
                            ),
                        };
                        self.line(depth + 3, &text);
                        self.line(depth + 2, "}");
                        self.line(depth + 1, "}");
                    }
                }
                let text = store(
                    self.lang,
                    &format!("y[{dst}]"),
                    true,
                    *fixed,
                    "acc",
                    &mut self.calls,
                );
                self.line(depth + 1, &text);
                self.line(depth, "}");
            }
        }
    }
}

/// A kernel's printed body and the runtime functions it calls.
pub struct PrintedKernel {
    pub body: String,
    pub calls: Calls,
}

/// The body of a kernel, indented one level.
pub fn kernel_body(lang: Lang, k: &Kernel) -> PrintedKernel {
    let mut p = Printer {
        lang,
        out: String::new(),
        calls: Calls::new(),
    };
    p.stmts(1, &k.body);
    // A kernel whose weights are all zero reads nothing: say so rather than trip unused warnings.
    let mut unused = String::new();
    for (name, used) in [
        ("x", p.out.contains("x[")),
        ("y", p.out.contains("y[")),
        ("t", !k.uses_temp || p.out.contains("t[")),
    ] {
        if !used {
            unused.push_str(&match lang {
                Lang::C => format!("    (void){name};\n"),
                Lang::Rust => format!("    let _ = {name};\n"),
            });
        }
    }
    PrintedKernel {
        body: unused + &p.out,
        calls: p.calls,
    }
}

fn join_wrapped(items: &[String], indent: &str) -> String {
    // Eight values a line keeps large tables readable and diffs small.
    items
        .chunks(8)
        .map(|c| format!("{indent}{},", c.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn index_type(lang: Lang, bytes: usize) -> &'static str {
    match (lang, bytes) {
        (Lang::C, 1) => "uint8_t",
        (Lang::C, 2) => "uint16_t",
        (Lang::C, _) => "uint32_t",
        (Lang::Rust, 1) => "u8",
        (Lang::Rust, 2) => "u16",
        (Lang::Rust, _) => "u32",
    }
}

/// A constant table as a `static` definition in flash.
pub fn table_definition(lang: Lang, t: &Table) -> String {
    let name = t.name().to_uppercase();
    let floats = |v: &[f32]| v.iter().map(|&x| float_lit(lang, x)).collect::<Vec<_>>();
    let ints = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>();
    let (elem, items, cols) = match t {
        Table::Matrix { values, cols, .. } => match values {
            Values::F32(v) => (Elem::F32, floats(v), Some(*cols)),
            Values::Int(e, v) => (*e, ints(v), Some(*cols)),
        },
        Table::Floats { values, .. } => (Elem::F32, floats(values), None),
        Table::Ints { elem, values, .. } => (*elem, ints(values), None),
        Table::Indices { bytes, values, .. } => {
            let ty = index_type(lang, *bytes);
            let items: Vec<String> = values.iter().map(usize::to_string).collect();
            return match lang {
                Lang::C => format!(
                    "static const {ty} {name}[{}] = {{\n{}\n}};",
                    values.len(),
                    join_wrapped(&items, "    ")
                ),
                Lang::Rust => format!(
                    "static {name}: [{ty}; {}] = [\n{}\n];",
                    values.len(),
                    join_wrapped(&items, "    ")
                ),
            };
        }
    };
    let (cty, rty) = (elem.c_name(), elem.rust_name());
    match (lang, cols) {
        (Lang::C, Some(cols)) => {
            let rows = items.len() / cols.max(1);
            let body = items
                .chunks(cols.max(1))
                .map(|row| format!("    {{\n{}\n    }},", join_wrapped(row, "        ")))
                .collect::<Vec<_>>()
                .join("\n");
            format!("static const {cty} {name}[{rows}][{cols}] = {{\n{body}\n}};")
        }
        (Lang::Rust, Some(cols)) => {
            let rows = items.len() / cols.max(1);
            let body = items
                .chunks(cols.max(1))
                .map(|row| format!("    [\n{}\n    ],", join_wrapped(row, "        ")))
                .collect::<Vec<_>>()
                .join("\n");
            format!("static {name}: [[{rty}; {cols}]; {rows}] = [\n{body}\n];")
        }
        (Lang::C, None) => format!(
            "static const {cty} {name}[{}] = {{\n{}\n}};",
            items.len(),
            join_wrapped(&items, "    ")
        ),
        (Lang::Rust, None) => format!(
            "static {name}: [{rty}; {}] = [\n{}\n];",
            items.len(),
            join_wrapped(&items, "    ")
        ),
    }
}
