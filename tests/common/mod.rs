//! Fixtures for the conformance tests: a described model is written into a temporary directory
//! as seeded pseudo-random float32 `.npy` tensors plus a `spec.yaml` naming them, and the shared
//! list of conformance cases (host and QEMU run the same list).
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kpgen::base::tensor::write_npy_f32;
use kpgen::plan::shapes::{self, KronShape};
use kpgen::plan::{OverlayEncoding, Plan, Product};

/// Largest overlay the cortex-m4 planner emits as straight-line code (targets/cortex-m4.toml).
pub const STRAIGHT_LINE_MAX_NNZ: usize = 128;
/// Largest factor (elements) the cortex-m4 planner unrolls (targets/cortex-m4.toml).
pub const UNROLL_MAX_FACTOR_ELEMS: usize = 64;

/// A dense layer's activation, as written in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
}

impl Act {
    pub const ALL: [Act; 5] = [Act::None, Act::Relu, Act::Sigmoid, Act::Tanh, Act::Softmax];

    pub fn as_str(self) -> &'static str {
        match self {
            Act::None => "none",
            Act::Relu => "relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
            Act::Softmax => "softmax",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lstm,
    Gru,
    FastGrnn,
    Dense(Act),
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lstm => "lstm",
            Kind::Gru => "gru",
            Kind::FastGrnn => "fastgrnn",
            Kind::Dense(_) => "dense",
        }
    }
}

/// How one weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// A plain dense matrix.
    Dense,
    /// `kron(A, B)` with the shapes of [`kpgen::plan::shapes::best`].
    Kp,
    /// `kron(A, B) + S` with about 5% non-zeros in S, at most 128 (straight-line overlay).
    Dkp,
    /// `kron(A, B) + S` with more than 128 non-zeros in S (CSR overlay).
    DkpCsr,
    /// `kron(A, B)` with a factor of more than 64 elements (kept as a loop, not unrolled).
    KpLooped,
    /// `U·V` of rank `LOW_RANK` (capped by the matrix's sides).
    LowRank,
    /// A pruned matrix keeping about 10% of its entries (`{sparse: S}`).
    Sparse,
    /// `kron(A, B, C)` with the shapes of [`kpgen::plan::shapes::ranked_factors`].
    Kp3,
    /// `kron(A, B, C) + S`, a straight-line overlay.
    Dkp3,
    /// `kron(A, B, C, D)`.
    Kp4,
    /// `kron(A, B, C)` with a factor of more than 64 elements (kept as a loop).
    Kp3Looped,
    /// Hybrid KP: the first quarter of the rows (at least one) dense, `kron(A, B)` the rest.
    Hkp,
    /// Hybrid KP with three factors and a straight-line overlay over the whole matrix.
    Dhkp3,
    /// `kron(A, B, C)`, the best shape the plan applies in a middle-first permutation (cheaper
    /// than both single-loop schemes, see [`permuted`]).
    Kp3Perm,
    /// [`WeightKind::Kp3Perm`] with a factor of more than 64 elements (a stored, tiled stage)
    /// whose mode product needs the stage's second loop.
    Kp3PermLooped,
    /// Hybrid KP with a straight-line overlay whose three-factor part is permuted as in
    /// [`WeightKind::Kp3Perm`].
    Dhkp3Perm,
}

/// The order the plan applies `f` in, if it is a permutation strictly cheaper than both
/// single-loop schemes (trailing and leading), which the plan then builds in place.
pub fn permuted(f: &shapes::Factors) -> Option<Vec<usize>> {
    let k = f.dims.len();
    let trailing: Vec<usize> = (0..k).rev().collect();
    let leading: Vec<usize> = (0..k).collect();
    let (order, macs) = f.best_order();
    (macs < f.order_macs(&trailing).min(f.order_macs(&leading))).then_some(order)
}

/// Whether factor `g`'s mode product in `order` has modes of more than one element on both
/// sides (the plan's second loop).
fn two_loops(f: &shapes::Factors, order: &[usize], g: usize) -> bool {
    let mut done = vec![false; f.dims.len()];
    for &k in order {
        if k == g {
            let size = |l: usize| if done[l] { f.dims[l].0 } else { f.dims[l].1 };
            let before: usize = (0..g).map(size).product();
            let after: usize = (g + 1..f.dims.len()).map(size).product();
            return before > 1 && after > 1;
        }
        done[k] = true;
    }
    false
}

/// The first ranked 3-factor shape of `rows x cols` the plan permutes: middle factor first,
/// or with `looped` a factor of more than 64 elements whose stage has two loops.
fn permuted_shape(rows: usize, cols: usize, looped: bool) -> Option<shapes::Factors> {
    shapes::ranked_factors(rows, cols, 3)
        .unwrap_or_default()
        .into_iter()
        .find(|f| {
            let Some(order) = permuted(f) else {
                return false;
            };
            if looped {
                (0..3).any(|g| {
                    f.dims[g].0 * f.dims[g].1 > UNROLL_MAX_FACTOR_ELEMS && two_loops(f, &order, g)
                })
            } else {
                order[0] == 1
            }
        })
}

/// Inner dimension of low-rank fixtures.
pub const LOW_RANK: usize = 3;

/// Float inputs a sensor glitch or an overflowing product can send: NaN, the infinities,
/// ±FLT_MAX, values near it, subnormals and -0.
pub const HOSTILE_FLOATS: [f32; 10] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    1e38,
    -1e38,
    1e-45,
    -1e-45,
    -0.0,
];

/// How FastGRNN's zeta and nu are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalars {
    /// Numbers in the YAML.
    Inline,
    /// 0-d `.npy` files.
    Npy,
}

#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub kind: Kind,
    pub units: usize,
    /// The storage of every weight matrix of the layer, unless overridden per field.
    pub weights: WeightKind,
    /// Per-field storage, e.g. `("w_hh", WeightKind::DkpCsr)`.
    pub overrides: Vec<(&'static str, WeightKind)>,
    /// Write the bias tensors (omitted biases default to zero).
    pub biases: bool,
    pub scalars: Scalars,
}

impl LayerSpec {
    pub fn new(kind: Kind, units: usize, weights: WeightKind) -> Self {
        LayerSpec {
            kind,
            units,
            weights,
            overrides: Vec::new(),
            biases: true,
            scalars: Scalars::Inline,
        }
    }

    pub fn lstm(units: usize, weights: WeightKind) -> Self {
        Self::new(Kind::Lstm, units, weights)
    }

    pub fn gru(units: usize, weights: WeightKind) -> Self {
        Self::new(Kind::Gru, units, weights)
    }

    pub fn fastgrnn(units: usize, weights: WeightKind) -> Self {
        Self::new(Kind::FastGrnn, units, weights)
    }

    pub fn dense(units: usize, act: Act, weights: WeightKind) -> Self {
        Self::new(Kind::Dense(act), units, weights)
    }

    /// Stores the matrix `field` as `kind`.
    pub fn with(mut self, field: &'static str, kind: WeightKind) -> Self {
        self.overrides.push((field, kind));
        self
    }

    pub fn without_biases(mut self) -> Self {
        self.biases = false;
        self
    }

    pub fn scalars(mut self, s: Scalars) -> Self {
        self.scalars = s;
        self
    }

    fn weight_kind(&self, field: &str) -> WeightKind {
        self.overrides
            .iter()
            .rev()
            .find(|(f, _)| *f == field)
            .map_or(self.weights, |(_, k)| *k)
    }
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub features: usize,
    /// `None`: the spec omits `steps` (feed-forward, one step).
    pub steps: Option<usize>,
    pub layers: Vec<LayerSpec>,
    pub seed: u64,
}

impl ModelSpec {
    pub fn new(name: &str, features: usize, steps: Option<usize>, layers: Vec<LayerSpec>) -> Self {
        // Every model gets its own tensors: derive the seed from the name.
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        ModelSpec {
            name: name.to_owned(),
            features,
            steps,
            layers,
            seed,
        }
    }

    /// Steps of one inference (1 when omitted).
    pub fn steps(&self) -> usize {
        self.steps.unwrap_or(1)
    }

    /// Writes the tensors and spec.yaml into a new temporary directory.
    pub fn write(&self) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kpgen-fixture-{}-", self.name))
            .tempdir()
            .expect("create a fixture directory");
        let spec_path = self.write_into(dir.path());
        Fixture { dir, spec_path }
    }

    /// Writes the tensors and spec.yaml into `dir`; returns the spec's path.
    pub fn write_into(&self, dir: &Path) -> PathBuf {
        let mut w = Writer {
            dir,
            rng: SplitMix64(self.seed),
        };
        let mut yaml = String::new();
        writeln!(
            yaml,
            "# Conformance fixture `{}`, seed {:#x}.",
            self.name, self.seed
        )
        .unwrap();
        writeln!(yaml, "name: {}", self.name).unwrap();
        match self.steps {
            Some(s) => writeln!(yaml, "input: {{features: {}, steps: {s}}}", self.features),
            None => writeln!(yaml, "input: {{features: {}}}", self.features),
        }
        .unwrap();
        writeln!(yaml, "layers:").unwrap();
        let mut inputs = self.features;
        for (i, layer) in self.layers.iter().enumerate() {
            w.layer(&mut yaml, i, layer, inputs);
            inputs = layer.units;
        }
        let path = dir.join("spec.yaml");
        std::fs::write(&path, yaml).expect("write spec.yaml");
        path
    }
}

/// A written model: the spec and its tensors live as long as this value.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub spec_path: PathBuf,
}

/// SplitMix64, so fixtures are identical on every machine: kpgen's own.
pub use kpgen::base::sequences::SplitMix64;

/// Value ranges: moderate, so no activation saturates.
const FACTOR_SCALE: f32 = 0.5;
const DENSE_SCALE: f32 = 0.3;
const OVERLAY_SCALE: f32 = 0.3;
const BIAS_SCALE: f32 = 0.2;

struct Writer<'a> {
    dir: &'a Path,
    rng: SplitMix64,
}

impl Writer<'_> {
    fn tensor(&mut self, file: &str, shape: &[usize], scale: f32) -> String {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.rng.uniform(scale)).collect();
        self.save(file, shape, &data)
    }

    fn save(&mut self, file: &str, shape: &[usize], data: &[f32]) -> String {
        write_npy_f32(&self.dir.join(file), shape, data)
            .unwrap_or_else(|e| panic!("write {file}: {e}"));
        file.to_owned()
    }

    /// Writes the factors of `f` as `PREFIX_F0.npy`, ...; returns their spec list `a, b, ...`.
    fn factor_tensors(&mut self, prefix: &str, f: &shapes::Factors) -> String {
        let names: Vec<String> = f
            .dims
            .iter()
            .enumerate()
            .map(|(i, &(r, c))| self.tensor(&format!("{prefix}_F{i}.npy"), &[r, c], FACTOR_SCALE))
            .collect();
        names.join(", ")
    }

    /// Writes one weight matrix and returns its spec value.
    fn weight(&mut self, prefix: &str, rows: usize, cols: usize, kind: WeightKind) -> String {
        let kron = |w: &mut Self, s: KronShape| {
            let a = w.tensor(&format!("{prefix}_A.npy"), &[s.m1, s.n1], FACTOR_SCALE);
            let b = w.tensor(&format!("{prefix}_B.npy"), &[s.m2, s.n2], FACTOR_SCALE);
            (a, b)
        };
        // `k` factors: the best shape, or with `looped` the best with a factor kept as a loop.
        let multi = |w: &mut Self, k: usize, looped: bool| {
            let f = shapes::ranked_factors(rows, cols, k)
                .unwrap_or_default()
                .into_iter()
                .find(|f| !looped || f.dims.iter().any(|d| d.0 * d.1 > UNROLL_MAX_FACTOR_ELEMS))
                .unwrap_or_else(|| panic!("{prefix}: no {k}-factor shape of {rows}x{cols}"));
            w.factor_tensors(prefix, &f)
        };
        let perm = |w: &mut Self, rows: usize, looped: bool| {
            let f = permuted_shape(rows, cols, looped)
                .unwrap_or_else(|| panic!("{prefix}: no permuted 3-factor shape of {rows}x{cols}"));
            w.factor_tensors(prefix, &f)
        };
        // Hybrid: r dense rows, then a `k`-factor product of the other rows (permuted ones
        // with `perm`).
        let hybrid = |w: &mut Self, k: usize, perm: bool| {
            let r = (rows / 4).max(1);
            let u = w.tensor(&format!("{prefix}_U.npy"), &[r, cols], DENSE_SCALE);
            let f = if perm {
                permuted_shape(rows - r, cols, false)
            } else {
                shapes::ranked_factors(rows - r, cols, k)
                    .unwrap_or_default()
                    .into_iter()
                    .next()
            }
            .unwrap_or_else(|| panic!("{prefix}: no {k}-factor shape of {}x{cols}", rows - r));
            (u, w.factor_tensors(prefix, &f))
        };
        match kind {
            WeightKind::Hkp => {
                let (u, f) = hybrid(self, 2, false);
                format!("{{kron: [{f}], dense_rows: {u}}}")
            }
            WeightKind::Dhkp3 | WeightKind::Dhkp3Perm => {
                let (u, f) = hybrid(self, 3, kind == WeightKind::Dhkp3Perm);
                let nnz = ((rows * cols) / 20).clamp(1, STRAIGHT_LINE_MAX_NNZ);
                let s = self.overlay(&format!("{prefix}_S.npy"), rows, cols, nnz);
                format!("{{kron: [{f}], dense_rows: {u}, dope: {s}}}")
            }
            WeightKind::Kp3Perm => format!("{{kron: [{}]}}", perm(self, rows, false)),
            WeightKind::Kp3PermLooped => format!("{{kron: [{}]}}", perm(self, rows, true)),
            WeightKind::Kp3 => format!("{{kron: [{}]}}", multi(self, 3, false)),
            WeightKind::Kp4 => format!("{{kron: [{}]}}", multi(self, 4, false)),
            WeightKind::Kp3Looped => format!("{{kron: [{}]}}", multi(self, 3, true)),
            WeightKind::Dkp3 => {
                let f = multi(self, 3, false);
                let nnz = ((rows * cols) / 20).clamp(1, STRAIGHT_LINE_MAX_NNZ);
                let s = self.overlay(&format!("{prefix}_S.npy"), rows, cols, nnz);
                format!("{{kron: [{f}], dope: {s}}}")
            }
            WeightKind::Dense => self.tensor(&format!("{prefix}.npy"), &[rows, cols], DENSE_SCALE),
            WeightKind::Kp | WeightKind::Dkp | WeightKind::DkpCsr => {
                let s = shapes::best(rows, cols).unwrap_or_else(|| {
                    panic!("{prefix}: no Kronecker factorization of {rows}x{cols}")
                });
                let (a, b) = kron(self, s);
                let nnz = match kind {
                    WeightKind::Kp => return format!("{{kron: [{a}, {b}]}}"),
                    WeightKind::Dkp => ((rows * cols) / 20).clamp(1, STRAIGHT_LINE_MAX_NNZ),
                    _ => ((rows * cols) / 20).max(STRAIGHT_LINE_MAX_NNZ + 1),
                };
                assert!(
                    nnz <= rows * cols,
                    "{prefix}: a {rows}x{cols} matrix cannot hold a {nnz}-non-zero overlay"
                );
                let s = self.overlay(&format!("{prefix}_S.npy"), rows, cols, nnz);
                format!("{{kron: [{a}, {b}], dope: {s}}}")
            }
            WeightKind::LowRank => {
                let r = LOW_RANK.min(rows).min(cols);
                let u = self.tensor(&format!("{prefix}_U.npy"), &[rows, r], FACTOR_SCALE);
                let v = self.tensor(&format!("{prefix}_V.npy"), &[r, cols], FACTOR_SCALE);
                format!("{{lowrank: [{u}, {v}]}}")
            }
            WeightKind::Sparse => {
                let nnz = ((rows * cols) / 10).max(1);
                let s = self.overlay(&format!("{prefix}_S.npy"), rows, cols, nnz);
                format!("{{sparse: {s}}}")
            }
            WeightKind::KpLooped => {
                let s = shapes::ranked(rows, cols)
                    .into_iter()
                    .find(|s| s.m1 * s.n1 > UNROLL_MAX_FACTOR_ELEMS || s.m2 * s.n2 > UNROLL_MAX_FACTOR_ELEMS)
                    .unwrap_or_else(|| {
                        panic!("{prefix}: no factorization of {rows}x{cols} has a factor of more than {UNROLL_MAX_FACTOR_ELEMS} elements")
                    });
                let (a, b) = kron(self, s);
                format!("{{kron: [{a}, {b}]}}")
            }
        }
    }

    /// A full-size overlay with exactly `nnz` non-zeros at random places.
    fn overlay(&mut self, file: &str, rows: usize, cols: usize, nnz: usize) -> String {
        let mut places: Vec<usize> = (0..rows * cols).collect();
        for i in 0..nnz {
            let j = i + self.rng.below(places.len() - i);
            places.swap(i, j);
        }
        let mut data = vec![0.0f32; rows * cols];
        for &p in &places[..nnz] {
            let v = self.rng.uniform(OVERLAY_SCALE);
            data[p] = if v == 0.0 { 0.125 } else { v };
        }
        self.save(file, &[rows, cols], &data)
    }

    fn layer(&mut self, yaml: &mut String, i: usize, layer: &LayerSpec, inputs: usize) {
        let h = layer.units;
        let p = |field: &str| format!("l{i}_{field}");
        writeln!(yaml, "  - kind: {}", layer.kind.as_str()).unwrap();
        writeln!(yaml, "    units: {h}").unwrap();
        let field = |yaml: &mut String, name: &str, value: String| {
            writeln!(yaml, "    {name}: {value}").unwrap();
        };
        match layer.kind {
            Kind::Lstm | Kind::Gru => {
                let g = if layer.kind == Kind::Lstm { 4 } else { 3 };
                let v = self.weight(&p("w_ih"), g * h, inputs, layer.weight_kind("w_ih"));
                field(yaml, "w_ih", v);
                let v = self.weight(&p("w_hh"), g * h, h, layer.weight_kind("w_hh"));
                field(yaml, "w_hh", v);
                if layer.biases {
                    let v = self.tensor(&format!("{}.npy", p("b_ih")), &[g * h], BIAS_SCALE);
                    field(yaml, "b_ih", v);
                    let v = self.tensor(&format!("{}.npy", p("b_hh")), &[g * h], BIAS_SCALE);
                    field(yaml, "b_hh", v);
                }
            }
            Kind::FastGrnn => {
                let v = self.weight(&p("w"), h, inputs, layer.weight_kind("w"));
                field(yaml, "w", v);
                let v = self.weight(&p("u"), h, h, layer.weight_kind("u"));
                field(yaml, "u", v);
                if layer.biases {
                    let v = self.tensor(&format!("{}.npy", p("b_z")), &[h], BIAS_SCALE);
                    field(yaml, "b_z", v);
                    let v = self.tensor(&format!("{}.npy", p("b_h")), &[h], BIAS_SCALE);
                    field(yaml, "b_h", v);
                }
                // Raw values; the cell uses sigmoid(zeta) and sigmoid(nu).
                let (zeta, nu) = (1.0 + self.rng.uniform(0.5), -2.0 + self.rng.uniform(0.5));
                match layer.scalars {
                    Scalars::Inline => {
                        field(yaml, "zeta", format!("{zeta:?}"));
                        field(yaml, "nu", format!("{nu:?}"));
                    }
                    Scalars::Npy => {
                        let v = self.save(&format!("{}.npy", p("zeta")), &[], &[zeta]);
                        field(yaml, "zeta", v);
                        let v = self.save(&format!("{}.npy", p("nu")), &[], &[nu]);
                        field(yaml, "nu", v);
                    }
                }
            }
            Kind::Dense(act) => {
                let v = self.weight(&p("w"), h, inputs, layer.weight_kind("w"));
                field(yaml, "w", v);
                if layer.biases {
                    let v = self.tensor(&format!("{}.npy", p("b")), &[h], BIAS_SCALE);
                    field(yaml, "b", v);
                }
                field(yaml, "activation", act.as_str().to_owned());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the planner made of a model
// ---------------------------------------------------------------------------------------------

/// A property of a plan a case is built to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// A KP factor unrolled into straight-line code.
    KpUnrolled,
    /// A KP factor kept as a loop over a stored array.
    KpLooped,
    /// A doping overlay as straight-line code.
    OverlayStraightLine,
    /// A doping overlay in CSR form.
    OverlayCsr,
    /// A low-rank product U·(V·x).
    LowRank,
    /// A pruned matrix stored as its non-zeros.
    Sparse,
    /// A Kronecker product of three or more factors.
    KpMulti,
    /// Hybrid KP: dense rows over a Kronecker product.
    Hybrid,
    /// A multi-factor product in a permutation other than trailing or leading (in place).
    KpPermuted,
    /// An unrolled stage with the second loop (a mode product on a middle mode).
    KpSecondLoop,
    /// A stored (tiled) stage with the second loop.
    KpSecondLoopLooped,
}

/// The features present in a plan.
pub fn plan_features(plan: &Plan) -> BTreeSet<Feature> {
    let mut out = BTreeSet::new();
    for m in plan.matrices() {
        if let Product::Kron { stages, .. } | Product::MultiKron { stages, .. } = &m.product {
            for s in stages {
                out.insert(if s.unrolled {
                    Feature::KpUnrolled
                } else {
                    Feature::KpLooped
                });
                if s.outer2 > 1 {
                    out.insert(if s.unrolled {
                        Feature::KpSecondLoop
                    } else {
                        Feature::KpSecondLoopLooped
                    });
                }
            }
        }
        match &m.product {
            Product::LowRank { .. } => {
                out.insert(Feature::LowRank);
            }
            Product::Sparse => {
                out.insert(Feature::Sparse);
            }
            Product::MultiKron { order, .. } => {
                out.insert(Feature::KpMulti);
                if kpgen::plan::in_place(order) {
                    out.insert(Feature::KpPermuted);
                }
            }
            _ => {}
        }
        if m.product.dense_rows() > 0 {
            out.insert(Feature::Hybrid);
        }
        if let Some(o) = &m.overlay {
            out.insert(match o.encoding {
                OverlayEncoding::StraightLine => Feature::OverlayStraightLine,
                OverlayEncoding::Csr { .. } => Feature::OverlayCsr,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The conformance cases
// ---------------------------------------------------------------------------------------------

pub struct Case {
    pub model: ModelSpec,
    /// Plan features the case must produce (checked, so a fixture change cannot silently stop
    /// exercising them).
    pub expect: Vec<Feature>,
    /// Also build and run the model with every matrix expanded to dense.
    pub dense_baseline: bool,
}

impl Case {
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// Checks that the plan has the features this case is meant to exercise. A target that
    /// unrolls no factor (the M55) stores what the others unroll: there the unrolled features
    /// are expected in their looped forms.
    pub fn check_plan(&self, plan: &Plan, target: &kpgen::target::Target) -> Result<(), String> {
        let have = plan_features(plan);
        let unrolls = target.plan.unroll_max_factor_elems > 0;
        let expect: Vec<Feature> = self
            .expect
            .iter()
            .map(|&f| match f {
                Feature::KpUnrolled if !unrolls => Feature::KpLooped,
                Feature::KpSecondLoop if !unrolls => Feature::KpSecondLoopLooped,
                f => f,
            })
            .collect();
        let missing: Vec<_> = expect.iter().filter(|f| !have.contains(f)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the plan lacks {missing:?} (it has {have:?})"))
        }
    }
}

fn case(model: ModelSpec, expect: &[Feature]) -> Case {
    Case {
        model,
        expect: expect.to_vec(),
        dense_baseline: false,
    }
}

const FEATURES: usize = 6;
const STEPS: usize = 5;

/// Every layer kind x weight kind (dense, kp, dkp): a small recurrent layer with a dense head
/// (same weight kind), or for `dense`, two dense layers over one step.
pub fn cell_cases() -> Vec<Case> {
    use Feature::*;
    let mut out = Vec::new();
    for (kind, kind_name) in [
        (Kind::Lstm, "lstm"),
        (Kind::Gru, "gru"),
        (Kind::FastGrnn, "fastgrnn"),
        (Kind::Dense(Act::Relu), "dense"),
    ] {
        for (wk, wk_name, expect) in [
            (WeightKind::Dense, "dense", &[][..]),
            (WeightKind::Kp, "kp", &[KpUnrolled][..]),
            (
                WeightKind::Dkp,
                "dkp",
                &[KpUnrolled, OverlayStraightLine][..],
            ),
            (WeightKind::LowRank, "lowrank", &[LowRank][..]),
            (WeightKind::Sparse, "sparse", &[Sparse][..]),
        ] {
            let name = format!("{kind_name}_{wk_name}");
            let model = match kind {
                Kind::Dense(_) => ModelSpec::new(
                    &name,
                    12,
                    Some(1),
                    vec![
                        LayerSpec::dense(16, Act::Relu, wk),
                        LayerSpec::dense(4, Act::None, wk),
                    ],
                ),
                _ => {
                    let mut layer = LayerSpec::new(kind, 8, wk);
                    if kind == Kind::FastGrnn && wk == WeightKind::Dkp {
                        layer = layer.scalars(Scalars::Npy);
                    }
                    ModelSpec::new(
                        &name,
                        FEATURES,
                        Some(STEPS),
                        vec![layer, LayerSpec::dense(4, Act::None, wk)],
                    )
                }
            };
            out.push(case(model, expect));
        }
    }
    out
}

/// Structural cases: stacking, CSR overlays, looped factors, every activation, no head, no
/// steps.
pub fn structure_cases() -> Vec<Case> {
    use Feature::*;
    let mut out = vec![
        case(
            ModelSpec::new(
                "stacked_lstm_gru_softmax",
                FEATURES,
                Some(STEPS),
                vec![
                    LayerSpec::lstm(16, WeightKind::Kp),
                    LayerSpec::gru(8, WeightKind::Dkp),
                    LayerSpec::dense(4, Act::Softmax, WeightKind::Dense),
                ],
            ),
            &[KpUnrolled, OverlayStraightLine],
        ),
        Case {
            dense_baseline: true,
            ..case(
                ModelSpec::new(
                    "lstm32_dkp_csr",
                    FEATURES,
                    Some(4),
                    vec![
                        LayerSpec::lstm(32, WeightKind::Kp).with("w_hh", WeightKind::DkpCsr),
                        LayerSpec::dense(4, Act::None, WeightKind::Dense),
                    ],
                ),
                &[OverlayCsr],
            )
        },
        case(
            ModelSpec::new(
                "lstm32_kp_looped",
                FEATURES,
                Some(4),
                vec![
                    LayerSpec::lstm(32, WeightKind::Kp).with("w_hh", WeightKind::KpLooped),
                    LayerSpec::dense(4, Act::None, WeightKind::Dense),
                ],
            ),
            &[KpLooped],
        ),
        // Every activation between layers, softmax at the output.
        case(
            ModelSpec::new(
                "dense_activation_chain",
                8,
                Some(1),
                vec![
                    LayerSpec::dense(8, Act::Relu, WeightKind::Dense),
                    LayerSpec::dense(8, Act::Sigmoid, WeightKind::Kp),
                    LayerSpec::dense(8, Act::Tanh, WeightKind::Dense),
                    LayerSpec::dense(8, Act::None, WeightKind::Dkp),
                    LayerSpec::dense(4, Act::Softmax, WeightKind::Dense),
                ],
            ),
            &[KpUnrolled, OverlayStraightLine],
        ),
        case(
            ModelSpec::new(
                "gru_no_head_no_bias",
                FEATURES,
                Some(STEPS),
                vec![LayerSpec::gru(8, WeightKind::Kp).without_biases()],
            ),
            &[KpUnrolled],
        ),
        case(
            ModelSpec::new(
                "feed_forward_no_steps",
                10,
                None,
                vec![
                    LayerSpec::dense(16, Act::Tanh, WeightKind::Kp),
                    LayerSpec::dense(3, Act::None, WeightKind::Dkp),
                ],
            ),
            &[KpUnrolled, OverlayStraightLine],
        ),
    ];
    // Three and four Kronecker factors, doped, looped, in every cell kind.
    out.push(case(
        ModelSpec::new(
            "lstm_kp3_dkp3",
            FEATURES,
            Some(STEPS),
            vec![
                LayerSpec::lstm(8, WeightKind::Kp3).with("w_hh", WeightKind::Dkp3),
                LayerSpec::dense(4, Act::None, WeightKind::Kp3),
            ],
        ),
        &[KpMulti, KpUnrolled, OverlayStraightLine],
    ));
    out.push(case(
        ModelSpec::new(
            "gru_kp4_looped_fastgrnn_kp3",
            FEATURES,
            Some(STEPS),
            vec![
                LayerSpec::gru(16, WeightKind::Kp4).with("w_hh", WeightKind::Kp3Looped),
                LayerSpec::fastgrnn(8, WeightKind::Kp3),
                LayerSpec::dense(4, Act::Softmax, WeightKind::Dense),
            ],
        ),
        &[KpMulti, KpUnrolled, KpLooped],
    ));
    // Hybrid KP (dense rows over a 2- or 3-factor product, doped) in every cell kind.
    out.push(case(
        ModelSpec::new(
            "hybrid_lstm_gru_fastgrnn",
            FEATURES,
            Some(STEPS),
            vec![
                LayerSpec::lstm(8, WeightKind::Hkp).with("w_hh", WeightKind::Dhkp3),
                LayerSpec::gru(8, WeightKind::Dhkp3),
                LayerSpec::fastgrnn(8, WeightKind::Hkp),
                LayerSpec::dense(4, Act::Tanh, WeightKind::Hkp),
            ],
        ),
        &[Hybrid, KpMulti, KpUnrolled, OverlayStraightLine],
    ));
    // Middle-first permutations of three factors (planned in place, with the second loop) in
    // every cell kind: unrolled, stored and tiled, doped and hybrid.
    out.push(case(
        ModelSpec::new(
            "perm_kp3_every_cell",
            FEATURES,
            Some(STEPS),
            vec![
                LayerSpec::lstm(8, WeightKind::Kp3Perm).with("w_hh", WeightKind::Dhkp3Perm),
                LayerSpec::gru(8, WeightKind::Kp3Perm),
                LayerSpec::fastgrnn(32, WeightKind::Kp3Perm),
                LayerSpec::dense(64, Act::Relu, WeightKind::Kp3PermLooped),
                LayerSpec::dense(4, Act::None, WeightKind::Kp3Perm),
            ],
        ),
        &[
            KpMulti,
            KpPermuted,
            KpSecondLoop,
            KpSecondLoopLooped,
            KpUnrolled,
            KpLooped,
            Hybrid,
            OverlayStraightLine,
        ],
    ));
    // The model of the generated-Rust lint test.
    out.push(everything_model());
    // Every activation as the model's output (the last layer writes the caller's y directly).
    for act in Act::ALL {
        out.push(case(
            ModelSpec::new(
                &format!("fastgrnn_head_{}", act.as_str()),
                FEATURES,
                Some(3),
                vec![
                    LayerSpec::fastgrnn(8, WeightKind::Kp),
                    LayerSpec::dense(5, act, WeightKind::Dense),
                ],
            ),
            &[KpUnrolled],
        ));
    }
    out
}

/// Every case.
pub fn all_cases() -> Vec<Case> {
    let mut out = cell_cases();
    out.extend(structure_cases());
    out
}

/// A model using every feature: stacked LSTM, GRU and FastGRNN with KP, straight-line and CSR
/// overlays, a looped factor and a softmax head.
pub fn everything_model() -> Case {
    use Feature::*;
    case(
        ModelSpec::new(
            "everything",
            FEATURES,
            Some(STEPS),
            vec![
                LayerSpec::lstm(32, WeightKind::Kp).with("w_hh", WeightKind::DkpCsr),
                LayerSpec::gru(16, WeightKind::Dkp).with("w_ih", WeightKind::KpLooped),
                LayerSpec::fastgrnn(8, WeightKind::Kp)
                    .with("u", WeightKind::Dense)
                    .scalars(Scalars::Npy),
                LayerSpec::dense(4, Act::Softmax, WeightKind::Kp),
            ],
        ),
        &[KpUnrolled, KpLooped, OverlayStraightLine, OverlayCsr],
    )
}

/// One model per cell kind whose matrices use every weight kind (dense, KP, straight-line and
/// CSR doped KP, low rank, sparse), for the runs on every core and precision.
pub fn coverage_cases() -> Vec<Case> {
    use Feature::*;
    use WeightKind as W;
    let all = &[KpUnrolled, OverlayStraightLine, OverlayCsr, LowRank, Sparse][..];
    // Units large enough that the recurrent matrix holds a CSR overlay (> 128 non-zeros).
    let recurrent = |name: &str, kind: Kind, units: usize, ih: &'static str, hh: &'static str| {
        let layer = |a, b| {
            LayerSpec::new(kind, units, W::Dense)
                .with(ih, a)
                .with(hh, b)
        };
        case(
            ModelSpec::new(
                name,
                FEATURES,
                Some(STEPS),
                vec![
                    layer(W::Dense, W::Kp),
                    layer(W::Dkp, W::LowRank),
                    layer(W::Sparse, W::DkpCsr),
                    LayerSpec::dense(4, Act::None, W::Kp),
                ],
            ),
            all,
        )
    };
    vec![
        // Three and four factors and hybrid KP in every cell kind.
        case(
            ModelSpec::new(
                "cover_multi_hybrid",
                FEATURES,
                Some(STEPS),
                vec![
                    LayerSpec::lstm(8, W::Kp3).with("w_hh", W::Dhkp3),
                    LayerSpec::gru(8, W::Hkp).with("w_hh", W::Kp4),
                    LayerSpec::fastgrnn(16, W::Kp3).with("u", W::Hkp),
                    LayerSpec::dense(4, Act::Softmax, W::Dhkp3),
                ],
            ),
            &[KpMulti, Hybrid, KpUnrolled, OverlayStraightLine],
        ),
        recurrent("cover_lstm", Kind::Lstm, 8, "w_ih", "w_hh"),
        recurrent("cover_gru", Kind::Gru, 8, "w_ih", "w_hh"),
        recurrent("cover_fastgrnn", Kind::FastGrnn, 16, "w", "u"),
        case(
            ModelSpec::new(
                "cover_dense",
                12,
                Some(1),
                vec![
                    LayerSpec::dense(16, Act::Relu, W::Dense),
                    LayerSpec::dense(16, Act::Sigmoid, W::Kp),
                    LayerSpec::dense(16, Act::Tanh, W::Dkp),
                    LayerSpec::dense(12, Act::None, W::LowRank),
                    LayerSpec::dense(16, Act::Relu, W::Sparse),
                    LayerSpec::dense(16, Act::None, W::DkpCsr),
                    LayerSpec::dense(4, Act::Softmax, W::Dense),
                ],
            ),
            all,
        ),
    ]
}

/// The cortex-m4 target every test uses.
pub fn target() -> kpgen::target::Target {
    kpgen::target::lookup("cortex-m4").unwrap_or_else(|d| panic!("cortex-m4 target: {d:?}"))
}

/// Writes a case's fixture and generates its code; errors name the case.
pub fn generate(
    case: &Case,
    target: &kpgen::target::Target,
) -> Result<(Fixture, kpgen::Generation), String> {
    let fixture = case.model.write();
    let gen = kpgen::generate(&fixture.spec_path, target).map_err(|d| {
        format!(
            "generation failed:\n{}\nspec:\n{}",
            d.render(),
            std::fs::read_to_string(&fixture.spec_path).unwrap_or_default()
        )
    })?;
    case.check_plan(&gen.plan, target)?;
    Ok((fixture, gen))
}

/// Generates `case` in `precision`. Fixed point calibrates on data skewed to [-0.5, 2), so int8
/// inputs get a large zero point (about -77) and every kernel reading the model input runs its
/// zero-point offsets.
pub fn generate_in(
    case: &Case,
    target: &kpgen::target::Target,
    precision: kpgen::spec::Precision,
) -> Result<(Fixture, kpgen::Generation), String> {
    generate_for(case, target, precision, kpgen::spec::Optimize::Speed)
}

/// [`generate_in`] with the plan's objective.
pub fn generate_for(
    case: &Case,
    target: &kpgen::target::Target,
    precision: kpgen::spec::Precision,
    optimize: kpgen::spec::Optimize,
) -> Result<(Fixture, kpgen::Generation), String> {
    let fixture = case.model.write();
    let mut model = kpgen::load(&fixture.spec_path).map_err(|d| d.render())?;
    model.precision = precision;
    model.optimize = optimize;
    if precision.is_fixed() {
        let steps = case.model.steps();
        let calib = kpgen::base::sequences::TestInputs::random(
            16,
            steps,
            case.model.features,
            case.model.seed,
            1.25,
        );
        let data: Vec<f32> = calib.sequences.concat().iter().map(|v| v + 0.75).collect();
        let path = fixture.dir.path().join("calib_skewed.npy");
        write_npy_f32(&path, &[16, steps, case.model.features], &data)
            .map_err(|e| e.to_string())?;
        model.calibration = Some(path);
    }
    let gen = kpgen::generate_model(&model, target).map_err(|d| d.render())?;
    Ok((fixture, gen))
}

/// Runs `f` for every case and panics at the end listing every failing case and its error.
/// Runs `f` on every case; `KPGEN_CASES=a,b` runs only the cases named (for a developer
/// rerunning one case; a name that matches no case of the suite fails).
pub fn run_cases(cases: &[Case], mut f: impl FnMut(&Case) -> Result<(), String>) {
    let only: Option<Vec<String>> = std::env::var("KPGEN_CASES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    if let Some(names) = &only {
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !cases.iter().any(|c| c.name() == n.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "KPGEN_CASES names no case of this suite: {unknown:?}"
        );
    }
    let mut failures = Vec::new();
    for case in cases.iter().filter(|c| {
        only.as_ref()
            .is_none_or(|n| n.iter().any(|n| n == c.name()))
    }) {
        let started = std::time::Instant::now();
        let outcome = f(case);
        eprintln!(
            "case {}: {} in {:.1} s",
            case.name(),
            if outcome.is_ok() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if let Err(e) = outcome {
            failures.push(format!("---- case `{}` ----\n{e}", case.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Checks every result of a suite passed; the error shows each failing comparison.
pub fn check_suite(what: &str, suite: &kpgen::verify::Suite) -> Result<(), String> {
    let bad: Vec<String> = suite
        .results
        .iter()
        .filter(|r| !r.comparison.pass)
        .map(|r| {
            format!(
                "{what}: {} {} differs from the reference: {:#?}",
                r.variant,
                r.lang.as_str(),
                r.comparison
            )
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse matrices given as their non-zeros: the files scipy.sparse and PyTorch users write,
// written here without either (an .npz is a zip of .npy files).
// ---------------------------------------------------------------------------------------------

/// One array to write: its numpy `descr` (`<f4`, `<i4`, `<i8`, `|S3`, ...), shape and
/// little-endian bytes.
#[derive(Debug, Clone)]
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Npy {
    pub fn f32(data: &[f32]) -> Self {
        Npy {
            descr: "<f4".into(),
            shape: vec![data.len()],
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn i32(data: &[i64]) -> Self {
        Npy {
            descr: "<i4".into(),
            shape: vec![data.len()],
            bytes: data
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect(),
        }
    }

    pub fn i64(data: &[i64]) -> Self {
        Npy {
            descr: "<i8".into(),
            shape: vec![data.len()],
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A 0-d byte string, as scipy writes a sparse matrix's `format`.
    pub fn text(s: &str) -> Self {
        Npy {
            descr: format!("|S{}", s.len()),
            shape: vec![],
            bytes: s.as_bytes().to_vec(),
        }
    }

    pub fn shaped(mut self, shape: &[usize]) -> Self {
        self.shape = shape.to_vec();
        self
    }

    /// The `.npy` file: a v1.0 header padded to 64 bytes, then the data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dims = match self.shape.as_slice() {
            [] => "()".to_owned(),
            [d] => format!("({d},)"),
            s => format!(
                "({})",
                s.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
            self.descr
        );
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// Writes an `.npz` holding `members` (`name` becomes `name.npy`), deflated or stored.
pub fn write_npz(path: &Path, members: &[(&str, Npy)], deflate: bool) {
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut zip = zip::ZipWriter::new(file);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, npy) in members {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        std::io::Write::write_all(&mut zip, &npy.to_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// Writes `members` as a `.safetensors` file (`<f4` as F32, `<i4` as I32, `<i8` as I64).
pub fn write_safetensors(path: &Path, members: &[(&str, Npy)]) {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, npy)) in members.iter().enumerate() {
        let dtype = match npy.descr.as_str() {
            "<f4" => "F32",
            "<i4" => "I32",
            "<i8" => "I64",
            d => panic!("no safetensors dtype for {d}"),
        };
        let shape: Vec<String> = npy.shape.iter().map(usize::to_string).collect();
        if i > 0 {
            header.push(',');
        }
        write!(
            header,
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            shape.join(","),
            data.len(),
            data.len() + npy.bytes.len()
        )
        .unwrap();
        data.extend_from_slice(&npy.bytes);
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// The non-zeros of a row-major `rows x cols` matrix as (row, col, value).
pub fn nonzeros(cols: usize, data: &[f64]) -> Vec<(usize, usize, f32)> {
    data.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| (i / cols, i % cols, *v as f32))
        .collect()
}

/// Compressed pointers and indices of `entries` (sorted by `major`) over `lines` lines.
fn compress(
    entries: &[(usize, usize, f32)],
    lines: usize,
    major: impl Fn(&(usize, usize, f32)) -> (usize, usize),
) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| major(e));
    let mut indptr = vec![0i64; lines + 1];
    for e in &sorted {
        indptr[major(e).0 + 1] += 1;
    }
    for i in 0..lines {
        indptr[i + 1] += indptr[i];
    }
    let indices = sorted.iter().map(|e| major(e).1 as i64).collect();
    let values = sorted.iter().map(|e| e.2).collect();
    (indptr, indices, values)
}

/// The members `scipy.sparse.save_npz` writes for `entries` of a `rows x cols` matrix in
/// `format` (`csr`, `csc` or `coo`; COO keeps the order given), index arrays as int32.
pub fn scipy_members(
    format: &str,
    rows: usize,
    cols: usize,
    entries: &[(usize, usize, f32)],
) -> Vec<(&'static str, Npy)> {
    let mut members = vec![
        ("format", Npy::text(format)),
        ("shape", Npy::i64(&[rows as i64, cols as i64])),
    ];
    match format {
        "csr" | "csc" => {
            let (indptr, indices, values) = if format == "csr" {
                compress(entries, rows, |e| (e.0, e.1))
            } else {
                compress(entries, cols, |e| (e.1, e.0))
            };
            members.push(("indices", Npy::i32(&indices)));
            members.push(("indptr", Npy::i32(&indptr)));
            members.push(("data", Npy::f32(&values)));
        }
        "coo" => {
            let r: Vec<i64> = entries.iter().map(|e| e.0 as i64).collect();
            let c: Vec<i64> = entries.iter().map(|e| e.1 as i64).collect();
            let v: Vec<f32> = entries.iter().map(|e| e.2).collect();
            members.push(("row", Npy::i32(&r)));
            members.push(("col", Npy::i32(&c)));
            members.push(("data", Npy::f32(&v)));
        }
        f => panic!("no scipy format {f}"),
    }
    members
}

/// The repository's root (tests run from generator/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every bundled example's spec, `examples/<data set>/<model>/spec.yaml`, sorted. Panics when
/// there is none.
pub fn bundled_examples() -> Vec<PathBuf> {
    let root = repo_root().join("examples");
    let mut specs = Vec::new();
    let sets = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for set in sets.flatten() {
        for model in std::fs::read_dir(set.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let spec = model.path().join("spec.yaml");
            if spec.is_file() {
                specs.push(spec);
            }
        }
    }
    specs.sort();
    assert!(
        !specs.is_empty(),
        "no examples found under {}",
        root.display()
    );
    specs
}

/// The PyTorch environment's Python: `$KPGEN_TORCH_PYTHON`, else the one `ci/setup` creates
/// (target/torch-venv); panics, never skips, without it.
pub fn torch_python() -> PathBuf {
    let p = std::env::var_os("KPGEN_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/torch-venv/bin/python"));
    assert!(
        p.exists(),
        "{} missing: run ci/setup (it creates the PyTorch environment), or set KPGEN_TORCH_PYTHON",
        p.display()
    );
    p
}

/// A `.npy` holding only a float32 header promising `shape` (a Python tuple, e.g.
/// `(1000, 800)`) and no data: for checks that must refuse before reading a body.
pub fn header_only_npy(shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy
}

/// The generated C of `gen` holds each of `marks` (the form a kernel test is meant to
/// exercise), so a change of plan cannot leave a form untested.
pub fn check_marks(gen: &kpgen::Generation, marks: &[&str]) -> Result<(), String> {
    let c: String = gen
        .files
        .iter()
        .filter(|f| f.path.ends_with(".c"))
        .map(|f| f.contents.as_str())
        .collect();
    match marks.iter().find(|m| !c.contains(*m)) {
        Some(mark) => Err(format!(
            "the generated C lacks `{mark}`: the plan no longer gives this case its form"
        )),
        None => Ok(()),
    }
}

/// Runs `gen` on `platform` in each of `langs` (every step when `every_step`) and checks every
/// result: fixed point equal to the integer reference bit for bit, float within the default
/// tolerance of the f64 reference.
pub fn run_against_reference(
    platform: &kpgen::verify::Platform,
    target: &kpgen::target::Target,
    gen: &kpgen::Generation,
    inputs: &kpgen::base::sequences::TestInputs,
    langs: &[kpgen::spec::Lang],
    every_step: bool,
    work_dir: &Path,
) -> Result<(), String> {
    let opts = kpgen::verify::RunOptions {
        langs: langs.to_vec(),
        tolerance: kpgen::verify::Tolerance::default(),
        timeout: std::time::Duration::from_secs(60),
        dense_baseline: false,
        every_step,
        work_dir: work_dir.to_path_buf(),
    };
    let suite = kpgen::verify::run_suite(platform, target, gen, inputs, &opts, &mut |_| {})
        .map_err(|e| format!("the run failed: {e}"))?;
    if suite.results.len() != langs.len() {
        return Err(format!("unexpected results: {:#?}", suite.results));
    }
    let exact = gen.quant.is_some();
    for r in &suite.results {
        if !r.comparison.pass || exact && r.comparison.integer_mismatches != Some(0) {
            return Err(format!(
                "{}: differs from the reference: {:#?}",
                r.lang.as_str(),
                r.comparison
            ));
        }
    }
    Ok(())
}

/// The C of `gen` written into `dir` compiles for `target` with the strict flags under the
/// cross gcc and under clang (whose `-Wunused-function` also sees a static helper that only a
/// portable branch calls).
pub fn compiles_with_gcc_and_clang(
    gen: &kpgen::Generation,
    target: &kpgen::target::Target,
    dir: &Path,
) -> Result<(), String> {
    let out = dir.join("gen");
    kpgen::output::write_tree(&out, &gen.files).map_err(|e| e.to_string())?;
    let flags: Vec<&str> = target.c.cflags.iter().map(String::as_str).collect();
    let mut clang_flags = vec!["--target=arm-none-eabi", "-ffreestanding"];
    clang_flags.extend(&flags);
    for (cc, extra) in [("arm-none-eabi-gcc", flags.clone()), ("clang", clang_flags)] {
        kpgen::verify::firmware::check_c_compiles(cc, &out.join("c"), &extra)
            .map_err(|e| format!("{cc}: {e}"))?;
    }
    Ok(())
}

/// Bytes of flash of a model's own object: `.text*`, `.rodata*` and `.data*`
/// (`arm-none-eabi-size -A`) of its C written into `dir` and compiled with the target's flags,
/// the strict flags and `opt` (`-Os`, as a size-minded user builds it, or `-O2`), with
/// `-ffunction-sections -fdata-sections`. Panics when arm-none-eabi-gcc is missing.
pub fn object_bytes(
    gen: &kpgen::Generation,
    target: &kpgen::target::Target,
    dir: &Path,
    opt: &str,
) -> u64 {
    let out = dir.join("gen");
    kpgen::output::write_tree(&out, &gen.files).expect("write the sources");
    let source = std::fs::read_dir(out.join("c"))
        .expect("the C folder")
        .map(|e| e.expect("an entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "c"))
        .expect("a .c file");
    let object = dir.join("model.o");
    let built = std::process::Command::new("arm-none-eabi-gcc")
        .args(&target.c.cflags)
        .args(kpgen::qemu::STRICT_C_FLAGS)
        .args([opt, "-ffunction-sections", "-fdata-sections", "-c"])
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .output()
        .expect("run arm-none-eabi-gcc (run ci/setup)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let sizes = std::process::Command::new("arm-none-eabi-size")
        .arg("-A")
        .arg(&object)
        .output()
        .expect("run arm-none-eabi-size");
    kpgen::qemu::parse_size_output(&String::from_utf8_lossy(&sizes.stdout))
        .expect("arm-none-eabi-size output")
        .flash()
}
