#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* Units k .. k + 3 of the LSTM update (see kp_lstm_units) in Helium lanes: the products and
 * the sum rounded separately, as the scalar C99 code rounds them. */
static inline void kp_vlstm4(const float *z, float *c, float *h, int n, int k)
{
    const float32x4_t i = kp_vsigmoidf4(vldrwq_f32(&z[k]));
    const float32x4_t f = kp_vsigmoidf4(vldrwq_f32(&z[n + k]));
    const float32x4_t g = kp_vtanhf4(vldrwq_f32(&z[2 * n + k]));
    const float32x4_t o = kp_vsigmoidf4(vldrwq_f32(&z[3 * n + k]));
    const float32x4_t cn = vaddq_f32(vmulq_f32(f, vldrwq_f32(&c[k])), vmulq_f32(i, g));
    vstrwq_f32(&c[k], cn);
    vstrwq_f32(&h[k], vmulq_f32(o, kp_vtanhf4(cn)));
}
#endif
