/* Eight int16 values from p: one VLDRH.16 on Helium cores. */
static inline kp_i16x8_t kp_vld_s16x8(const int16_t *p)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrhq_s16(p);
#else
    kp_i16x8_t r;
    for (int k = 0; k < 8; ++k) {
        r.v[k] = p[k];
    }
    return r;
#endif
}
