/* Four zero float lanes. */
static inline kp_f32x4_t kp_vzero_f32x4(void)
{
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    return vdupq_n_f32(0.0f);
#else
    kp_f32x4_t r;
    for (int k = 0; k < 4; ++k) {
        r.v[k] = 0.0f;
    }
    return r;
#endif
}
