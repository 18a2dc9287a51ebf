/* p[k * stride] += v[k] for the first n (1..4) lanes; nothing else is read or written. On
 * Helium cores a load (gather when stride is not 1), one VADD and a store (scatter),
 * predicated by VCTP.32 when n < 4. */
static inline void kp_vadd_f32x4_s(float *p, int32_t stride, kp_f32x4_t v, int32_t n)
{
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    const mve_pred16_t lanes = vctp32q((uint32_t)n);
    if (stride == 1 && n == 4) {
        vstrwq_f32(p, vaddq_f32(vldrwq_f32(p), v));
    } else if (stride == 1) {
        vstrwq_p_f32(p, vaddq_f32(vldrwq_z_f32(p, lanes), v), lanes);
    } else {
        const uint32_t step = (uint32_t)stride;
        const uint32x4_t at = vmulq_n_u32(vidupq_n_u32(0u, 1), step);
        if (n == 4) {
            vstrwq_scatter_shifted_offset_f32(
                p, at, vaddq_f32(vldrwq_gather_shifted_offset_f32(p, at), v));
        } else {
            const float32x4_t old = vldrwq_gather_shifted_offset_z_f32(p, at, lanes);
            vstrwq_scatter_shifted_offset_p_f32(p, at, vaddq_f32(old, v), lanes);
        }
    }
#else
    for (int k = 0; k < n; ++k) {
        p[k * stride] += v.v[k];
    }
#endif
}
