/* z holds the gate pre-activations i, f, g, o (PyTorch order), n each. */
static inline void kp_lstm_update(const float *z, float *c, float *h, int n)
{
    for (int k = 0; k < n; ++k) {
        float i = kp_sigmoidf(z[k]);
        float f = kp_sigmoidf(z[n + k]);
        float g = kp_tanhf(z[2 * n + k]);
        float o = kp_sigmoidf(z[3 * n + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * kp_tanhf(c[k]);
    }
}
