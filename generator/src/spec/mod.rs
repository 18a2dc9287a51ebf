//! Stage 1: the YAML model spec as the user wrote it (raw, unvalidated, with source locations).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};

/// A parsed spec file together with its text (kept for error snippets) and location.
#[derive(Debug)]
pub struct SpecDocument {
    pub path: PathBuf,
    pub text: String,
    pub spec: Spec,
}

impl SpecDocument {
    /// Directory that tensor paths in the spec are relative to.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// A diagnostic pointing at a spanned value of this spec.
    pub fn error_at<T>(
        &self,
        value: &Spanned<T>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Diagnostic {
        self.error_at_location(value.referenced, field, msg)
    }

    /// A diagnostic pointing at a source location of this spec.
    pub fn error_at_location(
        &self,
        loc: serde_saphyr::Location,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Place::at(&self.path, loc.line(), loc.column(), field), msg)
            .with_source(&self.text)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// C identifier prefix and Rust crate name.
    pub name: Spanned<String>,
    pub input: Spanned<InputSpec>,
    pub layers: Spanned<Vec<Spanned<LayerSpec>>>,
    /// Arithmetic of the generated code; `--precision` overrides it. Omitted = f32.
    #[serde(default)]
    pub precision: Option<Spanned<Precision>>,
    /// Calibration inputs for fixed point (float .npy, sequences x steps x features), relative
    /// to the spec; `--calibrate` overrides it.
    #[serde(default)]
    pub calibration: Option<Spanned<String>>,
    /// How f32 builds evaluate sigmoid and tanh; `--activations` overrides it. Omitted = table.
    #[serde(default)]
    pub activations: Option<Spanned<Activations>>,
    /// What the plan optimizes for; `--optimize` overrides it. Omitted = speed.
    #[serde(default)]
    pub optimize: Option<Spanned<Optimize>>,
}

/// A language kpgen generates: what emit prints and what verify builds and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    C,
    Rust,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::Rust => "rust",
        }
    }
}

/// The arithmetic of the generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision throughout.
    #[default]
    F32,
    /// int16 weights and activations, int16 gates and cell state, int64 accumulation.
    Int16,
    /// int8 weights and activations, int16 gates and cell state, int32 accumulation.
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int16 => "int16",
            Precision::Int8 => "int8",
        }
    }

    pub fn is_fixed(self) -> bool {
        self != Precision::F32
    }

    /// Bytes of one stored weight or activation value.
    pub fn value_bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::Int16 => 2,
            Precision::Int8 => 1,
        }
    }
}

/// What a plan optimizes for. Both objectives compute the same numbers (bit for bit in fixed
/// point); they choose among the same kernel forms differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Optimize {
    /// The fastest forms the target's plan rules give: small factors unrolled into literals,
    /// register tiles, straight-line code for small overlays.
    #[default]
    Speed,
    /// The smallest: every factor a stored array read by a loop, no register tiles, every
    /// overlay in CSR (see [`crate::plan::rules_for`]), integer bias codes stored in the
    /// narrowest type that holds them.
    Size,
}

impl Optimize {
    pub fn as_str(self) -> &'static str {
        match self {
            Optimize::Speed => "speed",
            Optimize::Size => "size",
        }
    }
}

/// How single-precision code evaluates sigmoid and tanh (fixed point always uses its Q15
/// tables). The f64 reference computes the same definition, so `kpgen test` compares like with
/// like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Activations {
    /// Linear interpolation in one 258-entry table of sigmoid over [0, 12.8] (tanh through
    /// tanh(x) = 2 sigmoid(2x) - 1): no exp, no division; absolute error below 4.1e-5.
    #[default]
    Table,
    /// A polynomial exp and one division per activation: float rounding error only, about
    /// four times the instructions.
    Exact,
}

impl Activations {
    pub fn as_str(self) -> &'static str {
        match self {
            Activations::Table => "table",
            Activations::Exact => "exact",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub features: Spanned<i64>,
    /// Omitted = 1 (feed-forward).
    #[serde(default)]
    pub steps: Option<Spanned<i64>>,
}

/// One layer. Every kind's fields live in one struct (rather than an internally tagged enum) so
/// that serde keeps exact locations and `deny_unknown_fields`; the model stage checks which
/// fields a kind takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    pub kind: Spanned<LayerKind>,
    pub units: Spanned<i64>,
    // lstm / gru
    pub w_ih: Option<Spanned<WeightSpec>>,
    pub w_hh: Option<Spanned<WeightSpec>>,
    pub b_ih: Option<Spanned<String>>,
    pub b_hh: Option<Spanned<String>>,
    // fastgrnn
    pub u: Option<Spanned<WeightSpec>>,
    pub b_z: Option<Spanned<String>>,
    pub b_h: Option<Spanned<String>>,
    pub zeta: Option<Spanned<ScalarSpec>>,
    pub nu: Option<Spanned<ScalarSpec>>,
    // fastgrnn and dense
    pub w: Option<Spanned<WeightSpec>>,
    // dense
    pub b: Option<Spanned<String>>,
    pub activation: Option<Spanned<Activation>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Lstm,
    Gru,
    Fastgrnn,
    Dense,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Lstm => "lstm",
            LayerKind::Gru => "gru",
            LayerKind::Fastgrnn => "fastgrnn",
            LayerKind::Dense => "dense",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    None,
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
}

/// A weight matrix: a plain tensor path (dense) or a structured form.
#[derive(Debug)]
pub enum WeightSpec {
    Tensor(String),
    /// The map form; the model stage checks that exactly one of its forms is given.
    Map(Box<WeightMap>),
}

/// `{kron: [A, B]}`, `{kron: [A, B], dope: S}`, `{lowrank: [U, V]}` or `{sparse: S}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightMap {
    /// W = kron(A, B), numpy's np.kron convention.
    pub kron: Option<Spanned<Vec<Spanned<String>>>>,
    /// The doping overlay S of W = kron(A, B) + S: a full-size matrix, zeros where not doped,
    /// or its non-zeros.
    pub dope: Option<Spanned<SparseSpec>>,
    /// W = U·V, U rows x r, V r x cols.
    pub lowrank: Option<Spanned<Vec<Spanned<String>>>>,
    /// W = S, a pruned matrix: a full-size matrix whose zeros are dropped, or its non-zeros.
    pub sparse: Option<Spanned<SparseSpec>>,
    /// Hybrid KP: W = [U ; kron(A, B, ...)], U the first r rows of W kept dense (r x cols).
    pub dense_rows: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for WeightSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WeightSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tensor path (dense weight) or a map: {kron: [A, B]}, {kron: [A, B], dope: S}, {lowrank: [U, V]} or {sparse: S}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WeightSpec, E> {
                Ok(WeightSpec::Tensor(v.to_owned()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<WeightSpec, M::Error> {
                let m = WeightMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(WeightSpec::Map(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A sparse matrix (`dope`, `sparse`): a tensor reference, which is either a full-size matrix
/// (zeros where it has no entry) or a whole scipy.sparse `save_npz` file, or the map of its
/// non-zeros' arrays.
#[derive(Debug)]
pub enum SparseSpec {
    Tensor(String),
    Parts(Box<SparseParts>),
}

/// `{shape: [M, N], values: V, rows: R, cols: C}` (coordinates) or `{shape: [M, N], values: V,
/// indptr: P, indices: I}` (compressed rows); each array is any tensor reference. The model
/// stage checks that exactly one pair of index arrays is given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseParts {
    /// The full matrix's rows and columns.
    pub shape: Spanned<Vec<Spanned<i64>>>,
    /// The non-zero values, a 1-D float array.
    pub values: Spanned<String>,
    /// Row index of each value (coordinates).
    pub rows: Option<Spanned<String>>,
    /// Column index of each value (coordinates).
    pub cols: Option<Spanned<String>>,
    /// Row pointers, M + 1 of them (compressed rows).
    pub indptr: Option<Spanned<String>>,
    /// Column index of each value (compressed rows).
    pub indices: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for SparseSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SparseSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tensor path (a full-size matrix or a scipy.sparse .npz file) or a map {shape: [M, N], values: V, rows: R, cols: C} or {shape: [M, N], values: V, indptr: P, indices: I}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SparseSpec, E> {
                Ok(SparseSpec::Tensor(v.to_owned()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<SparseSpec, M::Error> {
                let m = SparseParts::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SparseSpec::Parts(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

impl SparseSpec {
    /// The tensor references it names, as written.
    pub fn references(&self) -> Vec<&str> {
        match self {
            SparseSpec::Tensor(p) => vec![p],
            SparseSpec::Parts(p) => [
                Some(&p.values),
                p.rows.as_ref(),
                p.cols.as_ref(),
                p.indptr.as_ref(),
                p.indices.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|s| s.value.as_str())
            .collect(),
        }
    }
}

/// A scalar parameter (FastGRNN's zeta, nu): a number written inline or a tensor path.
#[derive(Debug, Clone)]
pub enum ScalarSpec {
    Value(f64),
    Tensor(String),
}

impl<'de> Deserialize<'de> for ScalarSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a tensor path")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Value(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Value(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarSpec, E> {
                Ok(ScalarSpec::Tensor(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a spec from text; `path` is used for messages and to resolve tensor paths.
pub fn parse_spec(path: &Path, text: &str) -> Result<SpecDocument, Diagnostics> {
    refuse_tags_and_streams(path, text)?;
    match serde_saphyr::from_str::<Spec>(text) {
        Ok(spec) => Ok(SpecDocument {
            path: path.to_path_buf(),
            text: text.to_owned(),
            spec,
        }),
        Err(err) => {
            let mut place = Place::file(path);
            if let Some(loc) = err.location() {
                place.line = (loc.line() > 0).then_some(loc.line());
                place.column = (loc.column() > 0).then_some(loc.column());
            }
            let message = err.without_snippet().to_string();
            // saphyr appends " at line L column C"; the place already says it.
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            let message = in_our_words(&message, text, &mut place);
            if let (Some(line), Some(col)) = (place.line, place.column) {
                place.field = field_path_at(text, line, col);
            }
            Err(Diagnostic::new(place, format!("invalid spec: {message}"))
                .with_source(text)
                .with_help(SPEC_HELP)
                .into())
        }
    }
}

/// The YAML library's message in kpgen's words: no API names, no options the user cannot set.
fn in_our_words(message: &str, text: &str, place: &mut Place) -> String {
    // The spec's numbers are all counts: say so rather than name a Rust type.
    let message = message
        .replace("invalid i64", "expected a whole number")
        .replace("unknown variant", "unknown value")
        .replace(
            "expected string scalar",
            "expected a single value here (a number, name or path), not a list or mapping",
        );
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`: each field may be given once");
    }
    if message.contains("from_str_multiple") || message.contains("multiple documents") {
        return "the file holds more than one YAML document (`---`): a spec is one document"
            .to_owned();
    }
    if message.contains("budget") {
        return "the spec is too large or too deeply nested to be a model spec (a YAML parsing \
                limit was reached)"
            .to_owned();
    }
    if message.contains("found a tab") || message.contains("tab") && message.contains("indent") {
        // The library points at the scalar before the tab: point at the tab itself.
        let from = place.line.unwrap_or(1) as usize;
        for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
            let indent: String = line
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            if let Some(col) = indent.find('\t') {
                place.line = Some(i as u64 + 1);
                place.column = Some(col as u64 + 1);
                break;
            }
        }
        return "a tab in the indentation: YAML indents with spaces only".to_owned();
    }
    message
}

/// The dotted field path (`layers[0].units`) of the YAML node starting at `line`:`column`
/// (1-based), so a type error names its field as every other error does.
fn field_path_at(text: &str, line: u64, column: u64) -> Option<String> {
    use granit_parser::{Event, Parser};
    enum Frame {
        /// A mapping: the key being read (`None` while the next scalar is a key).
        Map(Option<String>),
        Seq(usize),
    }
    fn path(frames: &[Frame]) -> String {
        let mut p = String::new();
        for f in frames {
            match f {
                Frame::Map(Some(k)) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Frame::Map(None) => {}
                Frame::Seq(i) => p.push_str(&format!("[{i}]")),
            }
        }
        p
    }
    let mut frames: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let here = span.start.line() as u64 == line && span.start.col() as u64 + 1 == column;
        let is_key = matches!(frames.last(), Some(Frame::Map(None)));
        match &event {
            Event::Scalar(value, ..) if is_key => {
                if let Some(Frame::Map(k)) = frames.last_mut() {
                    *k = Some(value.to_string());
                }
                continue;
            }
            Event::Scalar(..)
            | Event::MappingStart(..)
            | Event::SequenceStart(..)
            | Event::Alias(..)
                if here =>
            {
                let p = path(&frames);
                return (!p.is_empty()).then_some(p);
            }
            _ => {}
        }
        let value_ended = match event {
            Event::MappingStart(..) => {
                frames.push(Frame::Map(None));
                false
            }
            Event::SequenceStart(..) => {
                frames.push(Frame::Seq(0));
                false
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
                true
            }
            Event::Scalar(..) | Event::Alias(..) => true,
            _ => false,
        };
        // After a value the enclosing mapping wants a key, a sequence its next item.
        if value_ended {
            match frames.last_mut() {
                Some(Frame::Map(k)) => *k = None,
                Some(Frame::Seq(i)) => *i += 1,
                None => {}
            }
        }
    }
    None
}

/// Refuses what serde-saphyr would silently accept: YAML tags (`!!python/object`, `!foo`),
/// which it drops, and a second document after the spec.
fn refuse_tags_and_streams(path: &Path, text: &str) -> Result<(), Diagnostics> {
    use granit_parser::{Event, Parser};
    let mut documents = 0;
    let at = |m: &granit_parser::Marker| {
        Place::at(path, m.line() as u64, m.col() as u64 + 1, String::new())
    };
    for event in Parser::new_from_str(text) {
        // Syntax errors are serde-saphyr's to report, with their field path.
        let Ok((event, span)) = event else { break };
        let tag = match &event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    let mut place = at(&span.start);
                    place.field = None;
                    return Err(Diagnostic::new(
                        place,
                        "invalid spec: the file holds more than one YAML document (`---`): a \
                         spec is one document",
                    )
                    .with_source(text)
                    .into());
                }
                None
            }
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, _, tag)
            | Event::MappingStart(_, _, tag) => tag.as_ref(),
            _ => None,
        };
        if let Some(tag) = tag {
            let mut place = at(span.tag_start.as_ref().unwrap_or(&span.start));
            place.field = None;
            return Err(Diagnostic::new(
                place,
                format!(
                    "invalid spec: YAML tag `{}` is not accepted: a spec holds plain values \
                     (numbers, names, paths) only",
                    tag.original()
                ),
            )
            .with_source(text)
            .with_help("remove the tag")
            .into());
        }
    }
    Ok(())
}

const SPEC_HELP: &str =
    "a spec has `name`, `input: {features, steps}` and `layers`; see docs/spec.md";

/// Reads and parses a spec file from the file system (default limits).
pub fn read_spec(path: &Path) -> Result<SpecDocument, Diagnostics> {
    read_spec_with(&crate::base::input::Reader::disk(), path)
}

/// Reads (through `reader`, so within its limits) and parses a spec file.
pub fn read_spec_with(
    reader: &crate::base::input::Reader,
    path: &Path,
) -> Result<SpecDocument, Diagnostics> {
    let bytes = reader
        .spec(path)
        .map_err(|e| Diagnostic::new(Place::file(path), format!("cannot read the spec: {e}")))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count() as u64;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let column = 1 + String::from_utf8_lossy(&good[line_start..]).chars().count() as u64;
            let mut place = Place::file(path);
            place.line = Some(line);
            place.column = Some(column);
            return Err(Diagnostic::new(
                place,
                format!(
                    "invalid spec: not UTF-8 text (byte {} is not valid UTF-8)",
                    e.valid_up_to() + 1
                ),
            )
            .with_help("save the spec as UTF-8")
            .into());
        }
    };
    parse_spec(path, text)
}
