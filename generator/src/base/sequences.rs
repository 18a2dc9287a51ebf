//! Input sequences (calibration data and test inputs): from a .npy file, or seeded random
//! sequences from SplitMix64, so every machine draws the same ones.

use std::path::Path;

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};
use crate::base::tensor;

/// Input sequences, each `steps * features` floats, row-major (zero-padded past its length).
#[derive(Debug, Clone, PartialEq)]
pub struct TestInputs {
    pub steps: usize,
    pub features: usize,
    pub sequences: Vec<Vec<f32>>,
    /// Valid steps of each sequence (1..=steps); shorter ones run through the step API.
    pub lengths: Vec<usize>,
    /// Class labels, for accuracy.
    pub labels: Option<Vec<usize>>,
}

/// SplitMix64: a tiny, well-known generator, so seeded inputs are the same on every machine.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, scale: f32) -> f32 {
        self.unit() * scale
    }

    /// Uniform in [0, n) (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Loads a tensor file given by its own path (not relative to a spec).
fn read(path: &Path, float: bool) -> Result<tensor::Tensor, String> {
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let loaded = if float {
        tensor::load_float(&name, base)
    } else {
        tensor::load(&name, base)
    };
    loaded.map_err(|e| e.to_string())
}

impl TestInputs {
    /// `count` sequences of values uniform in [-scale, scale).
    pub fn random(count: usize, steps: usize, features: usize, seed: u64, scale: f32) -> Self {
        let mut rng = SplitMix64(seed);
        TestInputs {
            steps,
            features,
            sequences: (0..count)
                .map(|_| (0..steps * features).map(|_| rng.unit() * scale).collect())
                .collect(),
            lengths: vec![steps; count],
            labels: None,
        }
    }

    /// Reads a float .npy of shape sequences x steps x features (or steps x features for one).
    pub fn from_file(path: &Path, steps: usize, features: usize) -> Result<Self, Diagnostics> {
        let fail = |msg: String| -> Diagnostics { Diagnostic::new(Place::file(path), msg).into() };
        let t = read(path, true).map_err(fail)?;
        let (count, s, f) = match t.shape.as_slice() {
            [n, s, f] => (*n, *s, *f),
            [s, f] => (1, *s, *f),
            other => {
                return Err(fail(format!(
                    "inputs have shape {other:?}: expected sequences x steps x features"
                )))
            }
        };
        if s != steps || f != features {
            return Err(fail(format!(
                "inputs have {s} steps x {f} features per sequence: the model takes {steps} x {features}"
            )));
        }
        if count == 0 {
            return Err(fail("inputs hold no sequence".to_owned()));
        }
        if let Some((i, v)) = t.first_non_finite() {
            return Err(fail(format!(
                "input value {i} is {v}: expected finite inputs"
            )));
        }
        Ok(TestInputs {
            steps,
            features,
            sequences: t
                .data
                .chunks(steps * features)
                .map(|c| c.iter().map(|&v| v as f32).collect())
                .collect(),
            lengths: vec![steps; count],
            labels: None,
        })
    }

    /// Reads one whole number per sequence from an integer (or integral float) .npy.
    fn per_sequence(&self, path: &Path, what: &str) -> Result<Vec<usize>, Diagnostics> {
        let fail = |msg: String| -> Diagnostics { Diagnostic::new(Place::file(path), msg).into() };
        let t = read(path, false).map_err(fail)?;
        if t.data.len() != self.sequences.len() || t.shape.len() > 1 {
            return Err(fail(format!(
                "{what} have shape {:?}: expected one value per sequence ({})",
                t.shape,
                self.sequences.len()
            )));
        }
        t.data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 && v < 1e9 {
                    Ok(v as usize)
                } else {
                    Err(fail(format!("{what}[{i}] is {v}: expected a whole number")))
                }
            })
            .collect()
    }

    /// Sets each sequence's valid length from a .npy (e.g. the trainer's test_len.npy).
    pub fn with_lengths(mut self, path: &Path) -> Result<Self, Diagnostics> {
        let lengths = self.per_sequence(path, "lengths")?;
        if let Some((i, l)) = lengths
            .iter()
            .enumerate()
            .find(|(_, &l)| l == 0 || l > self.steps)
        {
            return Err(Diagnostic::new(
                Place::file(path),
                format!("lengths[{i}] is {l}: expected 1 to {} steps", self.steps),
            )
            .into());
        }
        self.lengths = lengths;
        Ok(self)
    }

    /// Sets class labels from a .npy (e.g. test_y.npy), for accuracy.
    pub fn with_labels(mut self, path: &Path, classes: usize) -> Result<Self, Diagnostics> {
        let labels = self.per_sequence(path, "labels")?;
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(Diagnostic::new(
                Place::file(path),
                format!("labels[{i}] is {l}: the model has {classes} outputs"),
            )
            .into());
        }
        self.labels = Some(labels);
        Ok(self)
    }
}
