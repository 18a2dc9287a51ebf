
#[inline]
pub fn expf(x: f32) -> f32 {
    // As in C: a NaN takes the lower clamp.
    let x = if x >= -87.0 { x.min(88.0) } else { -87.0 };
    let nf = x * core::f32::consts::LOG2_E;
    let n = (nf + if nf >= 0.0 { 0.5 } else { -0.5 }) as i32;
    let r = x - n as f32 * 0.693_145_75_f32;
    let r = r - n as f32 * 1.428_606_8e-6_f32;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_888_9)))));
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// `z` holds the gate pre-activations i, f, g, o (PyTorch order), H each.
#[inline]
pub fn lstm_update<const H: usize, const G: usize>(
    z: &[f32; G],
    c: &mut [f32; H],
    h: &mut [f32; H],
) {
    for k in 0..H {
        let i = sigmoidf(z[k]);
        let f = sigmoidf(z[H + k]);
        let g = tanhf(z[2 * H + k]);
        let o = sigmoidf(z[3 * H + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * tanhf(c[k]);
    }
}

/// `z` holds W_ih x + b_ih (r, z, n) followed by W_hh h + b_hh (r, z, n), H each.
#[inline]
pub fn gru_update<const H: usize, const G: usize>(z: &[f32; G], h: &mut [f32; H]) {
    for k in 0..H {
        let r = sigmoidf(z[k] + z[3 * H + k]);
        let u = sigmoidf(z[H + k] + z[4 * H + k]);
        let c = tanhf(z[2 * H + k] + r * z[5 * H + k]);
        h[k] = (1.0 - u) * c + u * h[k];
    }
}

/// `pre` holds W x + U h; `zeta` and `nu` arrive already passed through the sigmoid.
#[inline]
pub fn fastgrnn_update<const H: usize>(
    pre: &[f32; H],
    b_z: &[f32; H],
    b_h: &[f32; H],
    zeta: f32,
    nu: f32,
    h: &mut [f32; H],
) {
    for k in 0..H {
        let z = sigmoidf(pre[k] + b_z[k]);
        let c = tanhf(pre[k] + b_h[k]);
        h[k] = (zeta * (1.0 - z) + nu) * c + z * h[k];
    }
}

#[inline]
pub fn relu<const N: usize>(y: &mut [f32; N]) {
    for v in y.iter_mut() {
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

#[inline]
pub fn sigmoid<const N: usize>(y: &mut [f32; N]) {
    for v in y.iter_mut() {
        *v = sigmoidf(*v);
    }
}

#[inline]
pub fn tanh<const N: usize>(y: &mut [f32; N]) {
    for v in y.iter_mut() {
        *v = tanhf(*v);
    }
}

#[inline]
pub fn softmax<const N: usize>(y: &mut [f32; N]) {
    let mut m = f32::NEG_INFINITY;
    for &v in y.iter() {
        m = if v > m { v } else { m };
    }
    let mut sum = 0.0;
    for v in y.iter_mut() {
        *v = expf(*v - m);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in y.iter_mut() {
        *v *= inv;
    }
}
