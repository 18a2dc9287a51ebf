//! Random valid models for differential testing: one seed decides everything (precision, sizes,
//! layers, weight forms, factor shapes, scales, tensors, calibration, test inputs), so a
//! failure is reproduced from its seed alone.
//!
//! The choices cover what the spec allows, not only what the planner prefers: any Kronecker
//! factorization (1 x N, N x 1 and 1 x 1 factors included), low rank above the matrix's rank,
//! empty and dense overlays, units / features / steps of 1 and omitted steps.

pub mod rust_batch;
pub mod sanitize;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kpgen::base::sequences::{SplitMix64, TestInputs};
use kpgen::base::tensor::write_npy_f32;
use kpgen::spec::Precision;

/// Largest overlay the cortex-m4 planner emits as straight-line code (targets/cortex-m4.toml).
pub const STRAIGHT_LINE_MAX_NNZ: usize = 128;

/// kpgen's own SplitMix64 (identical streams everywhere) with the draws the generator needs.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() - 1)]
    }

    /// One of `items`, each with its weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(f64, T)]) -> T {
        let total: f64 = items.iter().map(|(w, _)| w).sum();
        let mut at = self.unit() * total;
        for &(w, v) in items {
            if at < w {
                return v;
            }
            at -= w;
        }
        items[items.len() - 1].1
    }

    /// Log-uniform in [lo, hi).
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }

    /// Uniform in [-amp, amp), never exactly zero (a zero would silently shrink an overlay).
    pub fn nonzero(&mut self, amp: f64) -> f32 {
        let v = ((self.unit() * 2.0 - 1.0) * amp) as f32;
        if v == 0.0 {
            (amp / 2.0) as f32
        } else {
            v
        }
    }
}

/// How one weight matrix is written in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Dense,
    Kron,
    /// `kron` + `dope` with at most [`STRAIGHT_LINE_MAX_NNZ`] non-zeros.
    DopeSmall,
    /// `kron` + `dope` with more (a CSR overlay), when the matrix has room.
    DopeCsr,
    LowRank,
    Sparse,
    /// `kron` of three or four factors, sometimes doped.
    KronN,
}

/// A written random model.
#[derive(Debug)]
pub struct Written {
    pub seed: u64,
    pub spec_path: PathBuf,
    pub spec_text: String,
    pub precision: Precision,
    /// The test sequences (the first at full length, the others possibly shorter).
    pub inputs: TestInputs,
    /// What this model exercises, for the coverage check of a whole run.
    pub tags: BTreeSet<String>,
}

/// The model name of a seed: unique per seed, so many models link into one program.
pub fn model_name(seed: u64) -> String {
    format!("rnd_{seed:016x}")
}

/// A unit, feature or step count: often 1 and small odd sizes, sometimes larger.
fn size(rng: &mut Rng, large: usize) -> usize {
    match rng.weighted(&[(0.15, 0), (0.6, 1), (0.22, 2), (0.03, 3)]) {
        0 => 1,
        1 => rng.range(2, 9),
        2 => rng.range(10, 20),
        _ => rng.range(21, large),
    }
}

struct Writer<'a> {
    dir: &'a Path,
    rng: Rng,
    yaml: String,
    tags: BTreeSet<String>,
}

impl Writer<'_> {
    fn tag(&mut self, t: impl Into<String>) {
        self.tags.insert(t.into());
    }

    fn save(&mut self, file: &str, shape: &[usize], data: &[f32]) -> String {
        write_npy_f32(&self.dir.join(file), shape, data)
            .unwrap_or_else(|e| panic!("write {file}: {e}"));
        file.to_owned()
    }

    fn uniform_tensor(&mut self, file: &str, shape: &[usize], amp: f64) -> String {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.rng.nonzero(amp)).collect();
        self.save(file, shape, &data)
    }

    /// A full-size matrix with exactly `nnz` non-zeros at random places.
    fn scattered(&mut self, file: &str, rows: usize, cols: usize, nnz: usize, amp: f64) -> String {
        let mut places: Vec<usize> = (0..rows * cols).collect();
        for i in 0..nnz {
            let j = self.rng.range(i, places.len() - 1);
            places.swap(i, j);
        }
        let mut data = vec![0.0f32; rows * cols];
        for &p in &places[..nnz] {
            data[p] = self.rng.nonzero(amp);
        }
        self.save(file, &[rows, cols], &data)
    }

    /// Any factorization (m1 x n1) ⊗ (m2 x n2) of rows x cols; sometimes kpgen's best one.
    fn kron_shape(&mut self, rows: usize, cols: usize) -> (usize, usize, usize, usize) {
        if self.rng.chance(0.25) {
            if let Some(s) = kpgen::plan::shapes::best(rows, cols) {
                return (s.m1, s.n1, s.m2, s.n2);
            }
        }
        let divisors = |n: usize| (1..=n).filter(|d| n.is_multiple_of(*d)).collect::<Vec<_>>();
        let m1 = self.rng.pick(&divisors(rows));
        let n1 = self.rng.pick(&divisors(cols));
        (m1, n1, rows / m1, cols / n1)
    }

    /// `kron` of 3 or 4 random factors whose shapes multiply to rows x cols, none 1 x 1 (kpgen
    /// refuses a scalar factor among three or more); sometimes doped. None when a few draws
    /// find no such split (tiny or prime sizes).
    fn multi_kron(&mut self, prefix: &str, rows: usize, cols: usize, amp: f64) -> Option<String> {
        let k = self.rng.range(3, 4);
        let divisors = |n: usize| (1..=n).filter(|d| n.is_multiple_of(*d)).collect::<Vec<_>>();
        let split = |n: usize, rng: &mut Self| {
            let mut left = n;
            let mut out = Vec::new();
            for _ in 0..k - 1 {
                let d = rng.rng.pick(&divisors(left));
                out.push(d);
                left /= d;
            }
            out.push(left);
            out
        };
        let dims = (0..8).find_map(|_| {
            let (r, c) = (split(rows, self), split(cols, self));
            let dims: Vec<(usize, usize)> = r.into_iter().zip(c).collect();
            (!dims.contains(&(1, 1))).then_some(dims)
        })?;
        self.tag(format!("kron:{k} factors"));
        // The product's entries have std Π (a_k / sqrt 3); each factor takes an equal share.
        let f_amp = (amp / 3f64.sqrt()).powf(1.0 / k as f64) * 3f64.sqrt();
        let names: Vec<String> = dims
            .iter()
            .enumerate()
            .map(|(i, &(m, n))| self.uniform_tensor(&format!("{prefix}_F{i}.npy"), &[m, n], f_amp))
            .collect();
        let names = names.join(", ");
        if self.rng.chance(0.3) {
            self.tag("form:dope kron3+");
            let nnz = self.rng.range(0, (rows * cols).min(STRAIGHT_LINE_MAX_NNZ));
            let s = self.scattered(&format!("{prefix}_S.npy"), rows, cols, nnz, amp);
            return Some(format!("{{kron: [{names}], dope: {s}}}"));
        }
        self.tag("form:kron3+");
        Some(format!("{{kron: [{names}]}}"))
    }

    /// Writes one weight matrix and returns its spec value. `gain` sets the typical size of
    /// W·x for a unit-sized x, whatever the form.
    fn weight(&mut self, prefix: &str, rows: usize, cols: usize) -> String {
        let mut form = self.rng.weighted(&[
            (0.18, Form::Dense),
            (0.2, Form::Kron),
            (0.15, Form::DopeSmall),
            (0.12, Form::DopeCsr),
            (0.15, Form::LowRank),
            (0.2, Form::Sparse),
            (0.12, Form::KronN),
        ]);
        if form == Form::DopeCsr && rows * cols <= STRAIGHT_LINE_MAX_NNZ {
            form = Form::DopeSmall;
        }
        let gain = self.rng.log_uniform(0.05, 3.0);
        // Entries uniform in [-amp, amp) have standard deviation amp / sqrt(3).
        let amp = gain * (3.0 / cols as f64).sqrt();
        if form == Form::KronN {
            if let Some(spec) = self.multi_kron(prefix, rows, cols, amp) {
                return spec;
            }
            form = Form::Kron;
        }
        match form {
            Form::Dense => {
                self.tag("form:dense");
                self.uniform_tensor(&format!("{prefix}.npy"), &[rows, cols], amp)
            }
            // KronN fell back to Kron above when no split exists.
            Form::Kron | Form::KronN | Form::DopeSmall | Form::DopeCsr => {
                // Sometimes hybrid: r dense rows, the product the other rows.
                let r = if rows >= 2 && self.rng.chance(0.2) {
                    self.tag("form:hybrid");
                    self.rng.range(1, rows - 1)
                } else {
                    0
                };
                let (m1, n1, m2, n2) = self.kron_shape(rows - r, cols);
                for (m, n) in [(m1, n1), (m2, n2)] {
                    self.tag(match (m, n) {
                        (1, 1) => "kron:1x1 factor",
                        (1, _) => "kron:1xN factor",
                        (_, 1) => "kron:Nx1 factor",
                        _ => "kron:MxN factor",
                    });
                }
                // std(a·b) = a_amp · b_amp / 3 must be amp / sqrt(3); the factors' shares differ.
                let skew = self.rng.log_uniform(0.125, 8.0);
                let a_amp = amp.sqrt() * 3f64.sqrt().sqrt() * skew;
                let b_amp = amp.sqrt() * 3f64.sqrt().sqrt() / skew;
                let a = self.uniform_tensor(&format!("{prefix}_A.npy"), &[m1, n1], a_amp);
                let b = self.uniform_tensor(&format!("{prefix}_B.npy"), &[m2, n2], b_amp);
                let u = if r > 0 {
                    let u = self.uniform_tensor(&format!("{prefix}_U.npy"), &[r, cols], amp);
                    format!(", dense_rows: {u}")
                } else {
                    String::new()
                };
                if form == Form::Kron {
                    self.tag("form:kron");
                    return format!("{{kron: [{a}, {b}]{u}}}");
                }
                let nnz = if form == Form::DopeSmall {
                    self.tag("form:dope straight-line");
                    // An empty overlay is valid too.
                    self.rng.range(0, (rows * cols).min(STRAIGHT_LINE_MAX_NNZ))
                } else {
                    self.tag("form:dope csr");
                    self.rng
                        .range(STRAIGHT_LINE_MAX_NNZ + 1, (rows * cols).min(600))
                };
                let s = self.scattered(&format!("{prefix}_S.npy"), rows, cols, nnz, amp);
                format!("{{kron: [{a}, {b}]{u}, dope: {s}}}")
            }
            Form::LowRank => {
                self.tag("form:lowrank");
                let full = rows.min(cols);
                // Mostly a true low rank, sometimes above the matrix's own rank.
                let r = if self.rng.chance(0.15) {
                    self.tag("lowrank:over-full");
                    self.rng.range(full + 1, full + 3)
                } else {
                    self.rng.range(1, full.min(8))
                };
                // W = U·V sums r products: std sqrt(r) · u · v / 3 for amplitudes u = v.
                let f_amp = (amp * 3f64.sqrt() / (r as f64).sqrt()).sqrt();
                let u = self.uniform_tensor(&format!("{prefix}_U.npy"), &[rows, r], f_amp);
                let v = self.uniform_tensor(&format!("{prefix}_V.npy"), &[r, cols], f_amp);
                format!("{{lowrank: [{u}, {v}]}}")
            }
            Form::Sparse => {
                self.tag("form:sparse");
                let total = rows * cols;
                let nnz = if self.rng.chance(0.04) {
                    self.tag("sparse:empty");
                    0
                } else {
                    ((total as f64 * self.rng.log_uniform(0.02, 1.0)).round() as usize)
                        .clamp(1, total)
                };
                if nnz > STRAIGHT_LINE_MAX_NNZ {
                    self.tag("sparse:csr");
                }
                let density = nnz.max(1) as f64 / total as f64;
                let s_amp = (amp / density.sqrt()).min(4.0);
                let s = self.scattered(&format!("{prefix}_S.npy"), rows, cols, nnz, s_amp);
                format!("{{sparse: {s}}}")
            }
        }
    }

    fn bias(&mut self, field: &str, prefix: &str, n: usize, amp: f64) {
        let v = self.uniform_tensor(&format!("{prefix}_{field}.npy"), &[n], amp);
        self.field(field, &v);
    }

    fn field(&mut self, name: &str, value: &str) {
        writeln!(self.yaml, "    {name}: {value}").unwrap();
    }

    fn layer(&mut self, i: usize, inputs: usize, last: bool) -> usize {
        let kind = self.rng.pick(&["lstm", "gru", "fastgrnn", "dense"]);
        let units = if last && kind == "dense" {
            self.rng.range(1, 10)
        } else {
            size(&mut self.rng, 32)
        };
        self.tag(format!("cell:{kind}"));
        if units == 1 {
            self.tag("size:units 1");
        }
        let p = format!("l{i}");
        writeln!(self.yaml, "  - kind: {kind}\n    units: {units}").unwrap();
        let biases = self.rng.chance(0.7);
        self.tag(if biases {
            "bias:present"
        } else {
            "bias:absent"
        });
        let bias_amp = self.rng.log_uniform(0.01, 1.0);
        match kind {
            "lstm" | "gru" => {
                let g = if kind == "lstm" { 4 } else { 3 };
                let v = self.weight(&format!("{p}_w_ih"), g * units, inputs);
                self.field("w_ih", &v);
                let v = self.weight(&format!("{p}_w_hh"), g * units, units);
                self.field("w_hh", &v);
                if biases {
                    // Either bias alone is valid too.
                    let which = self.rng.range(0, 2);
                    if which != 1 {
                        self.bias("b_ih", &p, g * units, bias_amp);
                    }
                    if which != 2 {
                        self.bias("b_hh", &p, g * units, bias_amp);
                    }
                }
            }
            "fastgrnn" => {
                let v = self.weight(&format!("{p}_w"), units, inputs);
                self.field("w", &v);
                let v = self.weight(&format!("{p}_u"), units, units);
                self.field("u", &v);
                if biases {
                    self.bias("b_z", &p, units, bias_amp);
                    self.bias("b_h", &p, units, bias_amp);
                }
                // Raw values: the cell uses sigmoid(zeta) and sigmoid(nu).
                let zeta = self.rng.nonzero(3.0);
                let nu = self.rng.nonzero(3.0);
                if self.rng.chance(0.5) {
                    self.tag("fastgrnn:scalars inline");
                    self.field("zeta", &format!("{zeta:?}"));
                    self.field("nu", &format!("{nu:?}"));
                } else {
                    self.tag("fastgrnn:scalars npy");
                    let z = self.save(&format!("{p}_zeta.npy"), &[], &[zeta]);
                    self.field("zeta", &z);
                    let n = self.save(&format!("{p}_nu.npy"), &[], &[nu]);
                    self.field("nu", &n);
                }
            }
            _ => {
                let v = self.weight(&format!("{p}_w"), units, inputs);
                self.field("w", &v);
                if biases {
                    self.bias("b", &p, units, bias_amp);
                }
                let act = self
                    .rng
                    .pick(&["none", "relu", "sigmoid", "tanh", "softmax"]);
                self.tag(format!("activation:{act}"));
                // `none` is the default: sometimes say so, sometimes leave it out.
                if act != "none" || self.rng.chance(0.5) {
                    self.field("activation", act);
                }
            }
        }
        units
    }
}

/// Writes the tensors and spec.yaml of the model of `seed` into `dir`.
pub fn write_model(seed: u64, dir: &Path) -> Written {
    let mut w = Writer {
        dir,
        rng: Rng::new(seed),
        yaml: String::new(),
        tags: BTreeSet::new(),
    };
    let precision = w.rng.weighted(&[
        (0.5, Precision::F32),
        (0.25, Precision::Int8),
        (0.25, Precision::Int16),
    ]);
    w.tag(format!("precision:{}", precision.as_str()));
    let features = size(&mut w.rng, 24);
    if features == 1 {
        w.tag("size:features 1");
    }
    let steps = match w.rng.weighted(&[(0.15, 0), (0.15, 1), (0.7, 2)]) {
        0 => None,
        1 => Some(1),
        _ => Some(w.rng.range(2, 6)),
    };
    w.tag(match steps {
        None => "size:steps omitted",
        Some(1) => "size:steps 1",
        Some(_) => "size:steps > 1",
    });
    let layers = w.rng.range(1, 4);
    w.tag(format!("layers:{layers}"));

    writeln!(w.yaml, "# Random model, seed {seed:#018x}.").unwrap();
    writeln!(w.yaml, "name: {}", model_name(seed)).unwrap();
    match steps {
        Some(s) => writeln!(w.yaml, "input: {{features: {features}, steps: {s}}}"),
        None => writeln!(w.yaml, "input: {{features: {features}}}"),
    }
    .unwrap();
    if precision.is_fixed() || w.rng.chance(0.3) {
        writeln!(w.yaml, "precision: {}", precision.as_str()).unwrap();
    }
    // A quarter of the models are size builds (every matrix looped, every overlay in CSR, bias
    // codes stored narrow). Drawn from a second stream of the seed, so that every other choice
    // of a seed stays what it was.
    if Rng::new(seed ^ 0x0b1e_c7ed_5123_u64).chance(0.25) {
        w.tag("optimize:size");
        writeln!(w.yaml, "optimize: size").unwrap();
    } else {
        w.tag("optimize:speed");
    }
    let steps = steps.unwrap_or(1);
    // Fixed point: sometimes calibrate on skewed, wider data than the default [-1, 1).
    if precision.is_fixed() && w.rng.chance(0.4) {
        w.tag("calibration:file");
        let count = w.rng.range(1, 8);
        let offset = w.rng.unit() - 0.5;
        let scale = w.rng.log_uniform(0.25, 2.0);
        let calib = TestInputs::random(count, steps, features, w.rng.next_u64(), scale as f32);
        let data: Vec<f32> = calib
            .sequences
            .concat()
            .iter()
            .map(|v| v + offset as f32)
            .collect();
        w.save("calib.npy", &[count, steps, features], &data);
        writeln!(w.yaml, "calibration: calib.npy").unwrap();
    }
    writeln!(w.yaml, "layers:").unwrap();
    let mut inputs = features;
    for i in 0..layers {
        inputs = w.layer(i, inputs, i + 1 == layers);
    }
    let spec_path = dir.join("spec.yaml");
    std::fs::write(&spec_path, &w.yaml).expect("write spec.yaml");

    // Test inputs a little beyond [-1, 1) at times (fixed point saturates them); the first
    // sequence runs at full length (infer), the others may be shorter (reset + step).
    let scale = if w.rng.chance(0.3) { 1.25 } else { 1.0 };
    let mut inputs = TestInputs::random(3, steps, features, w.rng.next_u64(), scale);
    for len in inputs.lengths.iter_mut().skip(1) {
        *len = w.rng.range(1, steps);
    }
    Written {
        seed,
        spec_path,
        spec_text: w.yaml,
        precision,
        inputs,
        tags: w.tags,
    }
}
