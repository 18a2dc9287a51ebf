/* pre holds W x + U h; zeta and nu arrive already passed through the sigmoid. */
static inline void kp_fastgrnn_update(const float *pre, const float *b_z, const float *b_h,
                                      float zeta, float nu, float *h, int n)
{
    for (int k = 0; k < n; ++k) {
        float z = kp_sigmoidf(pre[k] + b_z[k]);
        float c = kp_tanhf(pre[k] + b_h[k]);
        h[k] = (zeta * (1.0f - z) + nu) * c + z * h[k];
    }
}
