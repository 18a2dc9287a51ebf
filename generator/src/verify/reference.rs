//! The float reference: the model computed on the host in f64 from the expanded dense matrices,
//! independently of the planner and the generated code. Conformance checks compare against it.

use nalgebra::{DMatrix, DVector};

use crate::model::cells::CellState;
use crate::model::Model;

/// A running reference model with its recurrent state, mirroring the generated `step` API.
pub struct Reference<'m> {
    model: &'m Model,
    /// Per layer, its weights expanded to dense, in [`crate::model::Cell::weights`] order:
    /// the input matrix, then the recurrent one if the cell has it.
    weights: Vec<Vec<DMatrix<f64>>>,
    state: Vec<CellState>,
}

impl<'m> Reference<'m> {
    pub fn new(model: &'m Model) -> Self {
        let weights = model
            .layers
            .iter()
            .map(|l| l.cell.weights().iter().map(|w| w.expand()).collect())
            .collect();
        let mut r = Reference {
            model,
            weights,
            state: Vec::new(),
        };
        r.reset();
        r
    }

    pub fn reset(&mut self) {
        self.state = self
            .model
            .layers
            .iter()
            .map(|l| l.cell.zero_state(l.units))
            .collect();
    }

    /// One time step through every layer; returns the model output for this step.
    pub fn step(&mut self, x: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        for ((layer, w), st) in self
            .model
            .layers
            .iter()
            .zip(&self.weights)
            .zip(self.state.iter_mut())
        {
            let wx = &w[0] * DVector::from_column_slice(&v);
            let recurrent = |h: &[f64]| match w.get(1) {
                Some(wh) => (wh * DVector::from_column_slice(h)).as_slice().to_vec(),
                None => vec![0.0; h.len()],
            };
            v = layer.cell.step(
                wx.as_slice(),
                recurrent,
                st,
                self.model.reference_activations(),
            );
        }
        v
    }

    /// Reset, run every step of `x` (steps x features, row-major), return the last output.
    pub fn infer(&mut self, x: &[f64]) -> Vec<f64> {
        self.reset();
        let f = self.model.input_features;
        let mut y = vec![0.0; self.model.output_size()];
        for row in x.chunks(f) {
            y = self.step(row);
        }
        y
    }
}
