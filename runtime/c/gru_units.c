/* Units k0 .. n - 1 of the GRU update, one at a time. z holds W_ih x + b_ih (r, z, n) followed
 * by W_hh h + b_hh (r, z, n), n each. */
static inline void kp_gru_units(const float *z, float *h, int n, int k0)
{
    const float *zh = z + 3 * n;
    for (int k = k0; k < n; ++k) {
        float r = kp_sigmoidf(z[k] + zh[k]);
        float u = kp_sigmoidf(z[n + k] + zh[n + k]);
        float c = kp_tanhf(z[2 * n + k] + r * zh[2 * n + k]);
        h[k] = (1.0f - u) * c + u * h[k];
    }
}
