/* Units k0 .. n - 1 of the LSTM update, one at a time. z holds the gate pre-activations i, f,
 * g, o (PyTorch order), n each. */
static inline void kp_lstm_units(const float *z, float *c, float *h, int n, int k0)
{
    for (int k = k0; k < n; ++k) {
        float i = kp_sigmoidf(z[k]);
        float f = kp_sigmoidf(z[n + k]);
        float g = kp_tanhf(z[2 * n + k]);
        float o = kp_sigmoidf(z[3 * n + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * kp_tanhf(c[k]);
    }
}
