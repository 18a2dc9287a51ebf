//! Stage 2: the validated model. Tensors are loaded, shapes checked against the layer sizes,
//! values checked finite. Everything downstream may assume a consistent model.

pub mod cells;

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use serde_saphyr::Spanned;

use crate::base::diagnostic::{Diagnostic, Diagnostics};
/// A sparse matrix as its sorted non-zeros; it lives in `base` with its readers.
pub use crate::base::sparse::SparseMatrix;
use crate::base::sparse::{self, Array, Positions, Stored};
use crate::base::tensor::{self, Tensor};
use crate::spec::{
    Activation, Activations, LayerKind, LayerSpec, Optimize, Precision, ScalarSpec, SparseParts,
    SparseSpec, SpecDocument, WeightMap, WeightSpec,
};

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub input_features: usize,
    pub steps: usize,
    pub layers: Vec<Layer>,
    /// The spec's `precision` (f32 when omitted); the CLI may override it.
    pub precision: Precision,
    /// How f32 code evaluates sigmoid and tanh (the spec's `activations`, table when
    /// omitted); the CLI may override it. The f64 reference follows it.
    pub activations: Activations,
    /// What the plan optimizes for (the spec's `optimize`, speed when omitted); the CLI may
    /// override it.
    pub optimize: Optimize,
    /// The spec's `calibration` file, resolved against the spec's folder.
    pub calibration: Option<PathBuf>,
    /// Every file the model was read from (the spec, each tensor file): an output may never
    /// replace their folders.
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub inputs: usize,
    pub units: usize,
    pub cell: Cell,
}

#[derive(Debug, Clone)]
pub enum Cell {
    Lstm(GatedCell),
    Gru(GatedCell),
    FastGrnn(FastGrnnCell),
    Dense(DenseLayer),
}

/// LSTM (4 gates i,f,g,o) and GRU (3 gates r,z,n) share this layout, PyTorch's.
#[derive(Debug, Clone)]
pub struct GatedCell {
    pub w_ih: Weight,
    pub w_hh: Weight,
    pub b_ih: Vec<f64>,
    pub b_hh: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct FastGrnnCell {
    pub w: Weight,
    pub u: Weight,
    pub b_z: Vec<f64>,
    pub b_h: Vec<f64>,
    /// Raw values as trained; the cell uses sigmoid(zeta) and sigmoid(nu).
    pub zeta: f64,
    pub nu: f64,
}

#[derive(Debug, Clone)]
pub struct DenseLayer {
    pub w: Weight,
    pub b: Vec<f64>,
    pub activation: Activation,
}

/// A weight matrix in the form it was trained in.
#[derive(Debug, Clone)]
pub struct Weight {
    /// The spec's field name (`w_ih`, `u`, ...).
    pub field: &'static str,
    pub form: WeightForm,
}

#[derive(Debug, Clone)]
pub enum WeightForm {
    Dense(DMatrix<f64>),
    /// W = kron(F1, F2, …, FK) (+ dope), np.kron applied left to right; two factors or more.
    /// Hybrid KP: `dense_rows` U (r x cols) are the first r rows of W, the Kronecker product
    /// the rest: W = [U ; kron(F1, …, FK)] (+ dope over the whole of W).
    Kron {
        factors: Vec<DMatrix<f64>>,
        dense_rows: Option<DMatrix<f64>>,
        dope: Option<SparseMatrix>,
    },
    /// W = u·v, computed as u·(v·x).
    LowRank {
        u: DMatrix<f64>,
        v: DMatrix<f64>,
    },
    /// W = s, pruned: only its non-zeros are stored.
    Sparse(SparseMatrix),
}

impl Weight {
    pub fn rows(&self) -> usize {
        match &self.form {
            WeightForm::Dense(m) => m.nrows(),
            WeightForm::Kron {
                factors,
                dense_rows,
                ..
            } => {
                factors.iter().map(DMatrix::nrows).product::<usize>()
                    + dense_rows.as_ref().map_or(0, DMatrix::nrows)
            }
            WeightForm::LowRank { u, .. } => u.nrows(),
            WeightForm::Sparse(s) => s.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match &self.form {
            WeightForm::Dense(m) => m.ncols(),
            WeightForm::Kron { factors, .. } => factors.iter().map(DMatrix::ncols).product(),
            WeightForm::LowRank { v, .. } => v.ncols(),
            WeightForm::Sparse(s) => s.cols,
        }
    }

    /// The full matrix W (used by the reference and the dense expansion, never by generated code).
    pub fn expand(&self) -> DMatrix<f64> {
        match &self.form {
            WeightForm::Dense(m) => m.clone(),
            WeightForm::Kron {
                factors,
                dense_rows,
                dope,
            } => {
                let kp = factors[1..]
                    .iter()
                    .fold(factors[0].clone(), |w, f| w.kronecker(f));
                let mut w = match dense_rows {
                    Some(u) => {
                        let mut w = DMatrix::zeros(u.nrows() + kp.nrows(), kp.ncols());
                        w.rows_mut(0, u.nrows()).copy_from(u);
                        w.rows_mut(u.nrows(), kp.nrows()).copy_from(&kp);
                        w
                    }
                    None => kp,
                };
                if let Some(s) = dope {
                    for &(r, c, v) in &s.entries {
                        w[(r, c)] += v;
                    }
                }
                w
            }
            WeightForm::LowRank { u, v } => u * v,
            WeightForm::Sparse(s) => {
                let mut w = DMatrix::zeros(s.rows, s.cols);
                for &(r, c, v) in &s.entries {
                    w[(r, c)] = v;
                }
                w
            }
        }
    }

    /// Parameters as stored (factors plus overlay values).
    pub fn stored_params(&self) -> usize {
        match &self.form {
            WeightForm::Dense(m) => m.len(),
            WeightForm::Kron {
                factors,
                dense_rows,
                dope,
            } => {
                factors.iter().map(DMatrix::len).sum::<usize>()
                    + dense_rows.as_ref().map_or(0, DMatrix::len)
                    + dope.as_ref().map_or(0, SparseMatrix::nnz)
            }
            WeightForm::LowRank { u, v } => u.len() + v.len(),
            WeightForm::Sparse(s) => s.nnz(),
        }
    }

    pub fn dense_params(&self) -> usize {
        self.rows() * self.cols()
    }

    /// The same weight with its matrix expanded to dense, for cost comparisons.
    pub fn to_dense(&self) -> Weight {
        Weight {
            field: self.field,
            form: WeightForm::Dense(self.expand()),
        }
    }

    /// The sparse matrix of the form: a Kronecker product's doping overlay or a pruned weight.
    pub fn sparse_part(&self) -> Option<&SparseMatrix> {
        match &self.form {
            WeightForm::Kron { dope, .. } => dope.as_ref(),
            WeightForm::Sparse(s) => Some(s),
            WeightForm::Dense(_) | WeightForm::LowRank { .. } => None,
        }
    }

    /// The form in words, as `kpgen explain` shows it:
    /// `kron A 8x3 ⊗ B 16x2 + S (12 non-zeros, 2.08%)`.
    pub fn describe(&self) -> String {
        let dims = |m: &DMatrix<f64>| format!("{}x{}", m.nrows(), m.ncols());
        match &self.form {
            WeightForm::Dense(_) => "dense".to_owned(),
            WeightForm::Kron {
                factors,
                dense_rows,
                dope,
            } => {
                let overlay = dope
                    .as_ref()
                    .map_or(String::new(), |s| format!(" + S ({})", nonzeros(s)));
                let product: Vec<String> = factors
                    .iter()
                    .enumerate()
                    .map(|(k, f)| format!("{} {}", factor_name(k), dims(f)))
                    .collect();
                match dense_rows {
                    Some(u) => format!(
                        "hybrid: dense rows U {} over kron {}{overlay}",
                        dims(u),
                        product.join(" ⊗ ")
                    ),
                    None => format!("kron {}{overlay}", product.join(" ⊗ ")),
                }
            }
            WeightForm::LowRank { u, v } => format!("low rank U {} · V {}", dims(u), dims(v)),
            WeightForm::Sparse(s) => format!("sparse ({})", nonzeros(s)),
        }
    }

    /// Each stored matrix of the form with its shape and value range.
    pub fn stored_parts(&self) -> Vec<StoredPart> {
        let part = |name: &str, m: &DMatrix<f64>| {
            StoredPart::new(name.to_owned(), m.nrows(), m.ncols(), m.iter())
        };
        let sparse = |s: &SparseMatrix| {
            StoredPart::new(
                "S".to_owned(),
                s.rows,
                s.cols,
                s.entries.iter().map(|e| &e.2),
            )
        };
        match &self.form {
            WeightForm::Dense(m) => vec![part("W", m)],
            WeightForm::Kron {
                factors,
                dense_rows,
                dope,
            } => {
                let mut parts: Vec<StoredPart> = dense_rows.iter().map(|u| part("U", u)).collect();
                parts.extend(
                    factors
                        .iter()
                        .enumerate()
                        .map(|(k, f)| part(&factor_name(k), f)),
                );
                parts.extend(dope.as_ref().map(sparse));
                parts
            }
            WeightForm::LowRank { u, v } => vec![part("U", u), part("V", v)],
            WeightForm::Sparse(s) => vec![sparse(s)],
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.form {
            WeightForm::Dense(_) => "dense",
            WeightForm::Kron {
                dense_rows: None,
                dope: None,
                ..
            } => "kp",
            WeightForm::Kron {
                dense_rows: None,
                dope: Some(_),
                ..
            } => "dkp",
            WeightForm::Kron { dope: None, .. } => "hkp",
            WeightForm::Kron { dope: Some(_), .. } => "dhkp",
            WeightForm::LowRank { .. } => "lowrank",
            WeightForm::Sparse(_) => "sparse",
        }
    }
}

/// A sparse matrix's non-zeros and density in words: `12 non-zeros, 2.08%`.
fn nonzeros(s: &SparseMatrix) -> String {
    format!("{} non-zeros, {:.2}%", s.nnz(), 100.0 * s.density())
}

/// Smallest and largest of some values; (0, 0) for none.
pub fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
        .unwrap_or((0.0, 0.0))
}

/// The name of Kronecker factor `k` in messages and views: `A`, `B`, `C`, ..., then `F27`, ...
pub fn factor_name(k: usize) -> String {
    match u8::try_from(k) {
        Ok(k) if k < 26 => char::from(b'A' + k).to_string(),
        _ => format!("F{}", k + 1),
    }
}

/// One stored matrix of a weight: its name in the form (`A`, `B`, `S`, ...), shape and range.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPart {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    /// Smallest and largest value (0 when it stores none).
    pub min: f64,
    pub max: f64,
}

impl StoredPart {
    fn new<'a>(
        name: String,
        rows: usize,
        cols: usize,
        values: impl Iterator<Item = &'a f64>,
    ) -> Self {
        let (min, max) = value_range(values.copied());
        StoredPart {
            name,
            rows,
            cols,
            min,
            max,
        }
    }
}

impl Cell {
    pub fn kind(&self) -> LayerKind {
        match self {
            Cell::Lstm(_) => LayerKind::Lstm,
            Cell::Gru(_) => LayerKind::Gru,
            Cell::FastGrnn(_) => LayerKind::Fastgrnn,
            Cell::Dense(_) => LayerKind::Dense,
        }
    }

    pub fn weights(&self) -> Vec<&Weight> {
        match self {
            Cell::Lstm(g) | Cell::Gru(g) => vec![&g.w_ih, &g.w_hh],
            Cell::FastGrnn(f) => vec![&f.w, &f.u],
            Cell::Dense(d) => vec![&d.w],
        }
    }

    fn weights_mut(&mut self) -> Vec<&mut Weight> {
        match self {
            Cell::Lstm(g) | Cell::Gru(g) => vec![&mut g.w_ih, &mut g.w_hh],
            Cell::FastGrnn(f) => vec![&mut f.w, &mut f.u],
            Cell::Dense(d) => vec![&mut d.w],
        }
    }

    /// Bias parameters stored for this layer.
    pub fn bias_params(&self) -> usize {
        match self {
            Cell::Lstm(g) | Cell::Gru(g) => g.b_ih.len() + g.b_hh.len(),
            Cell::FastGrnn(f) => f.b_z.len() + f.b_h.len() + 2,
            Cell::Dense(d) => d.b.len(),
        }
    }
}

impl Model {
    /// The activations the f64 reference computes: the build's `activations` in f32; the
    /// exact functions in fixed point, whose Q15 tables approximate those.
    pub fn reference_activations(&self) -> Activations {
        if self.precision.is_fixed() {
            Activations::Exact
        } else {
            self.activations
        }
    }

    pub fn output_size(&self) -> usize {
        self.layers.last().map_or(self.input_features, |l| l.units)
    }

    /// The same model with every weight expanded to a dense matrix.
    pub fn expanded_to_dense(&self) -> Model {
        let mut m = self.clone();
        m.name = format!("{}_dense", self.name);
        for layer in &mut m.layers {
            for w in layer.cell.weights_mut() {
                *w = w.to_dense();
            }
        }
        m
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: spec -> model
// ---------------------------------------------------------------------------------------------

/// Which spec fields each layer kind takes.
fn fields_of(kind: LayerKind) -> &'static [&'static str] {
    match kind {
        LayerKind::Lstm | LayerKind::Gru => &["w_ih", "w_hh", "b_ih", "b_hh"],
        LayerKind::Fastgrnn => &["w", "u", "b_z", "b_h", "zeta", "nu"],
        LayerKind::Dense => &["w", "b", "activation"],
    }
}

/// C99 keywords (and C11's, for compilers in newer modes).
const C_KEYWORDS: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "_Bool",
    "_Complex",
    "_Imaginary",
    "_Alignas",
    "_Alignof",
    "_Atomic",
    "_Generic",
    "_Noreturn",
    "_Static_assert",
    "_Thread_local",
];

/// Rust keywords, strict and reserved (a crate may not be named after one).
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Crates every Rust build sees, and names the generated code or its tests take as a whole.
const RUST_CRATES: &[&str] = &["core", "std", "alloc", "proc_macro", "test", "main"];

/// Standard C headers (and CMSIS's): the generated `NAME.h` must not shadow one of them.
const C_HEADERS: &[&str] = &[
    "assert",
    "complex",
    "ctype",
    "errno",
    "fenv",
    "float",
    "inttypes",
    "iso646",
    "limits",
    "locale",
    "math",
    "setjmp",
    "signal",
    "stdalign",
    "stdarg",
    "stdatomic",
    "stdbool",
    "stddef",
    "stdint",
    "stdio",
    "stdlib",
    "stdnoreturn",
    "string",
    "tgmath",
    "threads",
    "time",
    "uchar",
    "wchar",
    "wctype",
    "arm_math",
    "arm_nnfunctions",
    "cmsis_compiler",
    "cmsis_gcc",
];

/// kpgen's own symbols in generated code and test firmware all start with this.
const KPGEN_PREFIX: &str = "kp";

/// Checks a model name: a C identifier that is also a valid Rust crate name, and collides with
/// nothing the generated code, its header or kpgen's test firmware defines or includes.
pub fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(
            "the name is empty: expected a C identifier (a letter, then letters, digits or `_`)"
                .to_owned(),
        );
    }
    let mut chars = name.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !ok_first || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a valid name: expected a C identifier (a letter, then letters, digits or `_`)"
        ));
    }
    if name.len() > 40 {
        return Err(format!(
            "`{name}` is too long ({} characters): at most 40, so derived C names stay portable",
            name.len()
        ));
    }
    if C_KEYWORDS.contains(&name) || RUST_KEYWORDS.contains(&name) {
        return Err(format!(
            "`{name}` is a reserved word in C or Rust: choose another name"
        ));
    }
    if RUST_CRATES.contains(&name) {
        return Err(format!(
            "`{name}` is the name of a crate every Rust build sees: choose another name"
        ));
    }
    if C_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{name}` would generate `{name}.h`, which shadows a standard C header: choose another name"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower == KPGEN_PREFIX || lower.starts_with(&format!("{KPGEN_PREFIX}_")) {
        return Err(format!(
            "`{name}` collides with kpgen's own symbols (`{KPGEN_PREFIX}_…`): choose another name"
        ));
    }
    Ok(())
}

struct Loader<'a> {
    reader: &'a crate::base::input::Reader<'a>,
    doc: &'a SpecDocument,
    errors: Diagnostics,
    sources: Vec<PathBuf>,
}

impl Loader<'_> {
    fn base(&self) -> &Path {
        self.doc.base_dir()
    }

    fn fail<T>(&mut self, at: &Spanned<T>, field: &str, msg: impl Into<String>) {
        let d = self.doc.error_at(at, field, msg);
        self.errors.push(d);
    }

    /// Loads a float tensor and checks that it is finite.
    fn tensor(&mut self, at: &Spanned<impl Sized>, field: &str, path: &str) -> Option<Tensor> {
        self.source(path);
        match tensor::load_float_with(self.reader, path, self.base()) {
            Ok(t) => {
                if let Some((i, v)) = t.first_non_finite() {
                    self.fail(
                        at,
                        field,
                        format!(
                            "`{path}` holds a non-finite value ({v}) at flat index {i}: expected finite weights"
                        ),
                    );
                    None
                } else if let Some((i, v)) = t
                    .data
                    .iter()
                    .enumerate()
                    .find(|(_, v)| v.abs() > f64::from(f32::MAX))
                {
                    // The generated code computes in float32 (or from float32 weights).
                    self.fail(
                        at,
                        field,
                        format!(
                            "`{path}` holds {v:e} at flat index {i}, beyond float32's range \
                             (±3.4e38): it would become infinity in the generated code"
                        ),
                    );
                    None
                } else {
                    Some(t)
                }
            }
            Err(e) => {
                self.fail(at, field, e.to_string());
                None
            }
        }
    }

    fn matrix(
        &mut self,
        at: &Spanned<impl Sized>,
        field: &str,
        path: &str,
    ) -> Option<DMatrix<f64>> {
        if let Some(file) = tensor::whole_npz(path, self.base()) {
            self.source(path);
            match sparse::read_scipy(self.reader, &file, path) {
                Ok(Some(stored)) => return self.scipy_as_dense(at, field, path, &stored),
                // Not a scipy.sparse file: an archive of one matrix.
                Ok(None) => {}
                Err(e) => {
                    self.fail(at, field, e);
                    return None;
                }
            }
        }
        self.dense_matrix(at, field, path)
    }

    /// A matrix from a tensor reference, read as a tensor (never as a scipy.sparse file).
    fn dense_matrix(
        &mut self,
        at: &Spanned<impl Sized>,
        field: &str,
        path: &str,
    ) -> Option<DMatrix<f64>> {
        let t = self.tensor(at, field, path)?;
        if t.shape.len() != 2 {
            self.fail(
                at,
                field,
                format!("`{path}` has shape {:?}: expected a 2-D matrix", t.shape),
            );
            return None;
        }
        Some(DMatrix::from_row_slice(t.shape[0], t.shape[1], &t.data))
    }

    /// A scipy.sparse file where a dense matrix is expected (a plain weight, a factor): checked
    /// as every sparse matrix is, then expanded, if it has no more elements than a float32
    /// tensor file within the reader's limits could hold.
    fn scipy_as_dense(
        &mut self,
        at: &Spanned<impl Sized>,
        field: &str,
        path: &str,
        stored: &Stored,
    ) -> Option<DMatrix<f64>> {
        let s = match sparse::assemble(stored) {
            Ok(s) => s,
            Err(e) => {
                self.fail(at, field, e);
                return None;
            }
        };
        let max = usize::try_from(self.reader.limits.file_bytes / 4).unwrap_or(usize::MAX);
        let m = s.to_dense(max);
        if m.is_none() {
            self.fail(
                at,
                field,
                format!(
                    "`{path}` holds a {}x{} sparse matrix, expected here as a dense matrix: \
                     more than the {max} values a tensor file may hold (for a pruned weight \
                     write `{{sparse: {path}}}`)",
                    s.rows, s.cols
                ),
            );
        }
        m
    }

    fn vector(&mut self, at: &Spanned<String>, field: &str, len: usize) -> Option<Vec<f64>> {
        let t = self.tensor(at, field, &at.value)?;
        let non_unit = t.shape.iter().filter(|&&d| d != 1).count();
        if t.data.len() != len || non_unit > 1 {
            self.fail(
                at,
                field,
                format!(
                    "`{}` has shape {:?}: expected a vector of {len} values",
                    at.value, t.shape
                ),
            );
            return None;
        }
        Some(t.data)
    }

    fn scalar(&mut self, at: &Spanned<ScalarSpec>, field: &str) -> Option<f64> {
        match &at.value {
            ScalarSpec::Value(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Some(*v),
            ScalarSpec::Value(v) => {
                self.fail(
                    at,
                    field,
                    format!("{v} is not a finite float32 number: expected a finite number within ±3.4e38"),
                );
                None
            }
            ScalarSpec::Tensor(path) => {
                let t = self.tensor(at, field, path)?;
                if t.data.len() != 1 {
                    self.fail(
                        at,
                        field,
                        format!("`{path}` has shape {:?}: expected a single value", t.shape),
                    );
                    return None;
                }
                Some(t.data[0])
            }
        }
    }

    /// Loads a weight whose full matrix must be rows x cols; `role` explains the expected shape.
    fn weight(
        &mut self,
        at: &Spanned<WeightSpec>,
        field: &str,
        name: &'static str,
        rows: usize,
        cols: Option<usize>,
        role: &str,
    ) -> Option<Weight> {
        let form = match &at.value {
            WeightSpec::Tensor(path) => {
                let m = self.matrix(at, field, path)?;
                if !fits(m.nrows(), m.ncols(), rows, cols) {
                    self.fail(
                        at,
                        field,
                        format!(
                            "`{path}` is {}x{}: expected {} ({role})",
                            m.nrows(),
                            m.ncols(),
                            dims(rows, cols)
                        ),
                    );
                    return None;
                }
                WeightForm::Dense(m)
            }
            WeightSpec::Map(map) => self.weight_map(at, field, map, rows, cols, role)?,
        };
        Some(Weight { field: name, form })
    }
}

impl Loader<'_> {
    /// Two factor tensors `[P, Q]` of a structured weight.
    fn factor_pair(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        field: &str,
        what: &str,
    ) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
        if list.value.len() != 2 {
            self.fail(
                list,
                field,
                format!(
                    "expected exactly two factor tensors {what}, found {}",
                    list.value.len()
                ),
            );
            return None;
        }
        let p = self.matrix(&list.value[0], &format!("{field}[0]"), &list.value[0].value);
        let q = self.matrix(&list.value[1], &format!("{field}[1]"), &list.value[1].value);
        Some((p?, q?))
    }

    /// The dense rows U of a hybrid KP weight: r x cols with 1 <= r < rows, so the Kronecker
    /// product keeps at least one row.
    fn dense_rows(
        &mut self,
        u: &Spanned<String>,
        field: &str,
        rows: usize,
        cols: Option<usize>,
    ) -> Option<DMatrix<f64>> {
        let m = self.matrix(u, field, &u.value)?;
        if let Some(cols) = cols {
            if m.ncols() != cols {
                self.fail(
                    u,
                    field,
                    format!(
                        "`{}` is {}x{}: the dense rows must have the matrix's {cols} columns",
                        u.value,
                        m.nrows(),
                        m.ncols()
                    ),
                );
                return None;
            }
        }
        if m.nrows() == 0 || m.nrows() >= rows {
            self.fail(
                u,
                field,
                format!(
                    "`{}` has {} rows and the whole matrix {rows}: expected 1 to {} dense rows, \
                     so that the Kronecker product keeps at least one (for none, leave \
                     `dense_rows` out; for all, write the weight as a plain tensor)",
                    u.value,
                    m.nrows(),
                    rows.saturating_sub(1)
                ),
            );
            return None;
        }
        Some(m)
    }

    /// The factors of `kron: [A, B, ...]`: two or more matrices. With three or more, none may
    /// have one element: dropping it (folded into a neighbour) leaves a smaller valid product.
    /// Two factors keep accepting it, as they always have (`1x1 ⊗ B` is B, scaled).
    fn factor_list(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        field: &str,
    ) -> Option<Vec<DMatrix<f64>>> {
        if list.value.len() < 2 {
            self.fail(
                list,
                field,
                format!(
                    "expected two or more factor tensors [A, B, ...], found {}",
                    list.value.len()
                ),
            );
            return None;
        }
        let factors: Vec<Option<DMatrix<f64>>> = list
            .value
            .iter()
            .enumerate()
            .map(|(k, t)| self.matrix(t, &format!("{field}[{k}]"), &t.value))
            .collect();
        let factors: Vec<DMatrix<f64>> = factors.into_iter().collect::<Option<_>>()?;
        for (k, f) in factors.iter().enumerate() {
            if f.len() == 1 && factors.len() > 2 {
                self.fail(
                    &list.value[k],
                    &format!("{field}[{k}]"),
                    format!(
                        "`{}` is a 1x1 factor: it only scales the product; fold it into another factor",
                        list.value[k].value
                    ),
                );
                return None;
            }
        }
        Some(factors)
    }

    /// Records that the build reads the file `reference` names.
    fn source(&mut self, reference: &str) {
        let file = tensor::file_of(reference, self.base());
        if !self.sources.contains(&file) {
            self.sources.push(file);
        }
    }

    /// One array of a sparse matrix given by its parts, any dtype (checked when assembled).
    fn sparse_array(&mut self, at: &Spanned<String>, field: &str) -> Option<Array> {
        self.source(&at.value);
        match tensor::load_with(self.reader, &at.value, self.base()) {
            Ok(tensor) => Some(Array {
                name: at.value.clone(),
                tensor,
            }),
            Err(e) => {
                self.fail(at, field, e.to_string());
                None
            }
        }
    }

    /// A sparse matrix (a doping overlay or a pruned weight) of `rows x cols`: a full-size
    /// matrix, a scipy.sparse `save_npz` file, or the map of its arrays. Only the non-zeros
    /// of the compact forms are read and kept.
    fn sparse_matrix(
        &mut self,
        s: &Spanned<SparseSpec>,
        field: &str,
        rows: usize,
        cols: Option<usize>,
        what: &str,
    ) -> Option<SparseMatrix> {
        let stored = match &s.value {
            SparseSpec::Tensor(path) => {
                let Some(file) = tensor::whole_npz(path, self.base()) else {
                    return self.full_size_sparse(s, path, field, rows, cols, what);
                };
                self.source(path);
                match sparse::read_scipy(self.reader, &file, path) {
                    Ok(Some(stored)) => {
                        if !fits(stored.rows, stored.cols, rows, cols) {
                            self.fail(
                                s,
                                field,
                                format!(
                                    "`{path}` holds a {}x{} sparse matrix: {what} must be {}",
                                    stored.rows,
                                    stored.cols,
                                    dims(rows, cols)
                                ),
                            );
                            return None;
                        }
                        stored
                    }
                    // Not a scipy.sparse file: an archive of one full-size matrix.
                    Ok(None) => return self.full_size_sparse(s, path, field, rows, cols, what),
                    Err(e) => {
                        self.fail(s, field, e);
                        return None;
                    }
                }
            }
            SparseSpec::Parts(p) => self.sparse_parts(s, p, field, rows, cols, what)?,
        };
        match sparse::assemble(&stored) {
            Ok(m) => Some(m),
            Err(e) => {
                self.fail(s, field, e);
                None
            }
        }
    }

    /// The arrays of `{shape, values, rows, cols}` or `{shape, values, indptr, indices}`.
    fn sparse_parts(
        &mut self,
        s: &Spanned<SparseSpec>,
        p: &SparseParts,
        field: &str,
        rows: usize,
        cols: Option<usize>,
        what: &str,
    ) -> Option<Stored> {
        let sf = format!("{field}.shape");
        let shape: Vec<i64> = p.shape.value.iter().map(|d| d.value).collect();
        let (r, c) = match shape[..] {
            [r, c] if r >= 1 && c >= 1 => (r as usize, c as usize),
            _ => {
                self.fail(
                    &p.shape,
                    &sf,
                    format!(
                        "{shape:?} is not a matrix's shape: expected [rows, columns], two \
                         positive whole numbers"
                    ),
                );
                return None;
            }
        };
        if !fits(r, c, rows, cols) {
            self.fail(
                &p.shape,
                &sf,
                format!("shape [{r}, {c}]: {what} must be {}", dims(rows, cols)),
            );
            return None;
        }
        let f = |name: &str| format!("{field}.{name}");
        let pair = match (&p.rows, &p.cols, &p.indptr, &p.indices) {
            (Some(a), Some(b), None, None) => Some((a, "rows", b, "cols", false)),
            (None, None, Some(a), Some(b)) => Some((a, "indptr", b, "indices", true)),
            _ => None,
        };
        let Some((a, an, b, bn, csr)) = pair else {
            self.fail(
                s,
                field,
                "expected `shape` and `values` with either `rows` and `cols` (coordinates) or \
                 `indptr` and `indices` (compressed rows)",
            );
            return None;
        };
        let values = self.sparse_array(&p.values, &f("values"));
        let a = self.sparse_array(a, &f(an));
        let b = self.sparse_array(b, &f(bn));
        let (values, a, b) = (values?, a?, b?);
        let positions = if csr {
            Positions::Csr {
                indptr: a,
                indices: b,
            }
        } else {
            Positions::Coo { row: a, col: b }
        };
        Some(Stored {
            rows: r,
            cols: c,
            values,
            positions,
        })
    }

    /// A full-size matrix read as sparse (a doping overlay or a pruned weight); the caller has
    /// already found it is not a scipy.sparse file.
    fn full_size_sparse(
        &mut self,
        s: &Spanned<SparseSpec>,
        path: &str,
        field: &str,
        rows: usize,
        cols: Option<usize>,
        what: &str,
    ) -> Option<SparseMatrix> {
        let m = self.dense_matrix(s, field, path)?;
        if !fits(m.nrows(), m.ncols(), rows, cols) {
            self.fail(
                s,
                field,
                format!(
                    "`{path}` is {}x{}: {what} must be the full {} matrix (zeros where it has no entry)",
                    m.nrows(),
                    m.ncols(),
                    dims(rows, cols)
                ),
            );
            return None;
        }
        Some(SparseMatrix::from_dense(&m))
    }

    fn weight_map(
        &mut self,
        at: &Spanned<WeightSpec>,
        field: &str,
        map: &WeightMap,
        rows: usize,
        cols: Option<usize>,
        role: &str,
    ) -> Option<WeightForm> {
        let forms = [
            map.kron.is_some(),
            map.lowrank.is_some(),
            map.sparse.is_some(),
        ];
        if forms.iter().filter(|&&f| f).count() != 1 {
            self.fail(
                at,
                field,
                "expected exactly one of `kron` (with an optional `dope`), `lowrank` or `sparse`",
            );
            return None;
        }
        if map.dense_rows.is_some() && map.kron.is_none() {
            self.fail(
                at,
                &format!("{field}.dense_rows"),
                "`dense_rows` goes with `kron`: hybrid KP, W = [U ; kron(A, B, ...)]",
            );
            return None;
        }
        if map.dope.is_some() && map.kron.is_none() {
            self.fail(
                at,
                &format!("{field}.dope"),
                "`dope` goes with `kron`: the overlay of W = kron(A, B) + S",
            );
            return None;
        }
        if let Some(kron) = &map.kron {
            let kf = format!("{field}.kron");
            // Hybrid KP: U holds the first r rows, the product the other rows - r.
            let dense_rows = match &map.dense_rows {
                None => None,
                Some(u) => Some(self.dense_rows(u, &format!("{field}.dense_rows"), rows, cols)?),
            };
            let factors = self.factor_list(kron, &kf)?;
            let kp_rows = rows - dense_rows.as_ref().map_or(0, DMatrix::nrows);
            let r = factors
                .iter()
                .fold(1usize, |p, f| p.saturating_mul(f.nrows()));
            let c = factors
                .iter()
                .fold(1usize, |p, f| p.saturating_mul(f.ncols()));
            if !fits(r, c, kp_rows, cols) {
                let shapes: Vec<String> = factors
                    .iter()
                    .map(|f| format!("({}x{})", f.nrows(), f.ncols()))
                    .collect();
                let which = match cols {
                    Some(cols) if r == kp_rows && c != cols => {
                        format!("the columns multiply to {c}, not {cols}")
                    }
                    _ if r != kp_rows => format!("the rows multiply to {r}, not {kp_rows}"),
                    _ => "the shape differs".to_owned(),
                };
                let expected = match &dense_rows {
                    Some(u) => format!(
                        "{}: the rows of the {} matrix ({role}) below the {} dense rows",
                        dims(kp_rows, cols),
                        dims(rows, cols),
                        u.nrows()
                    ),
                    None => format!("{} ({role})", dims(rows, cols)),
                };
                self.fail(
                    kron,
                    &kf,
                    format!(
                        "factors {} give a {r}x{c} matrix: expected {expected}; {which}",
                        shapes.join(" ⊗ "),
                    ),
                );
                return None;
            }
            // The overlay is checked against the product's size when the layer's is unknown.
            let cols = Some(c);
            let dope = match &map.dope {
                None => None,
                Some(s) => Some(self.sparse_matrix(
                    s,
                    &format!("{field}.dope"),
                    rows,
                    cols,
                    "the overlay",
                )?),
            };
            return Some(WeightForm::Kron {
                factors,
                dense_rows,
                dope,
            });
        }
        if let Some(lowrank) = &map.lowrank {
            let lf = format!("{field}.lowrank");
            let (u, v) = self.factor_pair(lowrank, &lf, "[U, V]")?;
            if u.ncols() != v.nrows() || !fits(u.nrows(), v.ncols(), rows, cols) {
                self.fail(
                    lowrank,
                    &lf,
                    format!(
                        "U ({}x{}) · V ({}x{}) must be ({rows}x r) · (r x {}) ({role})",
                        u.nrows(),
                        u.ncols(),
                        v.nrows(),
                        v.ncols(),
                        cols.map_or("inputs".to_owned(), |c| c.to_string())
                    ),
                );
                return None;
            }
            return Some(WeightForm::LowRank { u, v });
        }
        let s = map.sparse.as_ref()?;
        let m = self.sparse_matrix(s, &format!("{field}.sparse"), rows, cols, "a sparse weight")?;
        Some(WeightForm::Sparse(m))
    }
}

/// Largest element count of one array in generated code: its indices and size constants are
/// `int` in C and `usize` in Rust, both 32 bits on every Cortex-M.
const MAX_GENERATED_INDEX: usize = i32::MAX as usize;

/// A matrix of `r x c` fits `rows x cols` (`cols` unknown: an earlier problem hid it).
fn fits(r: usize, c: usize, rows: usize, cols: Option<usize>) -> bool {
    r == rows && cols.is_none_or(|cols| c == cols)
}

/// `rows x cols` as expected, or only the rows when the columns are unknown.
fn dims(rows: usize, cols: Option<usize>) -> String {
    match cols {
        Some(c) => format!("{rows}x{c}"),
        None => format!("{rows} rows"),
    }
}

fn positive(loader: &mut Loader, value: &Spanned<i64>, field: &str, what: &str) -> Option<usize> {
    if value.value >= 1 && value.value <= 1 << 20 {
        Some(value.value as usize)
    } else {
        loader.fail(
            value,
            field,
            format!(
                "{} is not a valid {what}: expected a whole number from 1 to 1048576",
                value.value
            ),
        );
        None
    }
}

/// Validates a parsed spec and loads every tensor it names. Reports all problems found.
pub fn load_model(doc: &SpecDocument) -> Result<Model, Diagnostics> {
    load_model_with(&crate::base::input::Reader::disk(), doc)
}

/// [`load_model`], reading tensors through `reader`.
pub fn load_model_with(
    reader: &crate::base::input::Reader,
    doc: &SpecDocument,
) -> Result<Model, Diagnostics> {
    let mut l = Loader {
        reader,
        doc,
        errors: Diagnostics::default(),
        sources: vec![doc.path.clone()],
    };
    let spec = &doc.spec;
    if let Err(msg) = check_identifier(&spec.name.value) {
        l.fail(&spec.name, "name", msg);
    }
    let features = positive(
        &mut l,
        &spec.input.value.features,
        "input.features",
        "feature count",
    );
    let steps = match &spec.input.value.steps {
        Some(s) => positive(&mut l, s, "input.steps", "step count"),
        None => Some(1),
    };
    if spec.layers.value.is_empty() {
        l.fail(
            &spec.layers,
            "layers",
            "the model has no layers: expected at least one",
        );
    }
    let mut inputs = features;
    let mut layers = Vec::new();
    for (i, layer) in spec.layers.value.iter().enumerate() {
        let path = format!("layers[{i}]");
        let (units, built) = load_layer(&mut l, layer, &path, inputs);
        inputs = units;
        if let Some(b) = built {
            for w in b.cell.weights() {
                let elements = w.rows().checked_mul(w.cols());
                if elements.is_none_or(|n| n > MAX_GENERATED_INDEX) {
                    l.fail(
                        layer,
                        &format!("{path}.{}", w.field),
                        format!(
                            "the {}x{} matrix has more than {MAX_GENERATED_INDEX} elements: \
                             beyond the 32-bit indices of the generated code",
                            w.rows(),
                            w.cols()
                        ),
                    );
                }
            }
            layers.push(b);
        }
    }
    if let (Some(f), Some(st)) = (features, steps) {
        if f.saturating_mul(st) > MAX_GENERATED_INDEX {
            l.fail(
                &spec.input,
                "input",
                format!(
                    "steps x features = {st} x {f} is more than {MAX_GENERATED_INDEX} values per \
                     sequence: beyond the 32-bit indices and `int` constants of the generated code"
                ),
            );
        }
    }
    // The calibration file is read when a fixed-point build quantizes; check it here too, so a
    // bad one is reported at its line in the spec.
    if let (Some(c), Some(f), Some(st)) = (&spec.calibration, features, steps) {
        let path = doc.base_dir().join(&c.value);
        if let Err(d) = crate::base::sequences::TestInputs::from_file(&path, st, f) {
            let why: Vec<String> = d.0.iter().map(|e| e.message.clone()).collect();
            l.fail(
                c,
                "calibration",
                format!(
                    "calibration inputs `{}` are unusable: {}",
                    c.value,
                    why.join("; ")
                ),
            );
        }
    }
    let model = Model {
        name: spec.name.value.clone(),
        input_features: features.unwrap_or(0),
        steps: steps.unwrap_or(0),
        layers,
        precision: spec
            .precision
            .as_ref()
            .map_or_else(Precision::default, |p| p.value),
        activations: spec
            .activations
            .as_ref()
            .map_or_else(Activations::default, |a| a.value),
        optimize: spec
            .optimize
            .as_ref()
            .map_or_else(Optimize::default, |o| o.value),
        calibration: spec
            .calibration
            .as_ref()
            .map(|c| doc.base_dir().join(&c.value)),
        sources: l.sources,
    };
    l.errors.into_result(model)
}

/// Loads one layer given its input size (`None`: unknown after an earlier problem, so only what
/// does not depend on it is checked). Returns the layer's unit count (when valid) whatever
/// else is wrong, so the next layer is still checked, and the layer when all of it is valid.
fn load_layer(
    l: &mut Loader,
    at: &Spanned<LayerSpec>,
    path: &str,
    inputs: Option<usize>,
) -> (Option<usize>, Option<Layer>) {
    let units = positive(l, &at.value.units, &format!("{path}.units"), "unit count");
    let layer = load_layer_with_units(l, at, path, inputs, units);
    (units, layer)
}

fn load_layer_with_units(
    l: &mut Loader,
    at: &Spanned<LayerSpec>,
    path: &str,
    inputs: Option<usize>,
    units: Option<usize>,
) -> Option<Layer> {
    let spec = &at.value;
    let kind = spec.kind.value;
    let shown_inputs = inputs.map_or("inputs".to_owned(), |n| n.to_string());

    // Fields that do not belong to this kind are mistakes, not silently ignored.
    let given: [(&str, Option<serde_saphyr::Location>); 12] = [
        ("w_ih", spec.w_ih.as_ref().map(|v| v.referenced)),
        ("w_hh", spec.w_hh.as_ref().map(|v| v.referenced)),
        ("b_ih", spec.b_ih.as_ref().map(|v| v.referenced)),
        ("b_hh", spec.b_hh.as_ref().map(|v| v.referenced)),
        ("u", spec.u.as_ref().map(|v| v.referenced)),
        ("b_z", spec.b_z.as_ref().map(|v| v.referenced)),
        ("b_h", spec.b_h.as_ref().map(|v| v.referenced)),
        ("zeta", spec.zeta.as_ref().map(|v| v.referenced)),
        ("nu", spec.nu.as_ref().map(|v| v.referenced)),
        ("w", spec.w.as_ref().map(|v| v.referenced)),
        ("b", spec.b.as_ref().map(|v| v.referenced)),
        ("activation", spec.activation.as_ref().map(|v| v.referenced)),
    ];
    let allowed = fields_of(kind);
    let mut ok = true;
    for (name, location) in given {
        if let Some(location) = location {
            if allowed.contains(&name) {
                continue;
            }
            let d = l.doc.error_at_location(
                location,
                format!("{path}.{name}"),
                format!(
                    "field `{name}` does not apply to a `{}` layer: expected only {}",
                    kind.as_str(),
                    allowed.join(", ")
                ),
            );
            l.errors.push(d);
            ok = false;
        }
    }
    let units = units?;
    let mut required = |name: &str, present: bool| {
        if !present {
            l.fail(
                at,
                &format!("{path}.{name}"),
                format!("a `{}` layer needs field `{name}`", kind.as_str()),
            );
            ok = false;
        }
    };
    match kind {
        LayerKind::Lstm | LayerKind::Gru => {
            required("w_ih", spec.w_ih.is_some());
            required("w_hh", spec.w_hh.is_some());
        }
        LayerKind::Fastgrnn => {
            required("w", spec.w.is_some());
            required("u", spec.u.is_some());
            required("zeta", spec.zeta.is_some());
            required("nu", spec.nu.is_some());
        }
        LayerKind::Dense => required("w", spec.w.is_some()),
    }
    if !ok {
        return None;
    }
    let f = |name: &str| format!("{path}.{name}");
    // Optional biases default to zero.
    let bias = |l: &mut Loader, b: &Option<Spanned<String>>, name: &str, len: usize| match b {
        Some(b) => l.vector(b, &f(name), len),
        None => Some(vec![0.0; len]),
    };
    let cell = match kind {
        LayerKind::Lstm | LayerKind::Gru => {
            let g = if kind == LayerKind::Lstm { 4 } else { 3 };
            let gates = if kind == LayerKind::Lstm {
                "i,f,g,o"
            } else {
                "r,z,n"
            };
            let w_ih = l.weight(
                spec.w_ih.as_ref()?,
                &f("w_ih"),
                "w_ih",
                g * units,
                inputs,
                &format!("{g}·units x inputs = {g}·{units} x {shown_inputs}, gates {gates}"),
            );
            let w_hh = l.weight(
                spec.w_hh.as_ref()?,
                &f("w_hh"),
                "w_hh",
                g * units,
                Some(units),
                &format!("{g}·units x units = {g}·{units} x {units}, gates {gates}"),
            );
            let b_ih = bias(l, &spec.b_ih, "b_ih", g * units);
            let b_hh = bias(l, &spec.b_hh, "b_hh", g * units);
            let cell = GatedCell {
                w_ih: w_ih?,
                w_hh: w_hh?,
                b_ih: b_ih?,
                b_hh: b_hh?,
            };
            if kind == LayerKind::Lstm {
                Cell::Lstm(cell)
            } else {
                Cell::Gru(cell)
            }
        }
        LayerKind::Fastgrnn => {
            let w = l.weight(
                spec.w.as_ref()?,
                &f("w"),
                "w",
                units,
                inputs,
                &format!("units x inputs = {units} x {shown_inputs}"),
            );
            let u = l.weight(
                spec.u.as_ref()?,
                &f("u"),
                "u",
                units,
                Some(units),
                &format!("units x units = {units} x {units}"),
            );
            let b_z = bias(l, &spec.b_z, "b_z", units);
            let b_h = bias(l, &spec.b_h, "b_h", units);
            let zeta = l.scalar(spec.zeta.as_ref()?, &f("zeta"));
            let nu = l.scalar(spec.nu.as_ref()?, &f("nu"));
            Cell::FastGrnn(FastGrnnCell {
                w: w?,
                u: u?,
                b_z: b_z?,
                b_h: b_h?,
                zeta: zeta?,
                nu: nu?,
            })
        }
        LayerKind::Dense => {
            let w = l.weight(
                spec.w.as_ref()?,
                &f("w"),
                "w",
                units,
                inputs,
                &format!("units x inputs = {units} x {shown_inputs}"),
            );
            let b = bias(l, &spec.b, "b", units);
            Cell::Dense(DenseLayer {
                w: w?,
                b: b?,
                activation: spec
                    .activation
                    .as_ref()
                    .map(|a| a.value)
                    .unwrap_or_default(),
            })
        }
    };
    Some(Layer {
        inputs: inputs?,
        units,
        cell,
    })
}

/// Refuses a spec whose densely stored tensors (plain weights, Kronecker and low-rank factors,
/// biases, and the non-zero values of sparse and doping matrices given as their non-zeros)
/// already exceed `flash_budget` bytes at `precision`'s value width (a lower bound: fixed-point
/// biases are wider), from their headers alone: before any tensor
/// body is read or inflated, so a huge or bomb-like file costs nothing. Tensors whose header
/// cannot be read are left to the full load, which reports them properly; a sparse or doping
/// matrix given as a full-size matrix is not counted (its non-zeros are known only once read).
pub fn check_flash_from_headers(
    reader: &crate::base::input::Reader,
    doc: &SpecDocument,
    flash_budget: u64,
    target_name: &str,
    precision: crate::spec::Precision,
) -> Result<(), Diagnostics> {
    let base = doc.base_dir();
    let mut refs: Vec<&str> = Vec::new();
    let mut values: u64 = 0;
    for layer in &doc.spec.layers.value {
        let l = &layer.value;
        for w in [&l.w_ih, &l.w_hh, &l.u, &l.w].into_iter().flatten() {
            match &w.value {
                WeightSpec::Tensor(p) => refs.push(p),
                WeightSpec::Map(m) => {
                    for list in [&m.kron, &m.lowrank].into_iter().flatten() {
                        refs.extend(list.value.iter().map(|s| s.value.as_str()));
                    }
                    refs.extend(m.dense_rows.iter().map(|u| u.value.as_str()));
                    for s in [&m.dope, &m.sparse].into_iter().flatten() {
                        match &s.value {
                            SparseSpec::Tensor(p) => {
                                if let Some(file) = tensor::whole_npz(p, base) {
                                    let nnz = sparse::peek_scipy_nnz(reader, &file);
                                    values = values.saturating_add(nnz.unwrap_or(0));
                                }
                            }
                            SparseSpec::Parts(p) => refs.push(&p.values.value),
                        }
                    }
                }
            }
        }
        for b in [&l.b_ih, &l.b_hh, &l.b_z, &l.b_h, &l.b]
            .into_iter()
            .flatten()
        {
            refs.push(&b.value);
        }
    }
    for r in refs {
        // A scipy.sparse file where a dense matrix goes is stored densely: its declared shape.
        let scipy = tensor::whole_npz(r, base).and_then(|f| sparse::peek_scipy_shape(reader, &f));
        if let Some((rows, cols)) = scipy {
            values = values.saturating_add((rows as u64).saturating_mul(cols as u64));
        } else if let Ok(shape) = tensor::peek_shape_with(reader, r, base) {
            let n = shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                .unwrap_or(u64::MAX);
            values = values.saturating_add(n);
        }
    }
    let bytes = values.saturating_mul(precision.value_bytes() as u64);
    if bytes <= flash_budget {
        return Ok(());
    }
    Err(Diagnostic::new(
        crate::base::diagnostic::Place::file(&doc.path),
        format!(
            "model `{}` stores at least {values} values (by its tensor headers), \
             {bytes} bytes of flash at {}: over the {flash_budget}-byte flash budget of \
             target `{target_name}`; no tensor was read",
            doc.spec.name.value,
            precision.as_str()
        ),
    )
    .with_help(
        "compress the model further, choose a larger target, or raise the budget with \
         --flash-budget BYTES",
    )
    .into())
}
