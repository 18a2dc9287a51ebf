//! The f64 cell equations, in one place: the float reference runs them on the expanded
//! matrices ([`Cell::step`]) and calibration on the planned products, so both mean the same
//! cell.

use super::Cell;
use std::sync::OnceLock;

use crate::spec::{Activation, Activations};

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
        act: Activations,
    ) -> Vec<f64> {
        let add =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x + y).collect() };
        match (self, state) {
            (Cell::Lstm(g), CellState::Lstm { h, c }) => {
                let z = add(&add(&add(wx, &recurrent(h)), &g.b_ih), &g.b_hh);
                lstm_cell(act, &z, c, h);
                h.clone()
            }
            (Cell::Gru(g), CellState::Hidden { h }) => {
                let zi = add(wx, &g.b_ih);
                let zh = add(&recurrent(h), &g.b_hh);
                gru_cell(act, &zi, &zh, h);
                h.clone()
            }
            (Cell::FastGrnn(f), CellState::Hidden { h }) => {
                let pre = add(wx, &recurrent(h));
                let (zeta, nu) = (sigmoid(f.zeta), sigmoid(f.nu));
                fastgrnn_cell(act, &pre, &f.b_z, &f.b_h, zeta, nu, h);
                h.clone()
            }
            (Cell::Dense(d), _) => {
                let mut y = add(wx, &d.b);
                activate(act, d.activation, &mut y);
                y
            }
            (_, state) => {
                // A state of another cell kind: start this one from zeros.
                *state = self.zero_state(wx.len() / self.gates().max(1));
                self.step(wx, recurrent, state, act)
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

/// The exact logistic function (host-side constants such as FastGRNN's zeta and nu).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Table points per unit of input: the float table holds a point per k / 20, k = 0..=256, so
/// it covers [0, 12.8] in steps of 0.05 (20 is exact in f32, so C and Rust index it alike).
pub const SIGMOID_TABLE_SCALE: f64 = 20.0;
/// Intervals of the float table; it stores one more point, and then the last one again so the
/// interpolation at the clamp (index 256, fraction 0) reads inside the table.
pub const SIGMOID_TABLE_STEPS: usize = 256;

/// The float activation table of `activations: table` builds, as f32 values: sigmoid at
/// k / [`SIGMOID_TABLE_SCALE`] for k = 0..=256, moved by -h²/12 · sigmoid'' (below), then the
/// last point again (258 entries, 1,032
/// bytes). Sigmoid of negative inputs is 1 - sigmoid(-x); tanh(x) = 2 sigmoid(2x) - 1, odd.
/// (A table of both signs, 2 KB, saves the sign test but measured slower on the Cortex-M4:
/// two clamps cost more than one clamp and a sign.)
///
/// Error of the interpolated result against the true function (linear interpolation:
/// h²/12 · max|f''| with h = 0.05 after the correction below; clamp: 1 - sigmoid(12.8) and
/// 1 - tanh(6.4)): at most 2.0e-5 for sigmoid and 4.0e-5 for tanh, measured by
/// `tests/activations.rs`, with no bias: the error averages zero over each interval.
pub fn sigmoid_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Each point is moved by -h²/12 · sigmoid''(x): the interpolation error, -sigmoid''/2 ·
        // (x - a)(b - x) on [a, b], then averages zero over every interval (it would average
        // -h²/12 · sigmoid'', a bias toward 1/2 that a recurrent state accumulates step after
        // step), and its largest magnitude drops from h²/8 to h²/12 of |sigmoid''|.
        let h = 1.0 / SIGMOID_TABLE_SCALE;
        let mut t: Vec<f32> = (0..=SIGMOID_TABLE_STEPS)
            .map(|k| {
                let s = sigmoid(k as f64 * h);
                let second = s * (1.0 - s) * (1.0 - 2.0 * s);
                (s - h * h / 12.0 * second) as f32
            })
            .collect();
        t.push(t[SIGMOID_TABLE_STEPS]);
        t
    })
}

/// Sigmoid of `a` >= 0 given `t` = a · scale: linear interpolation in [`sigmoid_table`],
/// clamped at the last point (a NaN reads as the clamp, as in the generated code).
fn table_sigmoid_scaled(t: f64) -> f64 {
    let table = sigmoid_table();
    let last = SIGMOID_TABLE_STEPS as f64;
    let t = if t < last { t } else { last };
    let i = t.floor() as usize;
    let (lo, hi) = (table[i] as f64, table[i + 1] as f64);
    lo + (t - i as f64) * (hi - lo)
}

/// Sigmoid as `act` defines it.
pub fn sigmoid_as(act: Activations, x: f64) -> f64 {
    match act {
        Activations::Exact => sigmoid(x),
        Activations::Table => {
            let y = table_sigmoid_scaled(x.abs() * SIGMOID_TABLE_SCALE);
            if x < 0.0 {
                1.0 - y
            } else {
                y
            }
        }
    }
}

/// Tanh as `act` defines it.
pub fn tanh_as(act: Activations, x: f64) -> f64 {
    match act {
        Activations::Exact => x.tanh(),
        Activations::Table => {
            let y = 2.0 * table_sigmoid_scaled(x.abs() * (2.0 * SIGMOID_TABLE_SCALE)) - 1.0;
            if x < 0.0 {
                -y
            } else {
                y
            }
        }
    }
}

/// The LSTM update (PyTorch): `z` holds the pre-activations i, f, g, o, `c.len()` each.
pub fn lstm_cell(act: Activations, z: &[f64], c: &mut [f64], h: &mut [f64]) {
    let (sig, tanh) = (|x| sigmoid_as(act, x), |x| tanh_as(act, x));
    let n = c.len();
    for k in 0..n {
        let (i, f) = (sig(z[k]), sig(z[n + k]));
        let (g, o) = (tanh(z[2 * n + k]), sig(z[3 * n + k]));
        c[k] = f * c[k] + i * g;
        h[k] = o * tanh(c[k]);
    }
}

/// The GRU update (PyTorch): `zi` = W_ih x + b_ih and `zh` = W_hh h + b_hh, gates r, z, n.
pub fn gru_cell(act: Activations, zi: &[f64], zh: &[f64], h: &mut [f64]) {
    let n = h.len();
    for k in 0..n {
        let r = sigmoid_as(act, zi[k] + zh[k]);
        let z = sigmoid_as(act, zi[n + k] + zh[n + k]);
        let nn = tanh_as(act, zi[2 * n + k] + r * zh[2 * n + k]);
        h[k] = (1.0 - z) * nn + z * h[k];
    }
}

/// The FastGRNN update (EdgeML): `pre` = W x + U h; `zeta`, `nu` after their sigmoid.
pub fn fastgrnn_cell(
    act: Activations,
    pre: &[f64],
    b_z: &[f64],
    b_h: &[f64],
    zeta: f64,
    nu: f64,
    h: &mut [f64],
) {
    for k in 0..h.len() {
        let z = sigmoid_as(act, pre[k] + b_z[k]);
        let ht = tanh_as(act, pre[k] + b_h[k]);
        h[k] = (zeta * (1.0 - z) + nu) * ht + z * h[k];
    }
}

/// A dense layer's activation, in place. Softmax is exact in both definitions (the generated
/// code uses its polynomial exp there).
pub fn activate(act: Activations, activation: Activation, y: &mut [f64]) {
    match activation {
        Activation::None => {}
        Activation::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid_as(act, *v)),
        Activation::Tanh => y.iter_mut().for_each(|v| *v = tanh_as(act, *v)),
        Activation::Softmax => {
            let m = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            y.iter_mut().for_each(|v| *v = (*v - m).exp());
            let s: f64 = y.iter().sum();
            y.iter_mut().for_each(|v| *v /= s);
        }
    }
}
