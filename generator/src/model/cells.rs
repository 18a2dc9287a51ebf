//! The f64 cell equations, in one place: the float reference runs them on the expanded
//! matrices and calibration on the planned products, so both mean the same cell.

use crate::spec::Activation;

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
