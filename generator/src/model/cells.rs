//! The f64 cell equations, in one place: the float reference runs them on the expanded
//! matrices ([`Cell::step`]) and calibration on the planned products, so both mean the same
//! cell.

use super::Cell;
use crate::spec::Activation;

/// A layer's state carried from one step to the next.
#[derive(Debug, Clone, PartialEq)]
pub enum CellState {
    Lstm { h: Vec<f64>, c: Vec<f64> },
    Hidden { h: Vec<f64> },
    Stateless,
}

impl Cell {
    /// The state after a reset: all zeros.
    pub fn zero_state(&self, units: usize) -> CellState {
        let z = vec![0.0; units];
        match self {
            Cell::Lstm(_) => CellState::Lstm { h: z.clone(), c: z },
            Cell::Gru(_) | Cell::FastGrnn(_) => CellState::Hidden { h: z },
            Cell::Dense(_) => CellState::Stateless,
        }
    }

    /// One step of the layer given its matrix products: `wx` is the first weight
    /// ([`Cell::weights`]) times the step's input, `recurrent(h)` the second times the hidden
    /// state. Adds the biases as the cell defines them, updates `state`, returns the output.
    pub fn step(
        &self,
        wx: &[f64],
        recurrent: impl Fn(&[f64]) -> Vec<f64>,
        state: &mut CellState,
    ) -> Vec<f64> {
        let add =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x + y).collect() };
        match (self, state) {
            (Cell::Lstm(g), CellState::Lstm { h, c }) => {
                let z = add(&add(&add(wx, &recurrent(h)), &g.b_ih), &g.b_hh);
                lstm_cell(&z, c, h);
                h.clone()
            }
            (Cell::Gru(g), CellState::Hidden { h }) => {
                let zi = add(wx, &g.b_ih);
                let zh = add(&recurrent(h), &g.b_hh);
                gru_cell(&zi, &zh, h);
                h.clone()
            }
            (Cell::FastGrnn(f), CellState::Hidden { h }) => {
                let pre = add(wx, &recurrent(h));
                let (zeta, nu) = (sigmoid(f.zeta), sigmoid(f.nu));
                fastgrnn_cell(&pre, &f.b_z, &f.b_h, zeta, nu, h);
                h.clone()
            }
            (Cell::Dense(d), _) => {
                let mut y = add(wx, &d.b);
                activate(d.activation, &mut y);
                y
            }
            (_, state) => {
                // A state of another cell kind: start this one from zeros.
                *state = self.zero_state(wx.len() / self.gates().max(1));
                self.step(wx, recurrent, state)
            }
        }
    }

    /// Rows of the input product per unit (LSTM 4, GRU 3, FastGRNN and dense 1).
    fn gates(&self) -> usize {
        match self {
            Cell::Lstm(_) => 4,
            Cell::Gru(_) => 3,
            Cell::FastGrnn(_) | Cell::Dense(_) => 1,
        }
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The LSTM update (PyTorch): `z` holds the pre-activations i, f, g, o, `c.len()` each.
pub fn lstm_cell(z: &[f64], c: &mut [f64], h: &mut [f64]) {
    let n = c.len();
    for k in 0..n {
        let (i, f) = (sigmoid(z[k]), sigmoid(z[n + k]));
        let (g, o) = (z[2 * n + k].tanh(), sigmoid(z[3 * n + k]));
        c[k] = f * c[k] + i * g;
        h[k] = o * c[k].tanh();
    }
}

/// The GRU update (PyTorch): `zi` = W_ih x + b_ih and `zh` = W_hh h + b_hh, gates r, z, n.
pub fn gru_cell(zi: &[f64], zh: &[f64], h: &mut [f64]) {
    let n = h.len();
    for k in 0..n {
        let r = sigmoid(zi[k] + zh[k]);
        let z = sigmoid(zi[n + k] + zh[n + k]);
        let nn = (zi[2 * n + k] + r * zh[2 * n + k]).tanh();
        h[k] = (1.0 - z) * nn + z * h[k];
    }
}

/// The FastGRNN update (EdgeML): `pre` = W x + U h; `zeta`, `nu` after their sigmoid.
pub fn fastgrnn_cell(pre: &[f64], b_z: &[f64], b_h: &[f64], zeta: f64, nu: f64, h: &mut [f64]) {
    for k in 0..h.len() {
        let z = sigmoid(pre[k] + b_z[k]);
        let ht = (pre[k] + b_h[k]).tanh();
        h[k] = (zeta * (1.0 - z) + nu) * ht + z * h[k];
    }
}

/// A dense layer's activation, in place.
pub fn activate(act: Activation, y: &mut [f64]) {
    match act {
        Activation::None => {}
        Activation::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Activation::Tanh => y.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Softmax => {
            let m = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            y.iter_mut().for_each(|v| *v = (*v - m).exp());
            let s: f64 = y.iter().sum();
            y.iter_mut().for_each(|v| *v /= s);
        }
    }
}
