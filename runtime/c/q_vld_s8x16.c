/* Sixteen int8 values from p: one VLDRB.8 on Helium cores. */
static inline kp_i8x16_t kp_vld_s8x16(const int8_t *p)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrbq_s8(p);
#else
    kp_i8x16_t r;
    for (int k = 0; k < 16; ++k) {
        r.v[k] = p[k];
    }
    return r;
#endif
}
