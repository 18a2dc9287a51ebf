//! Matrix lowering: each planned matrix becomes a small kernel in a language-neutral
//! statement form — loops with constant bounds, affine indices, literal or stored weights — that
//! the C and Rust printers turn into text. One lowering, two syntaxes, the same arithmetic order.

use crate::plan::{MatrixPlan, Operand, OverlayEncoding, Stage};
use crate::quant::fixed::Requant;
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
    /// A temp requantized by a rounding shift (see `StageQuant::shift_only`).
    pub shift_only: Option<u32>,
    /// A wide, shift-only temp saturated to int16 in 32 bits (one SSAT) after its 64-bit
    /// shift, instead of in 64: for tiled stages where [`StageQuant::shifted_fits_i32`].
    pub saturate_in_i32: bool,
}

impl Fixed {
    pub fn of(sq: &StageQuant) -> Fixed {
        Fixed {
            wide: sq.wide,
            requant: sq.requant,
            narrow: sq.narrow,
            shift_only: sq.shift_only,
            saturate_in_i32: false,
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
    /// A stored factor applied along one mode in register tiles: for every block of `ti`
    /// factor rows and `tr` columns r, `ti x tr` accumulators stay in registers while j runs:
    /// `out[out_base + i*out_i + r*out_r] (=|+=) Σ_j F[i][j] · in[in_base + j*in_j + r*in_r]`,
    /// all of it repeated by [`Tile::outer2`] if present.
    /// `weights` holds F packed block by block, j-major inside a block (row `a` of the block
    /// starting at row i0, column j, is at i0*q + j*rows_in_block + a), so each pass reads
    /// consecutive weights.
    Tile(Box<Tile>),
    /// CSR rows: for r < rows, `dst[offset + r] += Σ_{k in row r} val[k] · x[col[k]]`.
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

#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub weights: String,
    pub p: usize,
    pub q: usize,
    pub outer: usize,
    pub ti: usize,
    pub tr: usize,
    pub input: Array,
    /// Offset of element (j, r) = (0, 0) in the input (a region of the temp).
    pub in_base: usize,
    pub in_j: usize,
    pub in_r: usize,
    pub output: Array,
    pub out_base: usize,
    pub out_i: usize,
    pub out_r: usize,
    pub accumulate: bool,
    pub fixed: Option<Fixed>,
    /// Fixed point: a table of per-row starting values (the input zero point's share).
    pub init: Option<String>,
    /// Dual 16-bit MACs over groups of j (see [`Simd`]); None for one MAC per weight.
    pub simd: Option<Simd>,
    /// Helium vector dot products over chunks of j (see [`Mve`]); when set, `simd` is None and
    /// the weights are stored row-major.
    pub mve: Option<Mve>,
    /// A loop `r2` around the whole tile (a mode product on a middle mode); None for none.
    pub outer2: Option<Outer2>,
}

/// The second, outer loop of a stage: `count` steps of `r2`, each moving the input by
/// `in_stride` and the output by `out_stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer2 {
    pub count: usize,
    pub in_stride: usize,
    pub out_stride: usize,
}

impl Outer2 {
    /// The second loop of `stage`, if it has one.
    pub fn of(stage: &Stage) -> Option<Outer2> {
        (stage.outer2 > 1).then_some(Outer2 {
            count: stage.outer2,
            in_stride: stage.in_r2,
            out_stride: stage.out_r2,
        })
    }
}

impl Tile {
    /// The `r2 · in_stride` term of an input index, if the tile repeats.
    pub fn r2_in(&self) -> Option<(&'static str, usize)> {
        self.outer2.map(|o| ("r2", o.in_stride))
    }

    /// The `r2 · out_stride` term of an output index, if the tile repeats.
    pub fn r2_out(&self) -> Option<(&'static str, usize)> {
        self.outer2.map(|o| ("r2", o.out_stride))
    }
}

/// How a [`Tile`] feeds SMLAD/SMLALD: j runs in groups of `group` (2 for int16 weights, 4 for
/// int8 weights, unpacked with SXTB16), each row's group one 32-bit word of the packed table;
/// the last `q % group` steps (the tail) are single MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simd {
    pub group: usize,
    pub weight: Elem,
    pub input: Elem,
    /// The input is strided along j and contiguous along r (the first stage of a left-first
    /// order reads its input this way): the pairs (x_j, x_j+1) of two neighbouring columns are
    /// built from one word (int16: PKHBT and PKHTB of two rows' words) or one halfword
    /// (int8: two rows' halfwords joined, then SXTB16) of rows j and j+1.
    pub strided: bool,
}

impl Simd {
    /// Position in the packed word of weight `k` of a group. SXTB16 splits int8 bytes
    /// (b0, b1, b2, b3) into the pairs (b0, b2) and (b1, b3): against int8 inputs split the
    /// same way the natural order matches, against input pairs (x0, x1), (x2, x3) the
    /// weights are stored as (w0, w2, w1, w3).
    pub fn slot(&self, k: usize) -> usize {
        if self.weight == Elem::I8 && self.paired() {
            [0, 2, 1, 3][k]
        } else {
            k
        }
    }

    /// The input arrives as 16-bit pairs (int16 words).
    pub fn pairs_input(&self) -> bool {
        self.input == Elem::I16
    }

    /// The MACs take consecutive j in pairs: int16 inputs, and every strided input.
    pub fn paired(&self) -> bool {
        self.pairs_input() || self.strided
    }

    /// The SIMD form of a stage, if its operands allow one: a contiguous input along j, or
    /// one strided along j and contiguous along r.
    pub fn for_stage(
        q: usize,
        in_j: usize,
        in_r: usize,
        weight: Elem,
        input: Elem,
    ) -> Option<Simd> {
        let group = match (weight, input) {
            (Elem::I16, Elem::I16) => 2,
            (Elem::I8, Elem::I8 | Elem::I16) => 4,
            _ => return None,
        };
        if q < group {
            return None;
        }
        let strided = match (in_j, in_r) {
            (1, _) => false,
            (_, 1) => true,
            _ => return None,
        };
        Some(Simd {
            group,
            weight,
            input,
            strided,
        })
    }
}

/// How a [`Tile`] uses Helium (MVE), in one of two forms.
///
/// Integer (`by_rows` false): j runs in chunks of `lanes` (16 int8 lanes, or 8 int16 lanes
/// with int8 operands sign-extended by widening loads), each row's chunk and each column's
/// chunk one vector load, each pair one VMLADAVA (VMLALDAVA for int64 accumulators) into the
/// scalar accumulator; a last partial chunk loads with a tail predicate (zeroed lanes, nothing
/// read past the end). The weights stay row-major, so a row's chunk is contiguous.
///
/// Float (`by_rows`): Helium has no float dot product into a scalar, so the vector runs across
/// four factor rows instead: per j one vector load of the block's four weights (packed j-major,
/// as the scalar tile reads them) and, per column, one VFMA with the column's input as a
/// scalar operand into the column's vector accumulator; the four outputs are stored at once
/// (a scatter store where the rows are not adjacent in the output). Any input layout works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mve {
    pub lanes: usize,
    pub weight: Elem,
    pub input: Elem,
    pub by_rows: bool,
}

impl Mve {
    /// The Helium form of a stage (`p` factor rows), if its operands allow one: integer
    /// weights and inputs with the input contiguous along j (int64 accumulators take 16-bit
    /// lanes: there is no 64-bit dot product of int8 lanes), or float with at least four rows
    /// (a block of fewer rows loads and stores under a tail predicate).
    pub fn for_stage(p: usize, in_j: usize, weight: Elem, input: Elem, wide: bool) -> Option<Mve> {
        let int = |e: Elem| matches!(e, Elem::I8 | Elem::I16);
        if weight == Elem::F32 && input == Elem::F32 {
            return (p >= 4).then_some(Mve {
                lanes: 4,
                weight,
                input,
                by_rows: true,
            });
        }
        if in_j != 1 || !int(weight) || !int(input) {
            return None;
        }
        let lanes = if weight == Elem::I8 && input == Elem::I8 && !wide {
            16
        } else {
            8
        };
        Some(Mve {
            lanes,
            weight,
            input,
            by_rows: false,
        })
    }

    /// The runtime's name of a vector load of `elem` values into this form's lanes, with a
    /// tail predicate when `partial`.
    pub fn load(&self, elem: Elem, partial: bool) -> &'static str {
        match (elem, self.lanes, partial) {
            (Elem::F32, _, false) => "vld_f32x4",
            (Elem::F32, _, true) => "vld_f32x4_n",
            (Elem::I8, 16, false) => "vld_s8x16",
            (Elem::I8, 16, true) => "vld_s8x16_n",
            (Elem::I8, _, false) => "vld_s8x8",
            (Elem::I8, _, true) => "vld_s8x8_n",
            (_, _, false) => "vld_s16x8",
            (_, _, true) => "vld_s16x8_n",
        }
    }

    /// The runtime's name of the dot product into an accumulator of `acc`.
    pub fn dot(&self, acc: Elem) -> &'static str {
        match (self.lanes, acc) {
            (_, Elem::F32) => "vfma_n_f32x4",
            (16, _) => "vdot_s8x16",
            (_, Elem::I64) => "vdot_s16x8_s64",
            _ => "vdot_s16x8",
        }
    }

    /// The runtime's name of the vector type of this form's lanes.
    pub fn vector_type(&self) -> &'static str {
        match (self.weight, self.lanes) {
            (Elem::F32, _) => "f32x4_t",
            (_, 16) => "i8x16_t",
            _ => "i16x8_t",
        }
    }
}

/// `n` split into as few blocks of at most `max` as possible, of balanced sizes (differing by
/// at most one): `(blocks, size, first index)` per size, larger blocks first.
pub fn blocks(n: usize, max: usize) -> Vec<(usize, usize, usize)> {
    if n == 0 {
        return Vec::new();
    }
    let k = n.div_ceil(max.max(1));
    let (base, extra) = (n / k, n % k);
    let mut out = Vec::new();
    if extra > 0 {
        out.push((extra, base + 1, 0));
    }
    if k > extra {
        out.push((k - extra, base, extra * (base + 1)));
    }
    out
}

/// F (p x q, row-major) packed for [`Stmt::Tile`]: the [`blocks`] of at most `ti` rows; inside
/// a block j-major, or for SIMD group-major with each row's group consecutive (in
/// [`Simd::slot`] order).
pub fn pack_tiles<T: Copy + Default>(
    values: &[T],
    p: usize,
    q: usize,
    ti: usize,
    simd: Option<Simd>,
) -> Vec<T> {
    let group = simd.map_or(1, |s| s.group);
    let mut out = Vec::with_capacity(values.len());
    for (count, rows, first) in blocks(p, ti) {
        for blk in 0..count {
            let i0 = first + blk * rows;
            for g in 0..q / group {
                for a in 0..rows {
                    let mut word = vec![T::default(); group];
                    for k in 0..group {
                        let slot = simd.map_or(k, |s| s.slot(k));
                        word[slot] = values[(i0 + a) * q + g * group + k];
                    }
                    out.extend(word);
                }
            }
            // The tail, j-major as in the scalar layout.
            for j in q / group * group..q {
                for a in 0..rows {
                    out.push(values[(i0 + a) * q + j]);
                }
            }
        }
    }
    out
}

/// Estimated instructions of a tiled stage (the cost model picking the tile). Per pass over
/// j (one step, or one group of a SIMD pass): the loads of each row's weights and each
/// column's inputs (and their SXTB16 unpacking), the MACs, `PER_J` of loop overhead, and
/// `SPILL` for every register the pass needs beyond the core's (accumulators, the weights of
/// all rows, one column's inputs and three pointers); per block, the outputs' stores (and
/// loads when accumulating) and `PER_BLOCK` of setup. The constants were fitted to the
/// emulator's instruction counts of the benchmark layers on Cortex-M4. A stage's second loop
/// (`outer2`) repeats the whole tile, so it scales every tile's cost alike and is left out.
pub fn tile_cost(p: usize, q: usize, outer: usize, tile: [usize; 2], form: TileForm) -> usize {
    const PER_J: usize = 3;
    const PER_BLOCK: usize = 8;
    const SPILL: usize = 8;
    let TileForm {
        wide,
        accumulate,
        simd,
        float,
        mve,
    } = form;
    let store = if accumulate { 3 } else { 1 };
    let mut cost = 0;
    for (nb, rows, _) in blocks(p, tile[0]) {
        for (nr, cols, _) in blocks(outer, tile[1]) {
            let accs = rows * cols * if wide { 2 } else { 1 };
            // (instructions, registers) of one pass, and the number of passes.
            let ((pass, regs), passes) = match (mve, simd) {
                // Per chunk: one vector load per row and per column, one dot product per
                // pair. Eight Q registers hold the loaded vectors; the accumulators (even
                // registers for VMLADAVA, pairs for VMLALDAVA) and pointers the core registers.
                // By rows (float): blocks of at most four rows (one vector); per j one weight
                // vector, and per column a scalar load and a VFMA into the column's vector
                // accumulator.
                (Some(v), _) if v.by_rows => {
                    if rows > 4 {
                        return usize::MAX;
                    }
                    let pass = 1 + 2 * cols + PER_J;
                    let q_spill = (1 + cols).saturating_sub(8);
                    ((pass + SPILL * q_spill, 3 + cols), q)
                }
                (Some(v), _) => {
                    let pass = rows + cols + rows * cols + PER_J;
                    let q_spill = (rows + cols).saturating_sub(8);
                    ((pass + SPILL * q_spill, accs + 3), q.div_ceil(v.lanes))
                }
                (None, Some(s)) => {
                    let unpack_w = if s.group == 4 { 2 } else { 0 };
                    let macs = rows * cols * s.group / 2;
                    // Per group: each column's input words, and their unpacking or pairing.
                    let (x_cost, x_regs) = if s.strided {
                        // Per pair of j and two columns: two loads, then ORR + 2 SXTB16 (int8)
                        // or PKHBT + PKHTB (int16); a lone column pairs with two loads + PKHBT.
                        let per_two = if s.input == Elem::I8 { 5 } else { 4 };
                        let per_pair = cols / 2 * per_two + cols % 2 * 3;
                        (per_pair * s.group / 2, 4)
                    } else if s.group == 4 && s.pairs_input() {
                        (2 * cols, 2)
                    } else if s.group == 4 {
                        (3 * cols, 2)
                    } else {
                        (cols, 1)
                    };
                    let pass = rows * (1 + unpack_w) + x_cost + macs + PER_J;
                    let w_regs = if s.group == 4 { 2 } else { 1 };
                    ((pass, accs + rows * w_regs + x_regs + 3), q / s.group)
                }
                (None, None) => {
                    let mac = if wide { 2 } else { 1 };
                    let pass = rows + cols + mac * rows * cols + PER_J;
                    ((pass, accs + rows + 1 + 3), q)
                }
            };
            // Float accumulators and operands sit in the 32 single-precision registers, the
            // pointers in core registers; integers share the 14 core registers.
            let limit = if float { 32 + 3 } else { 14 };
            let spill = SPILL * regs.saturating_sub(limit);
            let tail = match (mve, simd) {
                (None, Some(s)) => q % s.group * (rows + cols + rows * cols),
                _ => 0,
            };
            let outputs = match mve {
                Some(v) if v.by_rows => cols,
                _ => rows * cols,
            };
            let block = passes * (pass + spill) + tail + store * outputs + PER_BLOCK;
            cost += nb * nr * block;
        }
    }
    cost
}

/// What of a tiled stage's inner loop the cost model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TileForm {
    /// 64-bit integer accumulators (two registers each).
    pub wide: bool,
    /// Outputs are added to the destination (loaded and stored).
    pub accumulate: bool,
    /// Dual 16-bit MACs over groups of j.
    pub simd: Option<Simd>,
    /// Float accumulators and operands (in the FPU's registers).
    pub float: bool,
    /// Helium vector dot products over chunks of j.
    pub mve: Option<Mve>,
}

/// The cheapest tile within the core's limit `max`; 64-bit accumulators take two registers, so
/// their tiles hold half as many.
pub fn choose_tile(
    p: usize,
    q: usize,
    outer: usize,
    max: [usize; 2],
    form: TileForm,
) -> [usize; 2] {
    let budget = max[0] * max[1] / if form.wide { 2 } else { 1 };
    let mut best = [1, 1];
    let mut best_cost = usize::MAX;
    for ti in 1..=max[0].min(p.max(1)) {
        for tr in 1..=max[1].min(outer.max(1)) {
            if ti * tr > budget.max(1) {
                continue;
            }
            let c = tile_cost(p, q, outer, [ti, tr], form);
            if c < best_cost {
                best_cost = c;
                best = [ti, tr];
            }
        }
    }
    best
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
    input_elem: Elem,
    quant: Option<&StageQuant>,
    dest_offset: usize,
    tables: &mut Vec<Table>,
) -> Vec<Stmt> {
    let out_base = stage.out_offset
        + if stage.output == Operand::Dest {
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
    if !stage.unrolled {
        let wide = fixed.is_some_and(|f| f.wide);
        let weight_elem = match &values {
            Values::Int(weight, _) => *weight,
            Values::F32(_) => Elem::F32,
        };
        let mve = stage
            .mve
            .then(|| Mve::for_stage(stage.p, stage.in_j, weight_elem, input_elem, wide))
            .flatten();
        let simd = match &values {
            Values::Int(weight, _) if stage.simd && mve.is_none() => {
                Simd::for_stage(stage.q, stage.in_j, stage.in_r, *weight, input_elem)
            }
            _ => None,
        };
        let tile = choose_tile(
            stage.p,
            stage.q,
            stage.outer,
            stage.tile,
            TileForm {
                wide,
                accumulate: stage.accumulate,
                simd,
                float: fixed.is_none(),
                mve,
            },
        );
        if !tables.iter().any(|t| t.name() == stage.factor) {
            let ti = tile[0];
            tables.push(match &values {
                Values::F32(v) => Table::Floats {
                    name: stage.factor.clone(),
                    values: pack_tiles(v, stage.p, stage.q, ti, None),
                },
                // Helium loads each row's chunk: the blocks are consecutive rows, so
                // row-major inside them is the factor as it is.
                Values::Int(elem, v) if mve.is_some() => Table::Ints {
                    name: stage.factor.clone(),
                    elem: *elem,
                    values: v.clone(),
                },
                Values::Int(elem, v) => Table::Ints {
                    name: stage.factor.clone(),
                    elem: *elem,
                    values: pack_tiles(v, stage.p, stage.q, ti, simd),
                },
            });
            if !offsets.is_empty() {
                tables.push(Table::Ints {
                    name: format!("{}_zp", stage.factor),
                    elem: offset_elem,
                    values: offsets.iter().map(|&v| v as i32).collect(),
                });
            }
        }
        return vec![Stmt::Tile(Box::new(Tile {
            weights: stage.factor.clone(),
            p: stage.p,
            q: stage.q,
            outer: stage.outer,
            ti: tile[0],
            tr: tile[1],
            input,
            in_base: stage.in_offset,
            in_j: stage.in_j,
            in_r: stage.in_r,
            output,
            out_base,
            out_i: stage.out_i,
            out_r: stage.out_r,
            accumulate,
            // Only tiles saturate int64 temporaries in 32 bits: GCC's code for the unrolled,
            // straight-line sums measured 0.6% slower with it (basic_motions KP int16 on the
            // M4), while tiles gain 3-8%.
            fixed: quant.map(|q| Fixed {
                saturate_in_i32: q.shifted_fits_i32(),
                ..Fixed::of(q)
            }),
            init: (!offsets.is_empty()).then(|| format!("{}_zp", stage.factor)),
            simd,
            mve,
            outer2: Outer2::of(stage),
        }))];
    }
    // Unrolled: the weights become literals, one sum per output row (zero weights vanish),
    // inside the loops over r and r2 that have more than one step.
    // (variable, count, input stride, output stride), innermost first.
    let loops: Vec<(&'static str, usize, usize, usize)> = [
        ("r", stage.outer, stage.in_r, stage.out_r),
        ("r2", stage.outer2, stage.in_r2, stage.out_r2),
    ]
    .into_iter()
    .filter(|l| l.1 > 1)
    .collect();
    let in_terms: Vec<(&'static str, usize)> = loops.iter().map(|l| (l.0, l.2)).collect();
    let out_terms: Vec<(&'static str, usize)> = loops.iter().map(|l| (l.0, l.3)).collect();
    let sums: Vec<Stmt> = (0..stage.p)
        .filter_map(|i| {
            let terms: Vec<(Coef, Access)> = (0..stage.q)
                .filter_map(|j| {
                    let w = values.get(i * stage.q + j);
                    (!w.is_zero()).then(|| {
                        let idx = Affine::new(stage.in_offset + j * stage.in_j, &in_terms);
                        (Coef::Literal(w), Access::flat(input.clone(), idx))
                    })
                })
                .collect();
            let offset = offsets.get(i).copied().unwrap_or(0);
            if terms.is_empty() && offset == 0 && accumulate {
                return None;
            }
            let dst = Affine::new(out_base + i * stage.out_i, &out_terms);
            Some(Stmt::Sum {
                dst: Access::flat(output.clone(), dst),
                accumulate,
                terms,
                fixed,
                offset,
            })
        })
        .collect();
    loops.iter().fold(sums, |body, &(var, count, _, _)| {
        vec![Stmt::Loop { var, count, body }]
    })
}

/// Lowers one planned matrix to its kernel; `quant` makes it a fixed-point kernel whose input
/// codes have element type `act`.
pub fn lower_matrix(m: &MatrixPlan, quant: Option<(&MatrixQuant, Elem)>) -> Kernel {
    let mut tables = Vec::new();
    let mut body = Vec::new();
    let uses_temp = m.product.temp_len().is_some();
    for (k, s) in m.product.stages().iter().enumerate() {
        let sq = quant.map(|(q, _)| &q.stages[k]);
        // Element type of the stage's input: the kernel's x, or the int16 / float temp.
        let input_elem = match (s.input, quant) {
            (_, None) => Elem::F32,
            (Operand::Input, Some((_, act))) => act,
            (_, Some(_)) => Elem::I16,
        };
        body.extend(lower_stage(s, input_elem, sq, m.dest_offset, &mut tables));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_balanced_and_cover_everything() {
        assert_eq!(blocks(16, 6), vec![(1, 6, 0), (2, 5, 6)]);
        assert_eq!(blocks(16, 4), vec![(4, 4, 0)]);
        assert_eq!(blocks(3, 8), vec![(1, 3, 0)]);
        for n in 1..40 {
            for max in 1..9 {
                let b = blocks(n, max);
                assert_eq!(b.iter().map(|(c, s, _)| c * s).sum::<usize>(), n);
                assert!(b.iter().all(|&(_, s, _)| s <= max));
            }
        }
    }

    #[test]
    fn packing_is_a_permutation_in_the_documented_order() {
        let (p, q) = (5, 4);
        let v: Vec<i32> = (0..(p * q) as i32).collect();
        // Blocks of 3 and 2 rows; j-major inside: F[0][0], F[1][0], F[2][0], F[0][1], ...
        let packed = pack_tiles(&v, p, q, 3, None);
        assert_eq!(&packed[..6], &[0, 4, 8, 1, 5, 9]);
        let mut sorted = packed.clone();
        sorted.sort();
        assert_eq!(sorted, v);
        // int8 weights against int16 inputs: each row's group of 4 as (w0, w2, w1, w3).
        let simd = Simd::for_stage(q, 1, 1, Elem::I8, Elem::I16).unwrap();
        let packed = pack_tiles(&v, p, q, 3, Some(simd));
        assert_eq!(&packed[..8], &[0, 2, 1, 3, 4, 6, 5, 7]);
        assert!(
            Simd::for_stage(q, 2, 2, Elem::I8, Elem::I16).is_none(),
            "strided along both j and r"
        );
        // Strided along j, contiguous along r: pairs (x_j, x_j+1), so int8 weights are stored
        // as (w0, w2, w1, w3) whatever the input's type.
        let strided = Simd::for_stage(q, 16, 1, Elem::I8, Elem::I8).unwrap();
        assert!(strided.strided && strided.paired());
        assert_eq!(&pack_tiles(&v, p, q, 3, Some(strided))[..4], &[0, 2, 1, 3]);
        assert!(
            Simd::for_stage(3, 1, 1, Elem::I8, Elem::I8).is_none(),
            "q below one group"
        );
        // q = 6 with groups of 4: one word per row, then the tail j = 4, 5 j-major.
        let simd = Simd::for_stage(6, 1, 1, Elem::I8, Elem::I8).unwrap();
        let w: Vec<i32> = (0..12).collect();
        assert_eq!(
            pack_tiles(&w, 2, 6, 2, Some(simd)),
            [0, 1, 2, 3, 6, 7, 8, 9, 4, 10, 5, 11]
        );
    }

    #[test]
    fn the_cost_model_prefers_big_tiles_and_respects_registers() {
        let float = TileForm {
            float: true,
            ..TileForm::default()
        };
        assert_eq!(choose_tile(16, 16, 16, [4, 6], float), [4, 6]);
        let wide = TileForm {
            wide: true,
            ..TileForm::default()
        };
        let t = choose_tile(16, 16, 16, [2, 3], wide);
        assert!(
            t[0] * t[1] <= 3,
            "{t:?}: int64 accumulators take two registers"
        );
        assert_eq!(choose_tile(1, 8, 1, [4, 6], float), [1, 1]);
        // int8 against int8 with SXTB16: each row keeps two unpacked words live, so a 2 x 3
        // tile (6 + 4 + 2 + 3 registers) spills and 2 x 2 does not.
        let int8 = TileForm {
            simd: Simd::for_stage(16, 1, 1, Elem::I8, Elem::I8),
            ..TileForm::default()
        };
        assert_eq!(choose_tile(16, 16, 16, [2, 3], int8), [2, 2]);
    }

    /// A stage with a second loop: unrolled, the sums sit in `r2 { r { .. } }` with both
    /// terms in every index; stored, the tile carries the loop for the printer.
    #[test]
    fn a_second_loop_wraps_the_stage() {
        let stage = Stage {
            factor: "f".to_owned(),
            p: 2,
            q: 2,
            values: vec![1.0, 2.0, 3.0, 4.0],
            unrolled: true,
            outer: 3,
            input: Operand::Temp,
            in_offset: 0,
            in_j: 3,
            in_r: 1,
            output: Operand::Dest,
            out_offset: 0,
            out_i: 3,
            out_r: 1,
            outer2: 4,
            in_r2: 6,
            out_r2: 6,
            accumulate: true,
            tile: [2, 3],
            simd: false,
            mve: false,
        };
        let body = lower_stage(&stage, Elem::F32, None, 0, &mut Vec::new());
        let [Stmt::Loop {
            var: "r2",
            count: 4,
            body,
        }] = &body[..]
        else {
            panic!("{body:?}");
        };
        let [Stmt::Loop {
            var: "r",
            count: 3,
            body,
        }] = &body[..]
        else {
            panic!("{body:?}");
        };
        let Stmt::Sum { dst, terms, .. } = &body[1] else {
            panic!("{body:?}");
        };
        assert_eq!(
            dst.index,
            Index::Flat(Affine::new(3, &[("r", 1), ("r2", 6)]))
        );
        assert_eq!(
            terms[1].1.index,
            Index::Flat(Affine::new(3, &[("r", 1), ("r2", 6)]))
        );
        let stored = Stage {
            unrolled: false,
            ..stage
        };
        let body = lower_stage(&stored, Elem::F32, None, 0, &mut Vec::new());
        let [Stmt::Tile(t)] = &body[..] else {
            panic!("{body:?}");
        };
        assert_eq!(
            t.outer2,
            Some(Outer2 {
                count: 4,
                in_stride: 6,
                out_stride: 6
            })
        );
    }
}
