//! Stage 3: the plan. For every weight matrix: the multiplication order, which factors are
//! unrolled, how the doping overlay is encoded; for the model: the buffers of the state struct and
//! the constants each layer needs. The plan is language-neutral; `lower` turns it into the
//! program both emitters print.

pub mod shapes;

use serde::Serialize;

use crate::model::cells::sigmoid;
use crate::model::{factor_name, Cell, Layer, Model, SparseMatrix, Weight, WeightForm};
use crate::spec::{Activation, Activations, LayerKind, Optimize, Precision};
use crate::target::{PlanRules, Target};
use shapes::{Factors, KronOrder, KronShape};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub name: String,
    pub target: String,
    /// The target's C flags and core macros (the generated C checks the core it is built for).
    pub cflags: Vec<String>,
    pub arch_macros: Vec<String>,
    /// The core has Helium (MVE): the runtime's vector cell updates are worth emitting.
    #[serde(skip_serializing_if = "is_false")]
    pub helium: bool,
    pub precision: Precision,
    /// How f32 code evaluates sigmoid and tanh.
    pub activations: Activations,
    /// What the plan optimized for, and the rules it ran with ([`rules_for`]).
    pub optimize: Optimize,
    pub rules: PlanRules,
    pub input_features: usize,
    pub steps: usize,
    pub output_size: usize,
    pub layers: Vec<LayerPlan>,
    /// Every array of the state struct, in declaration order.
    pub buffers: Vec<Buffer>,
}

/// An array in the caller-owned state struct.
#[derive(Debug, Clone, Serialize)]
pub struct Buffer {
    pub name: String,
    pub len: usize,
    /// Recurrent state (zeroed by reset and carried across steps), as opposed to scratch.
    pub recurrent: bool,
    pub role: BufferRole,
}

impl Buffer {
    /// Bytes of the array at its element size for `precision`.
    pub fn bytes(&self, precision: Precision) -> usize {
        self.len * self.role.elem_bytes(precision)
    }
}

/// What a buffer holds, which decides its element type per precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferRole {
    /// A layer's output vector (hidden state, dense output): float, int8 or int16.
    Activation,
    /// Sums of matrix products and biases: float or int32.
    Accumulator,
    /// LSTM cell state: float or int16.
    CellState,
    /// The KP / low-rank intermediate product: float or int16.
    Temp,
}

/// Where a layer reads its input from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The model input `x` of the step.
    ModelInput,
    /// A buffer of the state struct.
    Buffer(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    pub index: usize,
    pub kind: LayerKind,
    pub inputs: usize,
    pub units: usize,
    pub input: Source,
    /// The state buffer holding this layer's output (its hidden state for recurrent layers).
    /// None for a final dense layer, which writes the caller's `y` directly.
    pub output: Option<String>,
    pub matrices: Vec<MatrixPlan>,
    pub constants: LayerConstants,
}

/// Per-layer constants, folded on the host where the math allows.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "cell", rename_all = "snake_case")]
pub enum LayerConstants {
    /// b_ih + b_hh, folded: the LSTM adds them unconditionally.
    Lstm {
        bias: Vec<f32>,
        cell_state: String,
        gates: String,
    },
    /// GRU keeps the two biases apart: b_hn sits inside r ⊙ (W_hn h + b_hn).
    Gru {
        bias_ih: Vec<f32>,
        bias_hh: Vec<f32>,
        gates: String,
    },
    FastGrnn {
        b_z: Vec<f32>,
        b_h: Vec<f32>,
        /// sigmoid(zeta), sigmoid(nu), evaluated on the host.
        zeta: f32,
        nu: f32,
        gates: String,
    },
    Dense {
        bias: Vec<f32>,
        activation: Activation,
        /// Fixed point only: the int32 buffer the products accumulate into before the
        /// activation narrows them into the output.
        acc: Option<String>,
    },
}

/// One weight matrix and how `y += W x` is computed for it.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixPlan {
    /// Unique identifier, e.g. `l0_w_ih`.
    pub id: String,
    pub field: &'static str,
    pub form: &'static str,
    pub rows: usize,
    pub cols: usize,
    /// The buffer the product accumulates into and the offset of row 0 in it.
    pub dest: String,
    pub dest_offset: usize,
    pub product: Product,
    pub overlay: Option<OverlayPlan>,
    pub macs: usize,
    pub dense_macs: usize,
    pub stored_params: usize,
    pub dense_params: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Product {
    Dense {
        stage: Stage,
    },
    Kron {
        shape: KronShape,
        order: KronOrder,
        /// Elements of the intermediate product T.
        temp_len: usize,
        /// The alternative order's MACs, for the report.
        other_order_macs: usize,
        /// Hybrid KP: the first rows of W kept dense (their stage comes first); 0 for none.
        #[serde(skip_serializing_if = "is_zero")]
        dense_rows: usize,
        /// One stage per factor (after the dense rows' stage), in execution order.
        stages: Vec<Stage>,
    },
    /// Three or more factors: one mode product per factor, each intermediate in its own
    /// region of the temp (two regions, used in turn).
    MultiKron {
        factors: Factors,
        /// The factors (0-based) in the order they are applied: the cheapest permutation.
        order: Vec<usize>,
        /// Elements of the temp: both regions.
        temp_len: usize,
        /// MACs of [`Product::other_order`], for the report: the single-loop scheme not taken
        /// (trailing or leading), or the cheaper of the two when a permutation beats both.
        other_order_macs: usize,
        /// Hybrid KP: the first rows of W kept dense (their stage comes first); 0 for none.
        #[serde(skip_serializing_if = "is_zero")]
        dense_rows: usize,
        stages: Vec<Stage>,
    },
    /// T = V x (r values), then y += U T.
    LowRank {
        rank: usize,
        stages: Vec<Stage>,
    },
    /// Only the overlay: a pruned weight stored as its non-zeros.
    Sparse,
}

impl Product {
    /// The stages of the factored product, in execution order.
    pub fn stages(&self) -> &[Stage] {
        match self {
            Product::Dense { stage } => std::slice::from_ref(stage),
            Product::Kron { stages, .. }
            | Product::MultiKron { stages, .. }
            | Product::LowRank { stages, .. } => stages,
            Product::Sparse => &[],
        }
    }

    pub fn stages_mut(&mut self) -> &mut [Stage] {
        match self {
            Product::Dense { stage } => std::slice::from_mut(stage),
            Product::Kron { stages, .. }
            | Product::MultiKron { stages, .. }
            | Product::LowRank { stages, .. } => stages,
            Product::Sparse => &mut [],
        }
    }

    /// The product in words, as `kpgen explain` shows it.
    pub fn describe(&self) -> String {
        match self {
            Product::Dense { .. } => "dense mat-vec".to_owned(),
            Product::Kron {
                shape,
                order,
                temp_len,
                other_order_macs,
                dense_rows,
                ..
            } => {
                let how = match order {
                    KronOrder::RightFirst => "T = X·Bᵀ first, then A·T",
                    KronOrder::LeftFirst => "T = A·X first, then T·Bᵀ",
                };
                let macs = self.kron_macs();
                format!(
                    "{}kron A {}x{} ⊗ B {}x{}, order {} ({how}), temp {temp_len} values, {macs} MACs (other order {other_order_macs})",
                    hybrid(*dense_rows),
                    shape.m1,
                    shape.n1,
                    shape.m2,
                    shape.n2,
                    order.as_str()
                )
            }
            Product::MultiKron {
                factors,
                order,
                temp_len,
                other_order_macs,
                dense_rows,
                ..
            } => {
                let names = |order: &[usize]| {
                    order
                        .iter()
                        .map(|&k| factor_name(k))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let macs = self.kron_macs();
                let (how, other) = match self.other_order() {
                    Some(other) if in_place(order) => (
                        ", in place: the cheapest of all orders",
                        format!(
                            "{other_order_macs}: {}, the cheaper single-loop order",
                            names(&other)
                        ),
                    ),
                    _ => ("", other_order_macs.to_string()),
                };
                format!(
                    "{}kron {}, order {} (one mode product each{how}), temp {temp_len} values in two regions, {macs} MACs (other order {other})",
                    hybrid(*dense_rows),
                    factors.text(),
                    names(order)
                )
            }
            Product::LowRank { rank, .. } => format!("low rank {rank}: T = V·x, then y += U·T"),
            Product::Sparse => "overlay only (pruned weight)".to_owned(),
        }
    }

    /// Three or more factors: the order whose MACs `other_order_macs` records. The other
    /// single-loop scheme (trailing `K … 1`, leading `1 … K`) when one was taken; when a
    /// permutation beat both, the cheaper of the two (ties: trailing, as the plan would).
    pub fn other_order(&self) -> Option<Vec<usize>> {
        let Product::MultiKron { factors, order, .. } = self else {
            return None;
        };
        let [trailing, leading] = single_loop_orders(factors.dims.len());
        Some(if *order == trailing {
            leading
        } else if *order == leading {
            trailing
        } else if factors.order_macs(&leading) < factors.order_macs(&trailing) {
            leading
        } else {
            trailing
        })
    }

    /// Hybrid KP: the first rows of W kept dense (0 for every other product).
    pub fn dense_rows(&self) -> usize {
        match self {
            Product::Kron { dense_rows, .. } | Product::MultiKron { dense_rows, .. } => *dense_rows,
            _ => 0,
        }
    }

    /// MACs of the stages after a hybrid product's dense rows: the Kronecker part, comparable
    /// with `other_order_macs`.
    pub fn kron_macs(&self) -> usize {
        self.stages()
            .iter()
            .skip(usize::from(self.dense_rows() > 0))
            .map(Stage::macs)
            .sum()
    }

    /// Elements of the intermediate vector, if the product has one.
    pub fn temp_len(&self) -> Option<usize> {
        match self {
            Product::Kron { temp_len, .. } | Product::MultiKron { temp_len, .. } => Some(*temp_len),
            Product::LowRank { rank, .. } => Some(*rank),
            Product::Dense { .. } | Product::Sparse => None,
        }
    }
}

/// Which vector a stage reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// The matrix's input vector.
    Input,
    /// The shared KP temporary.
    Temp,
    /// The destination buffer (at `dest_offset`).
    Dest,
}

/// Applying one stored matrix F (p x q) along one mode:
/// for r2 < outer2, r < outer, i < p:
/// `out[out_offset + i*out_i + r*out_r + r2*out_r2]
///   (=|+=) Σ_j F[i][j] · in[in_offset + j*in_j + r*in_r + r2*in_r2]`.
/// A dense mat-vec is one stage with outer = outer2 = 1; a KP product is one stage per factor.
/// The second loop (`outer2`) is only needed by a mode product on a middle mode of a tensor
/// (a permuted product of three or more factors); every other stage has outer2 = 1. The
/// offsets place a stage inside its operand: a region of the shared temp (so a product of more
/// than two stages can keep two intermediates apart), or rows past the matrix's `dest_offset`.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// Name of the stored matrix (its array when not unrolled).
    pub factor: String,
    pub p: usize,
    pub q: usize,
    #[serde(skip)]
    pub values: Vec<f32>,
    /// Weights become literals in straight-line code (zero weights vanish).
    pub unrolled: bool,
    pub outer: usize,
    pub input: Operand,
    #[serde(skip_serializing_if = "is_zero")]
    pub in_offset: usize,
    pub in_j: usize,
    pub in_r: usize,
    pub output: Operand,
    #[serde(skip_serializing_if = "is_zero")]
    pub out_offset: usize,
    pub out_i: usize,
    pub out_r: usize,
    /// The second, outer loop: its count (1 for none) and the input and output strides per
    /// step. Left out of the JSON when unused, so plans without one read as before.
    #[serde(skip_serializing_if = "is_one")]
    pub outer2: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub in_r2: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub out_r2: usize,
    pub accumulate: bool,
    /// Register tile [rows of the factor, columns r] of a stored (not unrolled) stage.
    pub tile: [usize; 2],
    /// Integer build on a core with the DSP extension: dual 16-bit MACs (SMLAD) where the
    /// input is contiguous along the reduction.
    pub simd: bool,
    /// A core with Helium (MVE): the stage takes a Helium form where its operands allow one
    /// (`lower::kernel::Mve::for_stage`). Left out of the JSON when unset.
    #[serde(skip_serializing_if = "is_false")]
    pub mve: bool,
}

impl Stage {
    pub fn macs(&self) -> usize {
        self.outer2 * self.outer * self.p * self.q
    }

    /// Elements of its output operand the stage spans from `out_offset` (one past the last
    /// written).
    pub fn output_span(&self) -> usize {
        if self.p == 0 || self.outer == 0 || self.outer2 == 0 {
            return 0;
        }
        (self.p - 1) * self.out_i
            + (self.outer - 1) * self.out_r
            + (self.outer2 - 1) * self.out_r2
            + 1
    }

    /// Where output element (i, r, r2) goes in the output operand, `base` being the matrix's
    /// `dest_offset` for the destination and 0 for the temp.
    pub fn out_index(&self, base: usize, i: usize, r: usize, r2: usize) -> usize {
        base + self.out_offset + i * self.out_i + r * self.out_r + r2 * self.out_r2
    }

    /// Where input element (j, r, r2) is in the input operand.
    pub fn in_index(&self, j: usize, r: usize, r2: usize) -> usize {
        self.in_offset + j * self.in_j + r * self.in_r + r2 * self.in_r2
    }

    /// The stage in f64, as documented above; `base` is the output operand's start (the
    /// matrix's `dest_offset` for the destination, 0 for the temp).
    pub fn run_f64(&self, input: &[f64], out: &mut [f64], base: usize) {
        for r2 in 0..self.outer2 {
            for r in 0..self.outer {
                for i in 0..self.p {
                    let mut acc = 0.0;
                    for j in 0..self.q {
                        acc += self.values[i * self.q + j] as f64 * input[self.in_index(j, r, r2)];
                    }
                    let o = self.out_index(base, i, r, r2);
                    if self.accumulate {
                        out[o] += acc;
                    } else {
                        out[o] = acc;
                    }
                }
            }
        }
    }
}

/// The two single-loop orders of a K-factor product: trailing (`K … 1`) and leading (`1 … K`).
fn single_loop_orders(k: usize) -> [Vec<usize>; 2] {
    [(0..k).rev().collect(), (0..k).collect()]
}

/// Whether a multi-factor `order` is planned in place (neither trailing nor leading).
pub fn in_place(order: &[usize]) -> bool {
    !single_loop_orders(order.len()).iter().any(|o| o == order)
}

/// The words `explain` puts before a hybrid product.
fn hybrid(dense_rows: usize) -> String {
    if dense_rows == 0 {
        String::new()
    } else {
        let rows = if dense_rows == 1 { "row" } else { "rows" };
        format!("hybrid: {dense_rows} dense {rows} (stage 1), then rows {dense_rows}.. as ")
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexType {
    U8,
    U16,
    U32,
}

impl IndexType {
    /// The narrowest unsigned type holding `max`.
    pub fn for_max(max: usize) -> IndexType {
        if max <= u8::MAX as usize {
            IndexType::U8
        } else if max <= u16::MAX as usize {
            IndexType::U16
        } else {
            IndexType::U32
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            IndexType::U8 => 1,
            IndexType::U16 => 2,
            IndexType::U32 => 4,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum OverlayEncoding {
    /// `y[r] += v * x[c]` statements with constant indices: no index storage at all.
    StraightLine,
    /// Compressed sparse rows with the narrowest index types.
    Csr {
        row_ptr: IndexType,
        col_index: IndexType,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct OverlayPlan {
    pub nnz: usize,
    pub density: f64,
    pub encoding: OverlayEncoding,
    pub index_bytes: usize,
    /// (row, col, value), sorted by row then column.
    #[serde(skip)]
    pub entries: Vec<(usize, usize, f32)>,
}

impl OverlayPlan {
    /// CSR row pointers (rows + 1 entries).
    pub fn row_ptr(&self, rows: usize) -> Vec<usize> {
        let mut ptr = vec![0usize; rows + 1];
        for &(r, _, _) in &self.entries {
            ptr[r + 1] += 1;
        }
        for i in 0..rows {
            ptr[i + 1] += ptr[i];
        }
        ptr
    }
}

impl Plan {
    pub fn matrices(&self) -> impl Iterator<Item = &MatrixPlan> {
        self.layers.iter().flat_map(|l| l.matrices.iter())
    }

    pub fn temp_len(&self) -> usize {
        self.matrices()
            .filter_map(|m| m.product.temp_len())
            .max()
            .unwrap_or(0)
    }

    pub fn buffer_len(&self, name: &str) -> usize {
        self.buffers
            .iter()
            .find(|b| b.name == name)
            .map_or(0, |b| b.len)
    }

    /// Floats in the state struct.
    pub fn state_floats(&self) -> usize {
        self.buffers.iter().map(|b| b.len).sum()
    }

    /// Bytes of the state struct: every buffer at its element size for the plan's precision.
    pub fn state_bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.bytes(self.precision)).sum()
    }
}

impl BufferRole {
    pub fn elem_bytes(self, precision: Precision) -> usize {
        match (precision, self) {
            (Precision::F32, _) | (_, BufferRole::Accumulator) => 4,
            (Precision::Int8, BufferRole::Activation) => 1,
            _ => 2,
        }
    }
}

/// Name of the shared KP temporary buffer.
pub const TEMP_BUFFER: &str = "kp_tmp";

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn row_major(m: &nalgebra::DMatrix<f64>) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.len());
    for r in 0..m.nrows() {
        for c in 0..m.ncols() {
            out.push(m[(r, c)] as f32);
        }
    }
    out
}

/// A stage applying stored matrix `m` as a plain mat-vec (outer 1, contiguous input and output);
/// the KP stages override the layout.
fn stored_stage(
    factor: String,
    m: &nalgebra::DMatrix<f64>,
    unrolled: bool,
    input: Operand,
    output: Operand,
    accumulate: bool,
) -> Stage {
    Stage {
        factor,
        p: m.nrows(),
        q: m.ncols(),
        values: row_major(m),
        unrolled,
        outer: 1,
        input,
        in_offset: 0,
        in_j: 1,
        in_r: 0,
        output,
        out_offset: 0,
        out_i: 1,
        out_r: 0,
        outer2: 1,
        in_r2: 0,
        out_r2: 0,
        accumulate,
        tile: [1, 1],
        simd: false,
        mve: false,
    }
}

/// The stages of `y = (F1 ⊗ … ⊗ FK) x`, K ≥ 3, with x a row-major `n1 x … x nK` tensor: one
/// mode product per factor, in the order with the fewest MACs. Two schemes keep the index
/// arithmetic affine in one outer loop, and the cheaper is taken (ties: trailing, which reads
/// contiguously along the reduction as dual-MAC instructions need):
/// - trailing (FK first): view the tensor as `R x n` with n its last mode; the result `m x R`
///   puts the new mode first (`out[i·R + r] = Σ_j F[i][j] in[r·n + j]`);
/// - leading (F1 first): view it as `n x R`; the result `R x m` puts the new mode last
///   (`out[r·m + i] = Σ_j F[i][j] in[j·R + r]`).
///
/// When another permutation ([`Factors::best_order`]) costs strictly fewer MACs than both, its
/// stages keep the layout canonical instead: each transforms its mode in place, with P the
/// size of the modes before it and Q of those after (transformed or not yet):
/// `out[p·mQ + i·Q + q] = Σ_j F[i][j] in[p·nQ + j·Q + q]`, which needs a second loop (p and q;
/// the longer one is `outer`, which register tiles block). So products whose best order is
/// trailing or leading are planned exactly as before.
///
/// After all K stages every scheme leaves the modes in their original order, so the last
/// stage writes y row-major. Intermediates alternate between two regions of the temp.
pub(crate) fn multi_kron(
    id: &str,
    factors: &[nalgebra::DMatrix<f64>],
    unroll: &dyn Fn(usize) -> bool,
) -> Product {
    let shape = Factors {
        dims: factors.iter().map(|f| (f.nrows(), f.ncols())).collect(),
    };
    let k = factors.len();
    let [trailing, leading] = single_loop_orders(k);
    let (t_macs, l_macs) = (shape.order_macs(&trailing), shape.order_macs(&leading));
    let (best, best_macs) = shape.best_order();
    // Which scheme: Some(from_back) for the single-loop ones, None for in place.
    let (order, other_order_macs, from_back) = if best_macs < t_macs.min(l_macs) {
        (best, t_macs.min(l_macs), None)
    } else if l_macs < t_macs {
        (leading, t_macs, Some(false))
    } else {
        (trailing, l_macs, Some(true))
    };
    // Single-loop schemes: mode sizes in the current row-major layout, as (factor, size).
    let mut layout: Vec<(usize, usize)> = shape
        .dims
        .iter()
        .enumerate()
        .map(|(f, d)| (f, d.1))
        .collect();
    // In place: which modes are transformed already (their size is then rows, not cols).
    let mut done = vec![false; k];
    // Sizes of each stage's output, to size the two temp regions.
    let mut spans = Vec::new();
    let mut stages = Vec::new();
    for (s, &f) in order.iter().enumerate() {
        let (m, n) = shape.dims[f];
        let last = s + 1 == k;
        // [outer, in_j, in_r, out_i, out_r, outer2, in_r2, out_r2]
        let strides = match from_back {
            Some(from_back) => {
                let rest: usize = layout.iter().filter(|e| e.0 != f).map(|e| e.1).product();
                if from_back {
                    layout.pop();
                    layout.insert(0, (f, m));
                    [rest, 1, n, rest, 1, 1, 0, 0]
                } else {
                    layout.remove(0);
                    layout.push((f, m));
                    [rest, rest, 1, 1, m, 1, 0, 0]
                }
            }
            None => {
                let size = |l: usize| {
                    if done[l] {
                        shape.dims[l].0
                    } else {
                        shape.dims[l].1
                    }
                };
                let before: usize = (0..f).map(size).product();
                let after: usize = (f + 1..k).map(size).product();
                done[f] = true;
                // The longer loop is `outer`, the one register tiles block (q on ties: its
                // accesses are contiguous).
                let [outer, in_r, out_r, outer2, in_r2, out_r2] = if after >= before {
                    [after, 1, 1, before, n * after, m * after]
                } else {
                    [before, n * after, m * after, after, 1, 1]
                };
                // An unused second loop has no strides (and so stays out of the JSON).
                let (in_r2, out_r2) = if outer2 == 1 { (0, 0) } else { (in_r2, out_r2) };
                [outer, after, in_r, after, out_r, outer2, in_r2, out_r2]
            }
        };
        let [outer, in_j, in_r, out_i, out_r, outer2, in_r2, out_r2] = strides;
        let input = if s == 0 {
            Operand::Input
        } else {
            Operand::Temp
        };
        let output = if last { Operand::Dest } else { Operand::Temp };
        let stage = Stage {
            outer,
            in_j,
            in_r,
            out_i,
            out_r,
            outer2,
            in_r2,
            out_r2,
            ..stored_stage(
                format!("{id}_{}", factor_name(f).to_lowercase()),
                &factors[f],
                unroll(factors[f].len()),
                input,
                output,
                last,
            )
        };
        spans.push(stage.output_span());
        stages.push(stage);
    }
    // Region 0 holds the outputs of stages 0, 2, ...; region 1 those of 1, 3, ... (kept at an
    // even offset, so a 16-bit pair load of an intermediate stays word-aligned).
    let region = |parity: usize| {
        spans[..k - 1]
            .iter()
            .skip(parity)
            .step_by(2)
            .copied()
            .max()
            .unwrap_or(0)
    };
    let second = region(0).next_multiple_of(2);
    let offset = |s: usize| if s.is_multiple_of(2) { 0 } else { second };
    for (s, stage) in stages.iter_mut().enumerate() {
        if stage.input == Operand::Temp {
            stage.in_offset = offset(s - 1);
        }
        if stage.output == Operand::Temp {
            stage.out_offset = offset(s);
        }
    }
    Product::MultiKron {
        factors: shape,
        order,
        temp_len: second + region(1),
        other_order_macs,
        dense_rows: 0,
        stages,
    }
}

/// Hybrid KP: the dense rows U (r x cols) become a stage of their own writing y[0..r), run
/// first, and the Kronecker product's last stage writes y[r..).
fn with_dense_rows(
    mut product: Product,
    id: &str,
    dense_rows: &Option<nalgebra::DMatrix<f64>>,
    unroll: &dyn Fn(usize) -> bool,
) -> Product {
    let Some(u) = dense_rows else {
        return product;
    };
    let r = u.nrows();
    if let Product::Kron {
        dense_rows, stages, ..
    }
    | Product::MultiKron {
        dense_rows, stages, ..
    } = &mut product
    {
        *dense_rows = r;
        for s in stages.iter_mut().filter(|s| s.output == Operand::Dest) {
            s.out_offset += r;
        }
        let dense = stored_stage(
            format!("{id}_u"),
            u,
            unroll(u.len()),
            Operand::Input,
            Operand::Dest,
            true,
        );
        stages.insert(0, dense);
    }
    product
}

/// Plans `dest[dest_offset ..] += W x` for one weight.
fn plan_matrix(
    target: &Target,
    precision: Precision,
    id: String,
    w: &Weight,
    dest: &str,
    dest_offset: usize,
) -> MatrixPlan {
    let unroll = |elems: usize| elems <= target.plan.unroll_max_factor_elems;
    let (rows, cols) = (w.rows(), w.cols());
    let (product, overlay) = match &w.form {
        WeightForm::Dense(m) => {
            let stage = stored_stage(
                format!("{id}_w"),
                m,
                unroll(m.len()),
                Operand::Input,
                Operand::Dest,
                true,
            );
            (Product::Dense { stage }, None)
        }
        WeightForm::Kron {
            factors,
            dense_rows,
            dope,
        } if factors.len() > 2 => {
            let overlay = dope.as_ref().map(|s| plan_overlay(target, s));
            let product = multi_kron(&id, factors, &unroll);
            (with_dense_rows(product, &id, dense_rows, &unroll), overlay)
        }
        WeightForm::Kron {
            factors,
            dense_rows,
            dope,
        } => {
            let (a, b) = (&factors[0], &factors[1]);
            let shape = KronShape {
                m1: a.nrows(),
                n1: a.ncols(),
                m2: b.nrows(),
                n2: b.ncols(),
            };
            // On Helium cores the strided first stage of a left-first order costs more per
            // MAC than a contiguous stage: the order weighs its MACs by the target's figure.
            let bits = precision
                .is_fixed()
                .then(|| precision.value_bytes() as u32 * 8);
            let strided = target.plan.strided_weight(bits);
            let (order, _) = if strided == 1.0 {
                shapes::cheaper_order(&shape)
            } else {
                shapes::cheaper_weighted_order(&shape, strided)
            };
            let costs = shapes::order_costs(&shape);
            let cost_of = |o: KronOrder| {
                costs
                    .iter()
                    .find(|c| c.0 == o)
                    .map(|c| (c.1, c.2))
                    .unwrap_or((0, 0))
            };
            let other = match order {
                KronOrder::RightFirst => KronOrder::LeftFirst,
                KronOrder::LeftFirst => KronOrder::RightFirst,
            };
            let KronShape { m1, n1, m2, n2 } = shape;
            // One stage per factor, with its layout [outer, in_j, in_r, out_i, out_r].
            let factor_stage = |f: &str, input, output, accumulate, layout: [usize; 5]| {
                let m = if f == "a" { a } else { b };
                let [outer, in_j, in_r, out_i, out_r] = layout;
                Stage {
                    outer,
                    in_j,
                    in_r,
                    out_i,
                    out_r,
                    ..stored_stage(
                        format!("{id}_{f}"),
                        m,
                        unroll(m.len()),
                        input,
                        output,
                        accumulate,
                    )
                }
            };
            // x is X[n1][n2] row-major; y is Y[m1][m2] row-major.
            let stages = match order {
                // T[i2][j1] = Σ_j2 X[j1][j2] B[i2][j2];  Y[i1][i2] += Σ_j1 A[i1][j1] T[i2][j1]
                // (T stored transposed so both stages read their input contiguously along
                // the reduction, as dual-MAC instructions need).
                KronOrder::RightFirst => vec![
                    factor_stage(
                        "b",
                        Operand::Input,
                        Operand::Temp,
                        false,
                        [n1, 1, n2, n1, 1],
                    ),
                    factor_stage("a", Operand::Temp, Operand::Dest, true, [m2, 1, n1, m2, 1]),
                ],
                // T[i1][j2] = Σ_j1 A[i1][j1] X[j1][j2];  Y[i1][i2] += Σ_j2 T[i1][j2] B[i2][j2]
                KronOrder::LeftFirst => vec![
                    factor_stage(
                        "a",
                        Operand::Input,
                        Operand::Temp,
                        false,
                        [n2, n2, 1, n2, 1],
                    ),
                    factor_stage("b", Operand::Temp, Operand::Dest, true, [m1, 1, n2, 1, m2]),
                ],
            };
            let overlay = dope.as_ref().map(|s| plan_overlay(target, s));
            let product = Product::Kron {
                shape,
                order,
                temp_len: cost_of(order).1,
                other_order_macs: cost_of(other).0,
                dense_rows: 0,
                stages,
            };
            (with_dense_rows(product, &id, dense_rows, &unroll), overlay)
        }
        WeightForm::LowRank { u, v } => {
            let rank = u.ncols();
            let stage = |f: &str, m: &nalgebra::DMatrix<f64>, input, output, accumulate| {
                stored_stage(
                    format!("{id}_{f}"),
                    m,
                    unroll(m.len()),
                    input,
                    output,
                    accumulate,
                )
            };
            let stages = vec![
                stage("v", v, Operand::Input, Operand::Temp, false),
                stage("u", u, Operand::Temp, Operand::Dest, true),
            ];
            (Product::LowRank { rank, stages }, None)
        }
        WeightForm::Sparse(s) => (Product::Sparse, Some(plan_overlay(target, s))),
    };
    let macs = product.stages().iter().map(Stage::macs).sum::<usize>()
        + overlay.as_ref().map_or(0, |o| o.nnz);
    MatrixPlan {
        id,
        field: w.field,
        form: w.kind_name(),
        rows,
        cols,
        dest: dest.to_owned(),
        dest_offset,
        product,
        overlay,
        macs,
        dense_macs: rows * cols,
        stored_params: w.stored_params(),
        dense_params: w.dense_params(),
    }
}

fn plan_overlay(target: &Target, s: &SparseMatrix) -> OverlayPlan {
    let nnz = s.nnz();
    let (encoding, index_bytes) = if nnz <= target.plan.straight_line_max_nnz {
        (OverlayEncoding::StraightLine, 0)
    } else {
        let row_ptr = IndexType::for_max(nnz);
        let col_index = IndexType::for_max(s.cols.saturating_sub(1));
        (
            OverlayEncoding::Csr { row_ptr, col_index },
            (s.rows + 1) * row_ptr.bytes() + nnz * col_index.bytes(),
        )
    };
    OverlayPlan {
        nnz,
        density: s.density(),
        encoding,
        index_bytes,
        entries: s
            .entries
            .iter()
            .map(|&(r, c, v)| (r, c, v as f32))
            .collect(),
    }
}

/// The plan rules a target gives a build that optimizes for `optimize`: its own for speed;
/// for size, every stored matrix read by a loop (an unrolled weight costs several bytes of
/// code per element against its own bytes stored), one output per pass (a register tile's
/// accumulators and remainder blocks are code), and every overlay in CSR (straight-line code
/// costs several bytes per non-zero against one or two of index). A Helium core keeps its
/// float tile: there the tile's rows are the lanes of one vector, and its block loop is the
/// whole kernel.
pub fn rules_for(target: &Target, optimize: Optimize) -> PlanRules {
    let mut rules = target.plan.clone();
    if optimize == Optimize::Size {
        rules.unroll_max_factor_elems = 0;
        rules.straight_line_max_nnz = 0;
        rules.tile_int = [1, 1];
        if !target.features.mve {
            rules.tile_float = [1, 1];
        }
    }
    rules
}

/// Plans the whole model for a target, with the rules of the model's objective
/// ([`rules_for`]).
pub fn plan_model(model: &Model, target: &Target) -> Plan {
    let target = &Target {
        plan: rules_for(target, model.optimize),
        ..target.clone()
    };
    let mut buffers = Vec::new();
    let mut layers = Vec::new();
    let mut input = Source::ModelInput;
    let last = model.layers.len().saturating_sub(1);
    for (index, layer) in model.layers.iter().enumerate() {
        let lp = plan_layer(
            target,
            model.precision,
            index,
            layer,
            input.clone(),
            index == last,
            &mut buffers,
        );
        if let Some(out) = &lp.output {
            input = Source::Buffer(out.clone());
        }
        layers.push(lp);
    }
    // Register tiles of the stored factors' loops: the core's, clipped to each stage.
    let tile = target.plan.tile(model.precision.is_fixed());
    for m in layers.iter_mut().flat_map(|l| l.matrices.iter_mut()) {
        for s in m.product.stages_mut() {
            s.tile = [
                tile[0].clamp(1, s.p.max(1)),
                tile[1].clamp(1, s.outer.max(1)),
            ];
            s.simd = target.features.dsp && model.precision.is_fixed();
            s.mve = target.features.mve;
        }
    }
    let mut plan = Plan {
        name: model.name.clone(),
        target: target.name.clone(),
        cflags: target.c.cflags.clone(),
        arch_macros: target.c.arch_macros.clone(),
        helium: target.features.mve,
        precision: model.precision,
        activations: model.activations,
        optimize: model.optimize,
        rules: target.plan.clone(),
        input_features: model.input_features,
        steps: model.steps,
        output_size: model.output_size(),
        layers,
        buffers,
    };
    let temp = plan.temp_len();
    if temp > 0 {
        plan.buffers.push(Buffer {
            name: TEMP_BUFFER.to_owned(),
            len: temp,
            recurrent: false,
            role: BufferRole::Temp,
        });
    }
    plan
}

fn plan_layer(
    target: &Target,
    precision: Precision,
    index: usize,
    layer: &Layer,
    input: Source,
    is_last: bool,
    buffers: &mut Vec<Buffer>,
) -> LayerPlan {
    let h = layer.units;
    let mut buffer = |name: String, len: usize, recurrent: bool, role: BufferRole| {
        buffers.push(Buffer {
            name: name.clone(),
            len,
            recurrent,
            role,
        });
        name
    };
    use BufferRole::{Accumulator, Activation as Act, CellState};
    let id = |field: &str| format!("l{index}_{field}");
    let (matrices, constants, output) = match &layer.cell {
        Cell::Lstm(g) => {
            let hidden = buffer(format!("l{index}_h"), h, true, Act);
            let cell = buffer(format!("l{index}_c"), h, true, CellState);
            let gates = buffer(format!("l{index}_gates"), 4 * h, false, Accumulator);
            let m = vec![
                plan_matrix(target, precision, id("w_ih"), &g.w_ih, &gates, 0),
                plan_matrix(target, precision, id("w_hh"), &g.w_hh, &gates, 0),
            ];
            let bias: Vec<f64> = g.b_ih.iter().zip(&g.b_hh).map(|(a, b)| a + b).collect();
            (
                m,
                LayerConstants::Lstm {
                    bias: to_f32(&bias),
                    cell_state: cell,
                    gates,
                },
                Some(hidden),
            )
        }
        Cell::Gru(g) => {
            let hidden = buffer(format!("l{index}_h"), h, true, Act);
            // Input gates in [0, 3H), recurrent gates in [3H, 6H).
            let gates = buffer(format!("l{index}_gates"), 6 * h, false, Accumulator);
            let m = vec![
                plan_matrix(target, precision, id("w_ih"), &g.w_ih, &gates, 0),
                plan_matrix(target, precision, id("w_hh"), &g.w_hh, &gates, 3 * h),
            ];
            (
                m,
                LayerConstants::Gru {
                    bias_ih: to_f32(&g.b_ih),
                    bias_hh: to_f32(&g.b_hh),
                    gates,
                },
                Some(hidden),
            )
        }
        Cell::FastGrnn(f) => {
            let hidden = buffer(format!("l{index}_h"), h, true, Act);
            let gates = buffer(format!("l{index}_pre"), h, false, Accumulator);
            let m = vec![
                plan_matrix(target, precision, id("w"), &f.w, &gates, 0),
                plan_matrix(target, precision, id("u"), &f.u, &gates, 0),
            ];
            (
                m,
                LayerConstants::FastGrnn {
                    b_z: to_f32(&f.b_z),
                    b_h: to_f32(&f.b_h),
                    zeta: sigmoid(f.zeta) as f32,
                    nu: sigmoid(f.nu) as f32,
                    gates,
                },
                Some(hidden),
            )
        }
        Cell::Dense(d) => {
            // The last dense layer writes the caller's y; earlier ones need a buffer.
            let out = (!is_last).then(|| buffer(format!("l{index}_out"), h, false, Act));
            // Fixed point sums in int32 before the activation narrows into the output.
            let acc = precision
                .is_fixed()
                .then(|| buffer(format!("l{index}_acc"), h, false, Accumulator));
            let dest = acc
                .clone()
                .or_else(|| out.clone())
                .unwrap_or_else(|| "y".to_owned());
            let m = vec![plan_matrix(target, precision, id("w"), &d.w, &dest, 0)];
            (
                m,
                LayerConstants::Dense {
                    bias: to_f32(&d.b),
                    activation: d.activation,
                    acc,
                },
                out,
            )
        }
    };
    LayerPlan {
        index,
        kind: layer.cell.kind(),
        inputs: layer.inputs,
        units: h,
        input,
        output,
        matrices,
        constants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    /// Seeded pseudo-random factors of the given shapes.
    fn factors(dims: &[(usize, usize)], seed: u64) -> Vec<DMatrix<f64>> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        dims.iter()
            .map(|&(r, c)| DMatrix::from_fn(r, c, |_, _| next()))
            .collect()
    }

    /// y = W x through the stages, in f64 (the stage semantics of [`Stage`]).
    fn run(product: &Product, x: &[f64], rows: usize) -> Vec<f64> {
        let mut temp = vec![0.0; product.temp_len().unwrap_or(0)];
        let mut y = vec![0.0; rows];
        for s in product.stages() {
            let input = match s.input {
                Operand::Input => x.to_vec(),
                _ => temp.clone(),
            };
            let out = match s.output {
                Operand::Dest => &mut y,
                _ => &mut temp,
            };
            s.run_f64(&input, out, 0);
        }
        y
    }

    /// np.kron left to right, from the f32-rounded factors the stages hold.
    fn expanded(f: &[DMatrix<f64>]) -> DMatrix<f64> {
        let rounded: Vec<DMatrix<f64>> = f.iter().map(|m| m.map(|v| v as f32 as f64)).collect();
        rounded[1..]
            .iter()
            .fold(rounded[0].clone(), |w, m| w.kronecker(m))
    }

    fn check_against_kron(dims: &[(usize, usize)], seed: u64, unroll: bool) -> Product {
        let f = factors(dims, seed);
        let product = multi_kron("m", &f, &|_| unroll);
        let w = expanded(&f);
        let x: Vec<f64> = (0..w.ncols())
            .map(|j| ((j * 7 + 3) % 11) as f64 / 11.0 - 0.4)
            .collect();
        let want = &w * nalgebra::DVector::from_column_slice(&x);
        let got = run(&product, &x, w.nrows());
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-9, "{dims:?}: {got:?} vs {want:?}");
        }
        // Temp stages stay inside the temp and never write the region they read.
        let temp = product.temp_len().unwrap_or(0);
        for s in product.stages() {
            let read = s.in_offset..s.in_index(s.q - 1, s.outer - 1, s.outer2 - 1) + 1;
            let written = s.out_offset..s.out_offset + s.output_span();
            if s.output == Operand::Temp {
                assert!(written.end <= temp, "{dims:?}");
            }
            if s.input == Operand::Temp {
                assert!(read.end <= temp, "{dims:?}");
                if s.output == Operand::Temp {
                    let apart = read.end <= written.start || written.end <= read.start;
                    assert!(apart, "{dims:?}: reads {read:?}, writes {written:?}");
                }
            }
        }
        // The MACs are the order's.
        if let Product::MultiKron { factors, order, .. } = &product {
            assert_eq!(product.kron_macs(), factors.order_macs(order), "{dims:?}");
        }
        product
    }

    fn order_of(p: &Product) -> (Vec<usize>, usize) {
        match p {
            Product::MultiKron {
                order,
                other_order_macs,
                ..
            } => (order.clone(), *other_order_macs),
            _ => panic!("not a multi-factor product"),
        }
    }

    #[test]
    fn a_middle_first_permutation_beats_both_fixed_schemes() {
        for (dims, order, macs, other) in [
            (vec![(4, 3), (4, 4), (8, 1)], vec![1, 0, 2], 224, 240),
            (vec![(4, 2), (4, 3), (8, 1)], vec![1, 0, 2], 184, 200),
            // B's mode product has modes on both sides: it needs the second loop.
            (vec![(2, 3), (2, 4), (3, 2)], vec![1, 0, 2], 96, 104),
        ] {
            let p = check_against_kron(&dims, 1, true);
            assert_eq!(order_of(&p), (order.clone(), other), "{dims:?}");
            assert_eq!(p.kron_macs(), macs, "{dims:?}");
            assert!(in_place(&order));
            assert_eq!(p.other_order(), Some(vec![0, 1, 2]), "{dims:?}");
            // The last stage writes y in the canonical layout.
            assert_eq!(p.stages().last().unwrap().output, Operand::Dest);
        }
        let p = check_against_kron(&[(2, 3), (2, 4), (3, 2)], 1, false);
        let b = &p.stages()[0];
        // P = 3 (mode A, not yet done), Q = 2 (mode C): the longer loop is outer.
        assert_eq!((b.outer, b.in_j, b.in_r, b.out_i, b.out_r), (3, 2, 8, 2, 4));
        assert_eq!((b.outer2, b.in_r2, b.out_r2), (2, 1, 1));
        assert!(p.describe().contains("in place"), "{}", p.describe());
        assert!(
            p.describe().contains("(other order 104: A B C"),
            "{}",
            p.describe()
        );
    }

    #[test]
    fn trailing_and_leading_products_keep_their_stages() {
        // 4x4 ⊗ 4x4 ⊗ 8x2: leading (A B C) is cheapest of all, planned as before this
        // change, and without a second loop in the JSON.
        let p = check_against_kron(&[(4, 4), (4, 4), (8, 2)], 2, true);
        assert_eq!(order_of(&p), (vec![0, 1, 2], 1280));
        let layout: Vec<_> = p
            .stages()
            .iter()
            .map(|s| {
                (
                    [s.outer, s.in_j, s.in_r, s.out_i, s.out_r],
                    [s.in_offset, s.out_offset, s.outer2, s.in_r2, s.out_r2],
                )
            })
            .collect();
        assert_eq!(
            layout,
            [
                ([8, 8, 1, 1, 4], [0, 0, 1, 0, 0]),
                ([8, 8, 1, 1, 4], [0, 32, 1, 0, 0]),
                ([16, 16, 1, 1, 8], [32, 0, 1, 0, 0]),
            ]
        );
        assert_eq!(p.kron_macs(), 512);
        assert_eq!(p.temp_len(), Some(64));
        assert!(!p.describe().contains("in place"));
        for s in p.stages() {
            let json = serde_json::to_string(s).unwrap();
            assert!(!json.contains("r2"), "{json}");
        }
        // Trailing: 2x4 ⊗ 2x4 ⊗ 2x4 shrinks every mode, C first, B, then A.
        let p = check_against_kron(&[(2, 4), (2, 4), (2, 4)], 3, false);
        assert_eq!(order_of(&p).0, vec![2, 1, 0]);
        assert_eq!(p.other_order(), Some(vec![0, 1, 2]));
        assert!(p.stages().iter().all(|s| s.outer2 == 1));
    }

    #[test]
    fn every_order_computes_the_kronecker_product() {
        let sizes = [
            (1, 2),
            (2, 1),
            (2, 2),
            (2, 3),
            (3, 2),
            (4, 2),
            (2, 4),
            (3, 4),
        ];
        let mut state = 0x243f_6a88_85a3_08d3u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let (mut permuted, mut two_loops) = (0, 0);
        for case in 0..300 {
            let k = 3 + next(2);
            let dims: Vec<_> = (0..k).map(|_| sizes[next(sizes.len())]).collect();
            let p = check_against_kron(&dims, case, case % 2 == 0);
            if in_place(&order_of(&p).0) {
                permuted += 1;
                two_loops += usize::from(p.stages().iter().any(|s| s.outer2 > 1));
            }
        }
        assert!(permuted > 30 && two_loops > 10, "{permuted} {two_loops}");
    }
}
