/* Four floats from p: one VLDRW.32 on cores with Helium's floating-point extension. */
static inline kp_f32x4_t kp_vld_f32x4(const float *p)
{
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    return vldrwq_f32(p);
#else
    kp_f32x4_t r;
    for (int k = 0; k < 4; ++k) {
        r.v[k] = p[k];
    }
    return r;
#endif
}
