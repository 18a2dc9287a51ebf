#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* Units k .. k + 3 of the GRU update (see kp_gru_units) in Helium lanes, every operation
 * rounded as the scalar C99 code rounds it. */
static inline void kp_vgru4(const float *z, float *h, int n, int k)
{
    const float *zh = z + 3 * n;
    const float32x4_t r = kp_vsigmoidf4(vaddq_f32(vldrwq_f32(&z[k]), vldrwq_f32(&zh[k])));
    const float32x4_t u =
        kp_vsigmoidf4(vaddq_f32(vldrwq_f32(&z[n + k]), vldrwq_f32(&zh[n + k])));
    const float32x4_t c = kp_vtanhf4(
        vaddq_f32(vldrwq_f32(&z[2 * n + k]), vmulq_f32(r, vldrwq_f32(&zh[2 * n + k]))));
    const float32x4_t keep = vmulq_f32(u, vldrwq_f32(&h[k]));
    vstrwq_f32(&h[k], vaddq_f32(vmulq_f32(vsubq_f32(vdupq_n_f32(1.0f), u), c), keep));
}
#endif
