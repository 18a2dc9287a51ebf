//! The bodies of kpgen's fuzz targets, one function per target. The cargo-fuzz binaries in
//! `fuzz_targets/` call them, and `tests/fuzz_regressions.rs` includes this file as a module to
//! replay `fuzz/corpus/` and `fuzz/regressions/` on stable without libFuzzer, so both run
//! exactly the same code. Only `kpgen` and `arbitrary` may be used here (the regression test
//! has nothing else), and no `crate::` paths (this file is a module there).
//!
//! Every input either loads (and then must be consistent) or is refused with an error that
//! renders; a panic, an abort, a hang or unbounded memory is a bug.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use kpgen::base::diagnostic::{Diagnostic, Diagnostics, Place};
use kpgen::base::input::{Limits, Memory, Reader};
use kpgen::base::sparse;
use kpgen::base::tensor::{self, Tensor, TensorError};
use kpgen::model::Model;
use kpgen::spec::SpecDocument;

/// A target's body: one input in, a panic on a bug.
pub type Body = fn(&[u8]);

/// Every target, by the name of its folder under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("spec", spec),
    ("npy", npy),
    ("npz", npz),
    ("safetensors", safetensors),
    ("target_file", target_file),
    ("whole_build", whole_build),
];

/// The built-in targets a build is generated for (chosen by the input).
const CORES: &[&str] = &[
    "cortex-m0",
    "cortex-m3",
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-m55",
];

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

/// The spec parser: the input is the spec file's bytes. A spec that parses is validated against
/// the tensor library (see [`library`]), as `kpgen build` would before planning. The fuzzed
/// text is also rendered as the source snippet of a diagnostic at an input-chosen place.
pub fn spec(data: &[u8]) {
    spec_body(data);
}

fn spec_body(data: &[u8]) {
    let mem = with_library(data);
    let reader = Reader::new(&mem, Limits::default());
    match kpgen::spec::read_spec_with(&reader, Path::new(SPEC)) {
        Ok(doc) => {
            let doc = without_calibration(doc);
            match kpgen::model::load_model_with(&reader, &doc) {
                Ok(model) => check_model(&model),
                Err(d) => render(&d),
            }
        }
        Err(d) => render(&d),
    }
    if let (Some(&l), Some(&c)) = (data.first(), data.get(1)) {
        let line = if l == 255 {
            u64::MAX
        } else {
            u64::from(l % 64)
        };
        let column = if c == 255 { u64::MAX } else { u64::from(c) };
        let text = String::from_utf8_lossy(data);
        let help: String = text.chars().take(200).collect();
        let d = Diagnostic::new(Place::at(Path::new(SPEC), line, column, "field"), "message")
            .with_source(&text)
            .with_help(help);
        render(&d.into());
    }
}

/// The `.npy` reader: the input is the file. A tensor that loads must hold as many values as
/// its shape says; a 2-D one is then used as a dense layer's weight (a 1-D one as its bias).
pub fn npy(data: &[u8]) {
    npy_body(data);
}

fn npy_body(data: &[u8]) {
    let mem = one_file("t.npy", data);
    let reader = Reader::new(&mem, Limits::default());
    let loaded = tensor::load_with(&reader, "t.npy", Path::new(""));
    check_loaded(&loaded);
    let float = tensor::load_float_with(&reader, "t.npy", Path::new(""));
    check_loaded(&float);
    if let Ok(t) = &float {
        as_weight(&mem, t, "t.npy");
    }
}

/// The `.npz` reader: the input is the archive. The tensor is loaded without a member name, then
/// by each member the archive lists (at most 8), then by a name it does not hold. The archive is
/// also read as a scipy.sparse `save_npz` file: what it holds is assembled, and a matrix that
/// assembles must be sorted, without a position twice, inside its shape and finite.
pub fn npz(data: &[u8]) {
    archive("t.npz", data);
    let mem = one_file("t.npz", data);
    let reader = Reader::new(&mem, Limits::default());
    let path = Path::new("t.npz");
    black_box(sparse::peek_scipy_nnz(&reader, path));
    black_box(sparse::peek_scipy_shape(&reader, path));
    if let Ok(Some(stored)) = sparse::read_scipy(&reader, path, "t.npz") {
        if let Ok(m) = sparse::assemble(&stored) {
            assert!(m.is_canonical());
            black_box(m.to_dense(1 << 16));
        }
    }
}

/// The `.safetensors` reader, as [`npz`].
pub fn safetensors(data: &[u8]) {
    archive("t.safetensors", data);
}

/// Target files: the input is the TOML text (lossily decoded). A target that parses must be
/// usable: a small fixed model is generated for it (f32, int8 or int16 by the input's length).
pub fn target_file(data: &[u8]) {
    target_file_body(data);
}

fn target_file_body(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match kpgen::target::parse_target("fuzz.toml", &text) {
        Ok(target) => {
            let models = fixed_models();
            let model = &models[data.len() % models.len()];
            generate(model, &target);
        }
        Err(d) => render(&d),
    }
}

/// The whole build, from a spec and in-memory tensors to generated files (and, when it builds,
/// one inference of the float reference and of the integer reference). The first byte picks
/// the mode and the target core: even, the rest is the spec text, read against the tensor
/// library; odd, the rest drives [`arbitrary`] to choose a structured model whose spec and
/// tensors are then written (shapes usually, not always, fitting).
pub fn whole_build(data: &[u8]) {
    black_box(whole_build_outcome(data));
}

/// How far a [`whole_build`] input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Too short, or arbitrary ran out of bytes.
    NoInput,
    /// Refused by the spec parser.
    Spec,
    /// Refused by the model stage (tensors, shapes, fields).
    Model,
    /// Refused while planning, quantizing or emitting (e.g. over the target's budget).
    Generate,
    /// Generated, and run through the references.
    Built,
}

/// [`whole_build`], saying how far the input got.
pub fn whole_build_outcome(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::NoInput;
    };
    let core = CORES[usize::from(mode >> 1) % CORES.len()];
    let target = kpgen::target::lookup(core).expect("built-in target");
    if mode & 1 == 0 {
        build_from(&with_library(rest), &target)
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(plan) = ModelPlan::arbitrary(&mut u) else {
            return Outcome::NoInput;
        };
        build_from(&plan.write(), &target)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------------

const SPEC: &str = "spec.yaml";

/// Renders errors as the CLI prints them; rendering must not panic either.
fn render(d: &Diagnostics) {
    let text = d.render();
    assert!(d.is_empty() || !text.is_empty(), "empty rendering of {d:?}");
    black_box(text);
    black_box(d.to_string());
}

fn one_file(name: &str, data: &[u8]) -> Memory {
    Memory(BTreeMap::from([(PathBuf::from(name), data.to_vec())]))
}

/// A spec's `calibration:` file is read from the file system, not through the reader (see
/// `kpgen::base::sequences::TestInputs::from_file`), so a fuzzed spec must not name one: it is
/// dropped and quantization uses its documented default (seeded random sequences).
fn without_calibration(mut doc: SpecDocument) -> SpecDocument {
    doc.spec.calibration = None;
    doc
}

fn check_loaded(r: &Result<Tensor, TensorError>) {
    match r {
        Ok(t) => {
            let count = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            assert_eq!(count, Some(t.data.len()), "shape {:?}", t.shape);
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
}

/// A loaded float tensor as the weight (2-D) or bias (1-D) of a one-layer dense model.
fn as_weight(mem: &Memory, t: &Tensor, name: &str) {
    let mut files = mem.0.clone();
    let (units, features, w, b) = match t.shape.as_slice() {
        [r, c] => (*r, *c, name.to_string(), None),
        [n] => {
            let w = format!("m{n}x3.npy");
            let Some(bytes) = library().get(&w) else {
                return;
            };
            files.insert(w.clone().into(), bytes.clone());
            (*n, 3, w, Some(name))
        }
        _ => return,
    };
    let mut text = format!(
        "name: t\ninput: {{features: {features}}}\nlayers:\n  - kind: dense\n    units: {units}\n    w: {w}\n"
    );
    if let Some(b) = b {
        let _ = writeln!(text, "    b: {b}");
    }
    files.insert(PathBuf::from(SPEC), text.into_bytes());
    let mem = Memory(files);
    let reader = Reader::new(&mem, Limits::default());
    match kpgen::load_with(&reader, Path::new(SPEC)) {
        Ok(model) => check_model(&model),
        Err(d) => render(&d),
    }
}

fn archive(name: &str, data: &[u8]) {
    let mem = one_file(name, data);
    let reader = Reader::new(&mem, Limits::default());
    let first = tensor::load_with(&reader, name, Path::new(""));
    check_loaded(&first);
    let members = match &first {
        Err(TensorError::MemberRequired { available, .. }) => available.clone(),
        _ => Vec::new(),
    };
    for m in members.iter().take(8) {
        let spec = format!("{name}:{m}");
        let r = tensor::load_with(&reader, &spec, Path::new(""));
        check_loaded(&r);
        let r = tensor::load_float_with(&reader, &spec, Path::new(""));
        check_loaded(&r);
    }
    check_loaded(&tensor::load_with(
        &reader,
        &format!("{name}:no such member"),
        Path::new(""),
    ));
    if let Ok(t) = tensor::load_float_with(&reader, name, Path::new("")) {
        as_weight(&mem, &t, name);
    }
}

/// Loads a spec (calibration dropped, see [`without_calibration`]) and generates it.
fn build_from(mem: &Memory, target: &kpgen::target::Target) -> Outcome {
    let reader = Reader::new(mem, Limits::default());
    let doc = match kpgen::spec::read_spec_with(&reader, Path::new(SPEC)) {
        Ok(doc) => without_calibration(doc),
        Err(d) => {
            render(&d);
            return Outcome::Spec;
        }
    };
    match kpgen::model::load_model_with(&reader, &doc) {
        Ok(model) => {
            check_model(&model);
            if generate(&model, target) {
                Outcome::Built
            } else {
                Outcome::Generate
            }
        }
        Err(d) => {
            render(&d);
            Outcome::Model
        }
    }
}

fn check_model(model: &Model) {
    let mut inputs = model.input_features;
    for l in &model.layers {
        assert_eq!(l.inputs, inputs, "layer inputs");
        inputs = l.units;
    }
}

/// Input values per sequence (steps × features) above which a build's references are not run:
/// too slow for every execution.
const LONG: usize = 16384;

/// Plans and emits; a build that succeeds is run once through both references (true).
fn generate(model: &Model, target: &kpgen::target::Target) -> bool {
    let values = model.steps.saturating_mul(model.input_features);
    let g = match kpgen::generate_model(model, target) {
        Ok(g) => g,
        Err(d) => {
            render(&d);
            return false;
        }
    };
    assert!(g.files.iter().any(|f| f.path.ends_with(".c")), "no C file");
    assert!(g.files.iter().all(|f| !f.contents.is_empty()), "empty file");
    if values > LONG {
        return true; // Too long to run through the references at every execution.
    }
    let x: Vec<f32> = (0..values).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect();
    let mut reference = kpgen::verify::reference::Reference::new(&g.model);
    let y = reference.infer(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    assert_eq!(y.len(), model.output_size(), "reference output");
    if let Some(quant) = &g.quant {
        let mut int = kpgen::quant::intref::IntReference::new(&g.plan, quant);
        let q = int.infer(&kpgen::quant::intref::quantize_input(quant, &x));
        let y = kpgen::quant::intref::dequantize_output(quant, &q);
        assert_eq!(y.len(), model.output_size(), "integer reference output");
    }
    true
}

/// Small fixed models (f32, int8, int16) for fuzzed target files.
fn fixed_models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let text = "name: fixed\ninput: {features: 4, steps: 3}\nlayers:\n  - kind: lstm\n    units: 4\n    w_ih: {kron: [m4x2.npy, m4x2.npy], dope: z16x4.npy}\n    w_hh: {kron: [m4x2.npy, m4x2.npy]}\n    b_ih: v16.npy\n  - kind: gru\n    units: 4\n    w_ih: {lowrank: [m12x2.npy, m2x4.npy]}\n    w_hh: {sparse: z12x4.npy}\n  - kind: dense\n    units: 3\n    w: m3x4.npy\n    activation: softmax\n";
        let mem = with_library(text.as_bytes());
        let reader = Reader::new(&mem, Limits::default());
        let model = kpgen::load_with(&reader, Path::new(SPEC))
            .unwrap_or_else(|d| panic!("fixed model: {}", d.render()));
        [
            kpgen::spec::Precision::F32,
            kpgen::spec::Precision::Int8,
            kpgen::spec::Precision::Int16,
        ]
        .into_iter()
        .map(|p| Model {
            precision: p,
            ..model.clone()
        })
        .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// The tensor library: files any fuzzed spec may name
// ---------------------------------------------------------------------------------------------

/// Matrix sizes of the library.
const DIMS: &[usize] = &[1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64];

/// `mRxC.npy` (values in [-1, 1)) and `zRxC.npy` (mostly zeros) for R, C in [`DIMS`]; `vN.npy`
/// vectors; `s.npy` a scalar; `nan.npy` a 2x2 matrix holding NaN; `lib.safetensors` holding
/// `mRxC` and `vN` for sizes up to 8.
fn library() -> &'static BTreeMap<String, Vec<u8>> {
    static LIB: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    LIB.get_or_init(|| {
        let mut files = BTreeMap::new();
        let mut st = Vec::new();
        for &r in DIMS {
            for &c in DIMS {
                let m = values(0, (r * 131 + c) as u16, r * c, &[]);
                let z = values(140, (r * 131 + c) as u16, r * c, &[]);
                files.insert(format!("m{r}x{c}.npy"), tensor::npy_f32_bytes(&[r, c], &m));
                files.insert(format!("z{r}x{c}.npy"), tensor::npy_f32_bytes(&[r, c], &z));
                if r <= 8 && c <= 8 {
                    st.push((format!("m{r}x{c}"), vec![r, c], m));
                }
            }
            for n in [r, 3 * r, 4 * r] {
                let v = values(0, n as u16, n, &[]);
                if n <= 8 {
                    st.push((format!("v{n}"), vec![n], v.clone()));
                }
                files.insert(format!("v{n}.npy"), tensor::npy_f32_bytes(&[n], &v));
            }
        }
        files.insert("s.npy".into(), tensor::npy_f32_bytes(&[], &[0.5]));
        files.insert(
            "nan.npy".into(),
            tensor::npy_f32_bytes(&[2, 2], &[0.0, f32::NAN, 1.0, 2.0]),
        );
        files.insert("lib.safetensors".into(), safetensors_bytes(&st));
        files
    })
}

/// The spec from the fuzz input, with the library files it names (its words that are file
/// names of the library).
fn with_library(spec: &[u8]) -> Memory {
    let lib = library();
    let mut files = BTreeMap::from([(PathBuf::from(SPEC), spec.to_vec())]);
    let word = |b: &u8| b.is_ascii_alphanumeric() || b"._-".contains(b);
    for w in spec.split(|b| !word(b)) {
        let Ok(w) = std::str::from_utf8(w) else {
            continue;
        };
        if let Some(v) = lib.get(w) {
            files.entry(w.into()).or_insert_with(|| v.clone());
        }
    }
    Memory(files)
}

/// SplitMix64, so values are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` values of a class chosen by `class`: mostly uniform; else sparse, zeros, constant, huge,
/// tiny, taken from the fuzz input (`fuzzed`), or (rarely) with a NaN or an infinity.
fn values(class: u8, seed: u16, n: usize, fuzzed: &[f32]) -> Vec<f32> {
    let mut rng = Rng(u64::from(seed) ^ (u64::from(class) << 32));
    let mut out: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    match class {
        0..=127 => {}
        128..=159 => {
            for v in &mut out {
                if !rng.next().is_multiple_of(8) {
                    *v = 0.0;
                }
            }
        }
        160..=175 => out.fill(0.0),
        176..=191 => out.fill(if seed.is_multiple_of(2) { 1.0 } else { -0.25 }),
        192..=207 => {
            let scale = 10f32.powi(i32::from(seed % 38));
            out.iter_mut().for_each(|v| *v *= scale);
        }
        208..=223 => {
            let scale = 10f32.powi(-i32::from(seed % 45));
            out.iter_mut().for_each(|v| *v *= scale);
        }
        224..=253 if !fuzzed.is_empty() => {
            for (i, v) in out.iter_mut().enumerate() {
                *v = fuzzed[(i + usize::from(seed)) % fuzzed.len()];
            }
        }
        224..=253 => {}
        _ => {
            if n > 0 {
                let at = usize::from(seed) % n;
                out[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][at % 3];
            }
        }
    }
    out
}

/// A `.safetensors` file holding float32 tensors (name, shape, values).
fn safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, shape, v)) in tensors.iter().enumerate() {
        let begin = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            header,
            "{sep}\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{begin},{}]}}",
            dims.join(","),
            data.len()
        );
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

// ---------------------------------------------------------------------------------------------
// Structured models for the build target
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct ModelPlan {
    features: u8,
    steps: u8,
    precision: u8,
    /// Rare spec mistakes (see [`ModelPlan::write`]); most values (and 0, what an exhausted
    /// input gives) change nothing.
    tweak: u8,
    /// 1 to 4 layers.
    depth: u8,
    layers: [LayerPlan; 4],
    /// Values of tensors whose class asks for fuzzed values.
    fuzzed: Vec<f32>,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Lstm,
    Gru,
    FastGrnn,
    Dense,
}

#[derive(Arbitrary, Debug)]
struct LayerPlan {
    kind: Kind,
    units: u8,
    /// w_ih and w_hh, w and u, or w.
    weights: [WeightPlan; 2],
    /// b_ih and b_hh, b_z and b_h, or b.
    biases: [Option<TensorPlan>; 2],
    zeta: ScalarPlan,
    nu: ScalarPlan,
    activation: u8,
    tweak: u8,
}

#[derive(Arbitrary, Debug)]
enum Form {
    Dense,
    Kron,
    KronDope,
    LowRank,
    Sparse,
}

#[derive(Arbitrary, Debug)]
struct WeightPlan {
    form: Form,
    /// Which divisors of the rows and columns the first Kronecker factor takes.
    split: u8,
    rank: u8,
    tensors: [TensorPlan; 3],
}

#[derive(Arbitrary, Debug)]
struct TensorPlan {
    /// From 252: the shape does not fit (one of four ways, see [`misfit`]).
    misfit: u8,
    /// See [`values`].
    class: u8,
    seed: u16,
    store: Store,
}

#[derive(Arbitrary, Debug)]
enum Store {
    Npy,
    /// Its own `.safetensors` file, named without a member.
    Safetensors,
    /// A member of one `.safetensors` file shared by the model's tensors.
    SharedSafetensors,
}

#[derive(Arbitrary, Debug)]
enum ScalarPlan {
    Inline(f32),
    Tensor(TensorPlan),
}

/// The files of a structured model being written.
struct Files {
    files: BTreeMap<PathBuf, Vec<u8>>,
    shared: Vec<(String, Vec<usize>, Vec<f32>)>,
    fuzzed: Vec<f32>,
}

impl Files {
    /// Writes a tensor of (about) `shape` and returns the spec's reference to it.
    fn tensor(&mut self, plan: &TensorPlan, shape: &[usize], sparse: bool) -> String {
        let shape = misfit(shape, plan.misfit);
        let n = shape.iter().product();
        let mut v = values(plan.class, plan.seed, n, &self.fuzzed);
        if sparse {
            // An overlay is sparse whatever its class.
            for (i, x) in v.iter_mut().enumerate() {
                if (i + usize::from(plan.seed)) % 7 != 0 {
                    *x = 0.0;
                }
            }
        }
        let id = self.files.len() + self.shared.len();
        match plan.store {
            Store::Npy => {
                let name = format!("t{id}.npy");
                self.files
                    .insert(name.clone().into(), tensor::npy_f32_bytes(&shape, &v));
                name
            }
            Store::Safetensors => {
                let name = format!("t{id}.safetensors");
                let bytes = safetensors_bytes(&[(format!("t{id}"), shape, v)]);
                self.files.insert(name.clone().into(), bytes);
                name
            }
            Store::SharedSafetensors => {
                self.shared.push((format!("t{id}"), shape, v));
                format!("all.safetensors:t{id}")
            }
        }
    }

    /// A weight of `rows x cols` in the plan's form, as the spec writes it.
    fn weight(&mut self, w: &WeightPlan, rows: usize, cols: usize) -> String {
        let [t0, t1, t2] = &w.tensors;
        let kron = |f: &mut Files| {
            let dr = divisors(rows);
            let dc = divisors(cols);
            let m1 = dr[usize::from(w.split % 16) % dr.len()];
            let n1 = dc[usize::from(w.split / 16) % dc.len()];
            let a = f.tensor(t0, &[m1, n1], false);
            let b = f.tensor(t1, &[rows / m1, cols / n1], false);
            format!("kron: [{a}, {b}]")
        };
        match w.form {
            Form::Dense => self.tensor(t0, &[rows, cols], false),
            Form::Kron => format!("{{{}}}", kron(self)),
            Form::KronDope => {
                let k = kron(self);
                let s = self.tensor(t2, &[rows, cols], true);
                format!("{{{k}, dope: {s}}}")
            }
            Form::LowRank => {
                let r = 1 + usize::from(w.rank % 16);
                let u = self.tensor(t0, &[rows, r], false);
                let v = self.tensor(t1, &[r, cols], false);
                format!("{{lowrank: [{u}, {v}]}}")
            }
            Form::Sparse => {
                let s = self.tensor(t0, &[rows, cols], false);
                format!("{{sparse: {s}}}")
            }
        }
    }

    fn scalar(&mut self, s: &ScalarPlan) -> String {
        match s {
            ScalarPlan::Inline(v) if v.is_nan() => ".nan".into(),
            ScalarPlan::Inline(v) if v.is_infinite() => {
                if *v > 0.0 { ".inf" } else { "-.inf" }.into()
            }
            ScalarPlan::Inline(v) => format!("{v:?}"),
            ScalarPlan::Tensor(t) => self.tensor(t, &[], false),
        }
    }
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

/// The shape as planned, or (for `misfit` from 252) one that does not fit: a dimension one
/// larger, one smaller (possibly 0), reversed, or flattened.
fn misfit(shape: &[usize], misfit: u8) -> Vec<usize> {
    let mut s = shape.to_vec();
    match (misfit.checked_sub(252), s.len()) {
        (Some(0), 0) => s = vec![2],
        (Some(0), _) => s[0] += 1,
        (Some(1), 0) => s = vec![1, 1],
        (Some(1), n) => s[n - 1] = s[n - 1].saturating_sub(1),
        (Some(2), _) => s.reverse(),
        (Some(_), _) => s = vec![s.iter().product()],
        (None, _) => {}
    }
    s
}

impl ModelPlan {
    /// The spec and its tensors, in memory.
    fn write(&self) -> Memory {
        let mut f = Files {
            files: BTreeMap::new(),
            shared: Vec::new(),
            fuzzed: self.fuzzed.iter().copied().take(256).collect(),
        };
        let features = 1 + usize::from(self.features % 16);
        let mut y = String::new();
        // Tweaks from 250 (rare; 0, what an exhausted input gives, is none).
        let tweak = self.tweak.checked_sub(250);
        let name = match tweak {
            Some(0) => "int".to_string(),
            Some(1) => "n".repeat(41),
            Some(2) => "9lives".to_string(),
            _ => "fz".to_string(),
        };
        let _ = writeln!(y, "name: {name}");
        let features_text = if tweak == Some(3) {
            "0".to_string()
        } else {
            features.to_string()
        };
        match self.steps {
            0..=15 => {
                let _ = writeln!(y, "input: {{features: {features_text}}}");
            }
            s => {
                let _ = writeln!(
                    y,
                    "input: {{features: {features_text}, steps: {}}}",
                    1 + s % 16
                );
            }
        }
        let precision = match self.precision % 8 {
            0..=2 => None,
            3..=4 => Some("f32"),
            5..=6 => Some("int8"),
            _ => Some("int16"),
        };
        if let Some(p) = precision {
            let _ = writeln!(y, "precision: {p}");
        }
        if tweak == Some(4) {
            let _ = writeln!(y, "extra: 1");
        }
        let depth = 1 + usize::from(self.depth % 4);
        let layers: Vec<&LayerPlan> = self.layers.iter().take(depth).collect();
        if tweak == Some(5) {
            let _ = writeln!(y, "layers: []");
        } else {
            let _ = writeln!(y, "layers:");
        }
        let mut inputs = features;
        for l in layers.iter().filter(|_| tweak != Some(5)) {
            let units = 1 + usize::from(l.units % 16);
            let (kind, gates) = match l.kind {
                Kind::Lstm => ("lstm", 4),
                Kind::Gru => ("gru", 3),
                Kind::FastGrnn => ("fastgrnn", 1),
                Kind::Dense => ("dense", 1),
            };
            let ltweak = l.tweak.checked_sub(251);
            let kind = if ltweak == Some(0) { "rnn" } else { kind };
            let units_text = match ltweak {
                Some(1) => "0".to_string(),
                Some(2) => "1048577".to_string(),
                _ => units.to_string(),
            };
            let _ = writeln!(y, "  - kind: {kind}\n    units: {units_text}");
            let (names, biases): ([&str; 2], [&str; 2]) = match l.kind {
                Kind::Lstm | Kind::Gru => (["w_ih", "w_hh"], ["b_ih", "b_hh"]),
                Kind::FastGrnn => (["w", "u"], ["b_z", "b_h"]),
                Kind::Dense => (["w", ""], ["b", ""]),
            };
            let shapes = [(gates * units, inputs), (gates * units, units)];
            for (i, (field, (rows, cols))) in names.iter().zip(shapes).enumerate() {
                // Tweak 3 drops the first weight (required by every kind).
                if field.is_empty() || (ltweak == Some(3) && i == 0) {
                    continue;
                }
                let w = f.weight(&l.weights[i], rows, cols);
                let _ = writeln!(y, "    {field}: {w}");
            }
            for (field, b) in biases.iter().zip(&l.biases) {
                if let (false, Some(b)) = (field.is_empty(), b) {
                    let t = f.tensor(b, &[gates * units], false);
                    let _ = writeln!(y, "    {field}: {t}");
                }
            }
            match l.kind {
                Kind::FastGrnn => {
                    let zeta = f.scalar(&l.zeta);
                    let nu = f.scalar(&l.nu);
                    let _ = writeln!(y, "    zeta: {zeta}\n    nu: {nu}");
                }
                Kind::Dense => {
                    let act = ["none", "relu", "sigmoid", "tanh", "softmax"];
                    if let Some(a) = act.get(usize::from(l.activation % 6)) {
                        let _ = writeln!(y, "    activation: {a}");
                    }
                }
                Kind::Lstm | Kind::Gru => {}
            }
            // Tweak 4: a field of another kind.
            if ltweak == Some(4) {
                let foreign = match l.kind {
                    Kind::Dense => "    nu: 1.0",
                    _ => "    activation: relu",
                };
                let _ = writeln!(y, "{foreign}");
            }
            inputs = units;
        }
        if !f.shared.is_empty() {
            let bytes = safetensors_bytes(&f.shared);
            f.files.insert("all.safetensors".into(), bytes);
        }
        f.files.insert(SPEC.into(), y.into_bytes());
        Memory(f.files)
    }
}

/// The spec text and file names a structured input writes (for writing seeds and debugging).
pub fn describe_build(data: &[u8]) -> Option<BTreeMap<PathBuf, Vec<u8>>> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 0 {
        return None;
    }
    let plan = ModelPlan::arbitrary(&mut Unstructured::new(rest)).ok()?;
    Some(plan.write().0)
}
