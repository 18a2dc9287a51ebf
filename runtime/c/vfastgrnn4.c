#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* Units k .. k + 3 of the FastGRNN update (see kp_fastgrnn_units) in Helium lanes, every
 * operation rounded as the scalar C99 code rounds it. */
static inline void kp_vfastgrnn4(const float *pre, const float *b_z, const float *b_h,
                                 float zeta, float nu, float *h, int k)
{
    const float32x4_t p = vldrwq_f32(&pre[k]);
    const float32x4_t z = kp_vsigmoidf4(vaddq_f32(p, vldrwq_f32(&b_z[k])));
    const float32x4_t c = kp_vtanhf4(vaddq_f32(p, vldrwq_f32(&b_h[k])));
    const float32x4_t gate =
        vaddq_f32(vmulq_n_f32(vsubq_f32(vdupq_n_f32(1.0f), z), zeta), vdupq_n_f32(nu));
    vstrwq_f32(&h[k], vaddq_f32(vmulq_f32(gate, c), vmulq_f32(z, vldrwq_f32(&h[k]))));
}
#endif
