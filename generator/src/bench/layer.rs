//! The layers a benchmark runs: synthetic Kronecker layers from a shape string, or the matrices
//! of a trained model's layer; each becomes a one-layer kpgen build plus what the host expects
//! the benchmark firmware to print.

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};
use crate::base::sequences::SplitMix64;
use crate::model::{Cell, DenseLayer, Layer, Model, SparseMatrix, Weight, WeightForm};
use crate::plan::MatrixPlan;
use crate::spec::{Activation, Precision};
use crate::target::Target;
use crate::Generation;

/// Where a benchmark layer's weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSource {
    /// W = A ⊗ B (+ S with `density` of W's entries), seeded random values.
    Synthetic {
        a: (usize, usize),
        b: (usize, usize),
        /// Fraction of W's entries in the doping overlay; 0 for a plain KP layer.
        density: f64,
    },
    /// Layer `layer` of a model spec: its matrices side by side, `[W_ih | W_hh]` for a cell.
    Model { spec: PathBuf, layer: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchLayer {
    /// Shown in tables and used as the baseline key, e.g. `16x16*16x16+2%`.
    pub name: String,
    pub source: LayerSource,
}

/// The benchmark set: three KP shapes from small to the language model's, each plain
/// and with a 2% doping overlay.
pub fn standard_layers() -> Vec<BenchLayer> {
    let shapes = ["16x16*16x16", "16x32*32x16", "50x50*52x26"];
    shapes
        .iter()
        .flat_map(|s| [s.to_string(), format!("{s}+2%")])
        .map(|s| parse_layer(&s).expect("the standard shapes parse"))
        .collect()
}

/// Parses `MxN*PxQ[+D%]`: A is MxN, B is PxQ, D percent of W's entries doped.
pub fn parse_layer(text: &str) -> Result<BenchLayer, String> {
    let expected = "expected `MxN*PxQ` or `MxN*PxQ+D%` (A is MxN, B is PxQ, D percent doped), \
                    e.g. `16x32*32x16+2%`";
    let (shape, density) = match text.split_once('+') {
        Some((shape, pct)) => {
            let pct = pct
                .strip_suffix('%')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| format!("bad doping `{pct}` in layer `{text}`: {expected}"))?;
            (shape, pct / 100.0)
        }
        None => (text, 0.0),
    };
    let dims = |s: &str| -> Option<(usize, usize)> {
        let (m, n) = s.split_once('x')?;
        let (m, n) = (m.trim().parse().ok()?, n.trim().parse().ok()?);
        (m > 0 && n > 0).then_some((m, n))
    };
    let (a, b) = shape
        .split_once('*')
        .and_then(|(a, b)| Some((dims(a)?, dims(b)?)))
        .ok_or_else(|| format!("cannot read layer `{text}`: {expected}"))?;
    let (rows, cols) = (a.0 * b.0, a.1 * b.1);
    if rows > u16::MAX as usize || cols > u16::MAX as usize {
        return Err(format!(
            "layer `{text}` is {rows}x{cols}: at most 65535 rows and columns \
             (CMSIS-DSP matrices count them in 16 bits)"
        ));
    }
    Ok(BenchLayer {
        name: text.to_owned(),
        source: LayerSource::Synthetic { a, b, density },
    })
}

/// One benchmark layer per layer of the model spec at `path`.
pub fn model_layers(path: &Path) -> Result<Vec<BenchLayer>, Diagnostics> {
    let model = crate::load(path)?;
    let stem = model.name.clone();
    Ok((0..model.layers.len())
        .map(|i| BenchLayer {
            name: format!("{stem}/l{i}"),
            source: LayerSource::Model {
                spec: path.to_owned(),
                layer: i,
            },
        })
        .collect())
}

/// A layer built for one target and precision: the generation, the matrices the benchmark calls
/// and their input offsets in the concatenated input vector.
pub struct BuiltLayer {
    pub generation: Generation,
    /// Matrices called in order, each reading `x[offset .. offset + cols]`.
    pub calls: Vec<(MatrixPlan, usize)>,
    pub rows: usize,
    pub cols: usize,
    /// Length of the destination buffer (rows beyond `dest_offset` included).
    pub dest_len: usize,
    /// Index of the benchmarked layer in `generation.model`.
    pub layer: usize,
}

fn seed_of(name: &str) -> u64 {
    // FNV-1a: a stable seed per layer name, so a layer's weights never change between runs.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn synthetic_model(name: &str, a: (usize, usize), b: (usize, usize), density: f64) -> Model {
    let mut rng = SplitMix64(seed_of(name));
    // Scaled so outputs stay near unit size whatever the shape (float checks stay relative).
    let sa = 1.0 / (a.1 as f64).sqrt();
    let sb = 1.0 / (b.1 as f64).sqrt();
    let fa = DMatrix::from_fn(a.0, a.1, |_, _| f64::from(rng.unit()) * sa);
    let fb = DMatrix::from_fn(b.0, b.1, |_, _| f64::from(rng.unit()) * sb);
    let (rows, cols) = (a.0 * b.0, a.1 * b.1);
    let dope = (density > 0.0).then(|| {
        let total = rows * cols;
        let nnz = ((density * total as f64).round() as usize).clamp(1, total);
        // Floyd's sampling: nnz distinct positions without a rejection loop.
        let mut chosen = std::collections::BTreeSet::new();
        for j in total - nnz..total {
            let t = (rng.next_u64() % (j as u64 + 1)) as usize;
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        let entries = chosen
            .into_iter()
            .map(|p| (p / cols, p % cols, f64::from(rng.unit()) * sa * sb))
            .collect();
        SparseMatrix {
            rows,
            cols,
            entries,
        }
    });
    Model {
        name: "kp_bench".to_owned(),
        input_features: cols,
        steps: 1,
        layers: vec![Layer {
            inputs: cols,
            units: rows,
            cell: Cell::Dense(DenseLayer {
                w: Weight {
                    field: "w",
                    form: WeightForm::Kron {
                        factors: vec![fa, fb],
                        dense_rows: None,
                        dope,
                    },
                },
                b: vec![0.0; rows],
                activation: Activation::None,
            }),
        }],
        precision: Precision::F32,
        activations: crate::spec::Activations::default(),
        optimize: crate::spec::Optimize::default(),
        calibration: None,
        sources: Vec::new(),
    }
}

/// Builds `layer` for `target` in `precision`.
pub fn build_layer(
    layer: &BenchLayer,
    target: &Target,
    precision: Precision,
) -> Result<BuiltLayer, Diagnostics> {
    let (mut model, index) = match &layer.source {
        LayerSource::Synthetic { a, b, density } => {
            (synthetic_model(&layer.name, *a, *b, *density), 0)
        }
        LayerSource::Model { spec, layer } => (crate::load(spec)?, *layer),
    };
    model.precision = precision;
    let generation = crate::generate_model(&model, &target.unbudgeted())?;
    let matrices = &generation.plan.layers[index].matrices;
    let first = &matrices[0];
    if matrices
        .iter()
        .any(|m| m.dest != first.dest || m.dest_offset != first.dest_offset || m.rows != first.rows)
    {
        return Err(Diagnostic::new(
            Place::file(Path::new(&layer.name)),
            "the layer's matrices write different destinations: it cannot run as one \
             [W_1 | W_2] product"
                .to_owned(),
        )
        .into());
    }
    let mut calls = Vec::new();
    let mut offset = 0;
    for m in matrices {
        calls.push((m.clone(), offset));
        offset += m.cols;
    }
    Ok(BuiltLayer {
        dest_len: first.dest_offset + first.rows,
        rows: first.rows,
        cols: offset,
        generation,
        calls,
        layer: index,
    })
}

/// Seeded benchmark inputs: floats uniform in [-1, 1), or codes over the whole code range.
pub fn bench_input(name: &str, cols: usize, precision: Precision) -> Inputs {
    let mut rng = SplitMix64(seed_of(name) ^ 0x1234_5678);
    match precision {
        Precision::F32 => Inputs::Float((0..cols).map(|_| rng.unit()).collect()),
        Precision::Int16 => Inputs::Codes(
            (0..cols)
                .map(|_| (rng.next_u64() >> 48) as i16 as i32)
                .collect(),
        ),
        Precision::Int8 => Inputs::Codes(
            (0..cols)
                .map(|_| (rng.next_u64() >> 56) as i8 as i32)
                .collect(),
        ),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    Float(Vec<f32>),
    Codes(Vec<i32>),
}

/// What the kpgen kernels must write to the destination (from zero), on the host: the f64
/// product for float builds, the integer reference's result (bit-exact) for fixed point.
pub enum Expected {
    /// Each row's value and the bound Σ|w·x| its rounding error scales with.
    Float(Vec<(f64, f64)>),
    Exact(Vec<i32>),
}

pub fn expected_kpgen(built: &BuiltLayer, inputs: &Inputs) -> Expected {
    let offset = built.calls[0].0.dest_offset;
    match inputs {
        // W x over the expanded weights [W_1 | W_2 | ...], expanded only for float builds.
        Inputs::Float(x) => {
            let mut rows = vec![(0.0, 0.0); built.rows];
            let mut at = 0;
            for w in built.generation.model.layers[built.layer].cell.weights() {
                let e = w.expand();
                for (r, (v, mag)) in rows.iter_mut().enumerate() {
                    for c in 0..e.ncols() {
                        let t = e[(r, c)] * f64::from(x[at + c]);
                        *v += t;
                        *mag += t.abs();
                    }
                }
                at += e.ncols();
            }
            Expected::Float(rows)
        }
        Inputs::Codes(x) => {
            let quant = built
                .generation
                .quant
                .as_ref()
                .expect("fixed-point inputs come with a quantized build");
            let mut dest = vec![0i32; built.dest_len];
            for (m, at) in &built.calls {
                let q = quant.matrix(&m.id).expect("every matrix is quantized");
                crate::quant::matvec_int(m, q, &x[*at..*at + m.cols], &mut dest);
            }
            Expected::Exact(dest[offset..].to_vec())
        }
    }
}
