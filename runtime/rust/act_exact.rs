
// Sigmoid and tanh from the polynomial exp and one division (`activations: exact`).

#[inline]
pub fn sigmoidf(x: f32) -> f32 {
    1.0 / (1.0 + expf(-x))
}

#[inline]
pub fn tanhf(x: f32) -> f32 {
    1.0 - 2.0 / (expf(2.0 * x) + 1.0)
}
