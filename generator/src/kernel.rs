//! Stage 4 (target lowering): each planned matrix becomes a small kernel in a language-neutral
//! statement form — loops with constant bounds, affine indices, literal or stored weights — that
//! the C and Rust printers turn into text. One lowering, two syntaxes, the same arithmetic order.

use crate::fixed::Requant;
use crate::plan::{MatrixPlan, Operand, OverlayEncoding, Stage};
use crate::quant::{MatrixQuant, StageQuant};

/// Element type of an array or accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    I8,
    I16,
    I32,
    I64,
}

impl Elem {
    /// The integer type of `bits` bits.
    pub fn int(bits: u32) -> Elem {
        match bits {
            8 => Elem::I8,
            16 => Elem::I16,
            32 => Elem::I32,
            _ => Elem::I64,
        }
    }

    pub fn c_name(self) -> &'static str {
        match self {
            Elem::F32 => "float",
            Elem::I8 => "int8_t",
            Elem::I16 => "int16_t",
            Elem::I32 => "int32_t",
            Elem::I64 => "int64_t",
        }
    }

    pub fn rust_name(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::I8 => "i8",
            Elem::I16 => "i16",
            Elem::I32 => "i32",
            Elem::I64 => "i64",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Elem::I8 => 1,
            Elem::I16 => 2,
            Elem::F32 | Elem::I32 => 4,
            Elem::I64 => 8,
        }
    }
}

/// A literal weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    F32(f32),
    Int(i32),
}

impl Num {
    pub fn is_zero(self) -> bool {
        match self {
            Num::F32(v) => v == 0.0,
            Num::Int(v) => v == 0,
        }
    }
}

/// How an integer accumulator becomes the output of a fixed-point statement:
/// `requantize(acc)`, then stored saturated to int16 (`narrow`, a temp) or added to an int32
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// int64 accumulator (`requantize_s64`) instead of int32.
    pub wide: bool,
    pub requant: Requant,
    pub narrow: bool,
}

impl Fixed {
    pub fn of(sq: &StageQuant) -> Fixed {
        Fixed {
            wide: sq.wide,
            requant: sq.requant,
            narrow: sq.narrow,
        }
    }
}

/// An index expression `constant + Σ coef·var` over loop variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affine {
    pub constant: usize,
    pub terms: Vec<(&'static str, usize)>,
}

impl Affine {
    pub fn constant(c: usize) -> Self {
        Affine {
            constant: c,
            terms: Vec::new(),
        }
    }

    /// `constant + Σ coef·var`, dropping zero coefficients.
    pub fn new(constant: usize, terms: &[(&'static str, usize)]) -> Self {
        Affine {
            constant,
            terms: terms.iter().copied().filter(|&(_, c)| c != 0).collect(),
        }
    }
}

/// A kernel parameter or constant array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Array {
    /// The matrix input vector (`x`).
    Input,
    /// The destination buffer (`y`).
    Dest,
    /// The shared KP temporary (`t`).
    Temp,
    /// A stored constant array (2-D for matrices, 1-D for index and value tables).
    Const(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Index {
    /// A 1-D access.
    Flat(Affine),
    /// A 2-D access `[row][col]` into a stored matrix.
    Grid(Affine, Affine),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub array: Array,
    pub index: Index,
}

impl Access {
    pub fn flat(array: Array, index: Affine) -> Self {
        Access {
            array,
            index: Index::Flat(index),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Coef {
    Literal(Num),
    Load(Access),
}

// A kernel holds a few dozen statements, built once per build: boxing the large `Dot` variant
// would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Loop {
        var: &'static str,
        count: usize,
        body: Vec<Stmt>,
    },
    /// `dst (=|+=) Σ coef · input` in the listed order; an empty sum stores zero.
    Sum {
        dst: Access,
        accumulate: bool,
        terms: Vec<(Coef, Access)>,
        fixed: Option<Fixed>,
        /// Fixed point: a constant the accumulator starts from (the input zero point's share).
        offset: i64,
    },
    /// `acc = 0; for var < count: acc += weight · input; dst (=|+=) acc`.
    Dot {
        dst: Access,
        accumulate: bool,
        var: &'static str,
        count: usize,
        weight: Access,
        input: Access,
        fixed: Option<Fixed>,
        /// Fixed point: the accumulator starts from this table entry instead of 0.
        init: Option<Access>,
    },
    /// CSR rows: for r < rows, dst[offset + r] += Σ_{k in row r} val[k] · x[col[k]].
    Csr {
        rows: usize,
        dest_offset: usize,
        row_ptr: String,
        col_index: String,
        values: String,
        fixed: Option<Fixed>,
        /// Fixed point: a table of per-row starting values, indexed by `r`.
        init: Option<String>,
    },
}

/// A constant table a kernel needs besides its matrices.
#[derive(Debug, Clone, PartialEq)]
pub enum Table {
    Matrix {
        name: String,
        rows: usize,
        cols: usize,
        values: Values,
    },
    Floats {
        name: String,
        values: Vec<f32>,
    },
    Ints {
        name: String,
        elem: Elem,
        values: Vec<i32>,
    },
    Indices {
        name: String,
        bytes: usize,
        values: Vec<usize>,
    },
}

impl Table {
    pub fn name(&self) -> &str {
        match self {
            Table::Matrix { name, .. }
            | Table::Floats { name, .. }
            | Table::Ints { name, .. }
            | Table::Indices { name, .. } => name,
        }
    }
}

/// The values of a stored matrix or vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    Int(Elem, Vec<i32>),
}

impl Values {
    pub fn get(&self, k: usize) -> Num {
        match self {
            Values::F32(v) => Num::F32(v[k]),
            Values::Int(_, v) => Num::Int(v[k]),
        }
    }
}

/// Element types of a kernel's operands: input `x`, destination `y`, temp `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operands {
    pub x: Elem,
    pub y: Elem,
    pub t: Elem,
}

impl Operands {
    pub const F32: Operands = Operands {
        x: Elem::F32,
        y: Elem::F32,
        t: Elem::F32,
    };
}

/// One `dest += W x` kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub input_len: usize,
    pub uses_temp: bool,
    pub operands: Operands,
    pub tables: Vec<Table>,
    pub body: Vec<Stmt>,
}

fn array_of(op: Operand) -> Array {
    match op {
        Operand::Input => Array::Input,
        Operand::Temp => Array::Temp,
        Operand::Dest => Array::Dest,
    }
}

fn lower_stage(
    stage: &Stage,
    quant: Option<&StageQuant>,
    dest_offset: usize,
    tables: &mut Vec<Table>,
) -> Vec<Stmt> {
    let out_base = if stage.output == Operand::Dest {
        dest_offset
    } else {
        0
    };
    let input = array_of(stage.input);
    let output = array_of(stage.output);
    let fixed = quant.map(Fixed::of);
    let offsets: &[i64] = quant.map_or(&[], |q| &q.row_offsets);
    let offset_elem = if quant.is_some_and(|q| q.wide) {
        Elem::I64
    } else {
        Elem::I32
    };
    let values = match quant {
        Some(q) => Values::Int(Elem::int(q.weight_bits), q.values.clone()),
        None => Values::F32(stage.values.clone()),
    };
    // A fixed-point temp is stored once, saturated: never accumulated into.
    let accumulate = stage.accumulate;
    let per_r = |r_var: Option<&'static str>| -> Vec<Stmt> {
        let r_terms = |coef: usize| r_var.map(|v| (v, coef));
        if stage.unrolled {
            (0..stage.p)
                .filter_map(|i| {
                    let terms: Vec<(Coef, Access)> = (0..stage.q)
                        .filter_map(|j| {
                            let w = values.get(i * stage.q + j);
                            (!w.is_zero()).then(|| {
                                let idx = Affine::new(
                                    j * stage.in_j,
                                    &r_terms(stage.in_r).into_iter().collect::<Vec<_>>(),
                                );
                                (Coef::Literal(w), Access::flat(input.clone(), idx))
                            })
                        })
                        .collect();
                    let offset = offsets.get(i).copied().unwrap_or(0);
                    if terms.is_empty() && offset == 0 && accumulate {
                        return None;
                    }
                    let dst = Affine::new(
                        out_base + i * stage.out_i,
                        &r_terms(stage.out_r).into_iter().collect::<Vec<_>>(),
                    );
                    Some(Stmt::Sum {
                        dst: Access::flat(output.clone(), dst),
                        accumulate,
                        terms,
                        fixed,
                        offset,
                    })
                })
                .collect()
        } else {
            let mut r_part: Vec<(&'static str, usize)> = Vec::new();
            let mut o_part: Vec<(&'static str, usize)> = vec![("i", stage.out_i)];
            if let Some(v) = r_var {
                r_part.push((v, stage.in_r));
                o_part.push((v, stage.out_r));
            }
            let mut in_terms = vec![("j", stage.in_j)];
            in_terms.extend(r_part);
            vec![Stmt::Loop {
                var: "i",
                count: stage.p,
                body: vec![Stmt::Dot {
                    dst: Access::flat(output.clone(), Affine::new(out_base, &o_part)),
                    accumulate,
                    var: "j",
                    count: stage.q,
                    weight: Access {
                        array: Array::Const(stage.factor.clone()),
                        index: Index::Grid(
                            Affine::new(0, &[("i", 1)]),
                            Affine::new(0, &[("j", 1)]),
                        ),
                    },
                    input: Access::flat(input.clone(), Affine::new(0, &in_terms)),
                    fixed,
                    init: (!offsets.is_empty()).then(|| {
                        Access::flat(
                            Array::Const(format!("{}_zp", stage.factor)),
                            Affine::new(0, &[("i", 1)]),
                        )
                    }),
                }],
            }]
        }
    };
    if !stage.unrolled && !tables.iter().any(|t| t.name() == stage.factor) {
        tables.push(Table::Matrix {
            name: stage.factor.clone(),
            rows: stage.p,
            cols: stage.q,
            values: values.clone(),
        });
        if !offsets.is_empty() {
            tables.push(Table::Ints {
                name: format!("{}_zp", stage.factor),
                elem: offset_elem,
                values: offsets.iter().map(|&v| v as i32).collect(),
            });
        }
    }
    if stage.outer == 1 {
        per_r(None)
    } else {
        vec![Stmt::Loop {
            var: "r",
            count: stage.outer,
            body: per_r(Some("r")),
        }]
    }
}

/// Lowers one planned matrix to its kernel; `quant` makes it a fixed-point kernel whose input
/// codes have element type `act`.
pub fn lower_matrix(m: &MatrixPlan, quant: Option<(&MatrixQuant, Elem)>) -> Kernel {
    let mut tables = Vec::new();
    let mut body = Vec::new();
    let uses_temp = m.product.temp_len().is_some();
    for (k, s) in m.product.stages().iter().enumerate() {
        let sq = quant.map(|(q, _)| &q.stages[k]);
        body.extend(lower_stage(s, sq, m.dest_offset, &mut tables));
    }
    let overlay_quant = quant.and_then(|(q, _)| q.overlay.as_ref());
    if let Some(ov) = &m.overlay {
        let value = |k: usize| match overlay_quant {
            Some(q) => Num::Int(q.values[k]),
            None => Num::F32(ov.entries[k].2),
        };
        let fixed = overlay_quant.map(Fixed::of);
        let offsets: &[i64] = overlay_quant.map_or(&[], |q| &q.row_offsets);
        match ov.encoding {
            OverlayEncoding::StraightLine => {
                let mut k = 0;
                let mut group = 0;
                while k < ov.entries.len() {
                    let row = ov.entries[k].0;
                    let mut terms = Vec::new();
                    while k < ov.entries.len() && ov.entries[k].0 == row {
                        let c = ov.entries[k].1;
                        if !value(k).is_zero() {
                            terms.push((
                                Coef::Literal(value(k)),
                                Access::flat(Array::Input, Affine::constant(c)),
                            ));
                        }
                        k += 1;
                    }
                    let offset = offsets.get(group).copied().unwrap_or(0);
                    group += 1;
                    if terms.is_empty() && offset == 0 {
                        continue;
                    }
                    body.push(Stmt::Sum {
                        dst: Access::flat(Array::Dest, Affine::constant(m.dest_offset + row)),
                        accumulate: true,
                        terms,
                        fixed,
                        offset,
                    });
                }
            }
            OverlayEncoding::Csr { row_ptr, col_index } => {
                let names = [
                    format!("{}_s_row", m.id),
                    format!("{}_s_col", m.id),
                    format!("{}_s_val", m.id),
                ];
                tables.push(Table::Indices {
                    name: names[0].clone(),
                    bytes: row_ptr.bytes(),
                    values: ov.row_ptr(m.rows),
                });
                tables.push(Table::Indices {
                    name: names[1].clone(),
                    bytes: col_index.bytes(),
                    values: ov.entries.iter().map(|e| e.1).collect(),
                });
                tables.push(match overlay_quant {
                    Some(q) => Table::Ints {
                        name: names[2].clone(),
                        elem: Elem::int(q.weight_bits),
                        values: q.values.clone(),
                    },
                    None => Table::Floats {
                        name: names[2].clone(),
                        values: ov.entries.iter().map(|e| e.2).collect(),
                    },
                });
                // Per-row starting values: the non-empty rows' offsets, 0 elsewhere.
                let init = (!offsets.is_empty()).then(|| {
                    let mut per_row = vec![0i32; m.rows];
                    let mut rows: Vec<usize> = ov.entries.iter().map(|e| e.0).collect();
                    rows.dedup();
                    for (r, &o) in rows.iter().zip(offsets) {
                        per_row[*r] = o as i32;
                    }
                    let name = format!("{}_s_zp", m.id);
                    tables.push(Table::Ints {
                        name: name.clone(),
                        elem: if overlay_quant.is_some_and(|q| q.wide) {
                            Elem::I64
                        } else {
                            Elem::I32
                        },
                        values: per_row,
                    });
                    name
                });
                let [row_ptr, col_index, values] = names;
                body.push(Stmt::Csr {
                    rows: m.rows,
                    dest_offset: m.dest_offset,
                    row_ptr,
                    col_index,
                    values,
                    fixed,
                    init,
                });
            }
        }
    }
    let operands = match quant {
        Some((_, act)) => Operands {
            x: act,
            y: Elem::I32,
            t: Elem::I16,
        },
        None => Operands::F32,
    };
    Kernel {
        name: format!("{}_mv", m.id),
        input_len: m.cols,
        uses_temp,
        operands,
        tables,
        body,
    }
}
