/* The first n (1..4) floats from p, the other lanes zero; nothing past p[n - 1] is read. On
 * Helium cores one VCTP.32 and one zeroing predicated VLDRW.32. */
static inline kp_f32x4_t kp_vld_f32x4_n(const float *p, int32_t n)
{
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    return vldrwq_z_f32(p, vctp32q((uint32_t)n));
#else
    kp_f32x4_t r;
    for (int k = 0; k < 4; ++k) {
        r.v[k] = k < n ? p[k] : 0.0f;
    }
    return r;
#endif
}
