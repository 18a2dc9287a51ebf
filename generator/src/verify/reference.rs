//! The float reference: the model computed on the host in f64 from the expanded dense matrices,
//! independently of the planner and the generated code. Conformance checks compare against it.

use nalgebra::{DMatrix, DVector};

use crate::model::cells::{activate, fastgrnn_cell, gru_cell, lstm_cell, sigmoid};
use crate::model::{Cell, Model};

enum LayerState {
    Lstm { h: DVector<f64>, c: DVector<f64> },
    Hidden { h: DVector<f64> },
    Stateless,
}

struct RefLayer {
    w_x: DMatrix<f64>,
    /// The recurrent matrix (0 x 0 for a dense layer).
    w_h: DMatrix<f64>,
}

/// A running reference model with its recurrent state, mirroring the generated `step` API.
pub struct Reference<'m> {
    model: &'m Model,
    layers: Vec<RefLayer>,
    state: Vec<LayerState>,
}

impl<'m> Reference<'m> {
    pub fn new(model: &'m Model) -> Self {
        let layers = model
            .layers
            .iter()
            .map(|l| match &l.cell {
                Cell::Lstm(g) | Cell::Gru(g) => RefLayer {
                    w_x: g.w_ih.expand(),
                    w_h: g.w_hh.expand(),
                },
                Cell::FastGrnn(f) => RefLayer {
                    w_x: f.w.expand(),
                    w_h: f.u.expand(),
                },
                Cell::Dense(d) => RefLayer {
                    w_x: d.w.expand(),
                    w_h: DMatrix::zeros(0, 0),
                },
            })
            .collect();
        let mut r = Reference {
            model,
            layers,
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
            .map(|l| {
                let z = DVector::zeros(l.units);
                match l.cell {
                    Cell::Lstm(_) => LayerState::Lstm { h: z.clone(), c: z },
                    Cell::Gru(_) | Cell::FastGrnn(_) => LayerState::Hidden { h: z },
                    Cell::Dense(_) => LayerState::Stateless,
                }
            })
            .collect();
    }

    /// One time step through every layer; returns the model output for this step.
    pub fn step(&mut self, x: &[f64]) -> Vec<f64> {
        let mut v = DVector::from_column_slice(x);
        for ((layer, rl), st) in self
            .model
            .layers
            .iter()
            .zip(&self.layers)
            .zip(self.state.iter_mut())
        {
            v = match (&layer.cell, st) {
                (Cell::Lstm(g), LayerState::Lstm { h, c }) => {
                    let wh = &rl.w_h * &*h;
                    let z = &rl.w_x * &v
                        + wh
                        + DVector::from_column_slice(&g.b_ih)
                        + DVector::from_column_slice(&g.b_hh);
                    lstm_cell(z.as_slice(), c.as_mut_slice(), h.as_mut_slice());
                    h.clone()
                }
                (Cell::Gru(g), LayerState::Hidden { h }) => {
                    let zi = &rl.w_x * &v + DVector::from_column_slice(&g.b_ih);
                    let zh = &rl.w_h * &*h + DVector::from_column_slice(&g.b_hh);
                    gru_cell(zi.as_slice(), zh.as_slice(), h.as_mut_slice());
                    h.clone()
                }
                (Cell::FastGrnn(f), LayerState::Hidden { h }) => {
                    let pre = &rl.w_x * &v + &rl.w_h * &*h;
                    let (zeta, nu) = (sigmoid(f.zeta), sigmoid(f.nu));
                    fastgrnn_cell(pre.as_slice(), &f.b_z, &f.b_h, zeta, nu, h.as_mut_slice());
                    h.clone()
                }
                (Cell::Dense(d), _) => {
                    let mut y = &rl.w_x * &v + DVector::from_column_slice(&d.b);
                    activate(d.activation, y.as_mut_slice());
                    y
                }
                _ => unreachable!("reset() builds a state matching each layer's cell"),
            };
        }
        v.as_slice().to_vec()
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
