/* Units k0 .. n - 1 of the FastGRNN update, one at a time. pre holds W x + U h; zeta and nu
 * arrive already passed through the sigmoid. */
static inline void kp_fastgrnn_units(const float *pre, const float *b_z, const float *b_h,
                                     float zeta, float nu, float *h, int n, int k0)
{
    for (int k = k0; k < n; ++k) {
        float z = kp_sigmoidf(pre[k] + b_z[k]);
        float c = kp_tanhf(pre[k] + b_h[k]);
        h[k] = (zeta * (1.0f - z) + nu) * c + z * h[k];
    }
}
