//! Printing lowered kernels as C or Rust. The two languages differ only in spelling here:
//! every loop, index and literal is printed from the same statement tree in the same order.

use std::fmt::Write as _;

use crate::kernel::{Access, Affine, Array, Coef, Index, Kernel, Stmt, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Rust,
}

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

fn sum(lang: Lang, terms: &[(Coef, Access)]) -> String {
    if terms.is_empty() {
        return float_lit(lang, 0.0);
    }
    let mut out = String::new();
    for (k, (coef, input)) in terms.iter().enumerate() {
        let (negative, c) = match coef {
            Coef::Literal(v) if *v < 0.0 => (true, float_lit(lang, -v)),
            Coef::Literal(v) => (false, float_lit(lang, *v)),
            Coef::Load(a) => (false, access(a)),
        };
        match (k, negative) {
            (0, true) => out.push('-'),
            (0, false) => {}
            (_, true) => out.push_str(" - "),
            (_, false) => out.push_str(" + "),
        }
        let _ = write!(out, "{c} * {}", access(input));
    }
    out
}

struct Printer {
    lang: Lang,
    out: String,
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

    fn acc_open(&mut self, depth: usize) {
        let zero = float_lit(self.lang, 0.0);
        let decl = match self.lang {
            Lang::C => format!("float acc = {zero};"),
            Lang::Rust => format!("let mut acc = {zero};"),
        };
        self.line(depth, &decl);
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
            } => {
                let op = if *accumulate { "+=" } else { "=" };
                let text = format!("{} {op} {};", access(dst), sum(self.lang, terms));
                self.line(depth, &text);
            }
            Stmt::Dot {
                dst,
                accumulate,
                var,
                count,
                weight,
                input,
            } => {
                // C needs a block to scope `acc`; in Rust the enclosing loop body scopes it.
                let inner = if self.lang == Lang::C {
                    self.line(depth, "{");
                    depth + 1
                } else {
                    depth
                };
                self.acc_open(inner);
                self.loop_open(inner, var, *count);
                self.line(
                    inner + 1,
                    &format!("acc += {} * {};", access(weight), access(input)),
                );
                self.line(inner, "}");
                let op = if *accumulate { "+=" } else { "=" };
                self.line(inner, &format!("{} {op} acc;", access(dst)));
                if self.lang == Lang::C {
                    self.line(depth, "}");
                }
            }
            Stmt::Csr {
                rows,
                dest_offset,
                row_ptr,
                col_index,
                values,
            } => {
                let (row, col, val) = (
                    row_ptr.to_uppercase(),
                    col_index.to_uppercase(),
                    values.to_uppercase(),
                );
                let dst = affine(&Affine::new(*dest_offset, &[("r", 1)]));
                self.loop_open(depth, "r", *rows);
                self.acc_open(depth + 1);
                match self.lang {
                    Lang::C => {
                        self.line(depth + 1, &format!(
                            "for (uint32_t k = (uint32_t){row}[r]; k < (uint32_t){row}[r + 1]; ++k) {{"
                        ));
                        self.line(depth + 2, &format!("acc += {val}[k] * x[{col}[k]];"));
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
                        self.line(
                            depth + 3,
                            "acc += v * x.get(c as usize).copied().unwrap_or(0.0);",
                        );
                        self.line(depth + 2, "}");
                        self.line(depth + 1, "}");
                    }
                }
                self.line(depth + 1, &format!("y[{dst}] += acc;"));
                self.line(depth, "}");
            }
        }
    }
}

/// The body of a kernel, indented one level.
pub fn kernel_body(lang: Lang, k: &Kernel) -> String {
    let mut p = Printer {
        lang,
        out: String::new(),
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
    unused + &p.out
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
    match (lang, t) {
        (
            Lang::C,
            Table::Matrix {
                rows, cols, values, ..
            },
        ) => {
            let body = values
                .chunks(*cols)
                .map(|row| {
                    format!(
                        "    {{\n{}\n    }},",
                        join_wrapped(&floats(row), "        ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            format!("static const float {name}[{rows}][{cols}] = {{\n{body}\n}};")
        }
        (
            Lang::Rust,
            Table::Matrix {
                rows, cols, values, ..
            },
        ) => {
            let body = values
                .chunks(*cols)
                .map(|row| format!("    [\n{}\n    ],", join_wrapped(&floats(row), "        ")))
                .collect::<Vec<_>>()
                .join("\n");
            format!("static {name}: [[f32; {cols}]; {rows}] = [\n{body}\n];")
        }
        (Lang::C, Table::Floats { values, .. }) => format!(
            "static const float {name}[{}] = {{\n{}\n}};",
            values.len(),
            join_wrapped(&floats(values), "    ")
        ),
        (Lang::Rust, Table::Floats { values, .. }) => format!(
            "static {name}: [f32; {}] = [\n{}\n];",
            values.len(),
            join_wrapped(&floats(values), "    ")
        ),
        (_, Table::Indices { bytes, values, .. }) => {
            let ty = index_type(lang, *bytes);
            let items: Vec<String> = values.iter().map(usize::to_string).collect();
            match lang {
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
            }
        }
    }
}
