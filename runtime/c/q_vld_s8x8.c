/* Eight int8 values from p, sign-extended to int16 lanes: one widening VLDRB.S16 on Helium
 * cores. */
static inline kp_i16x8_t kp_vld_s8x8(const int8_t *p)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrbq_s16(p);
#else
    kp_i16x8_t r;
    for (int k = 0; k < 8; ++k) {
        r.v[k] = p[k];
    }
    return r;
#endif
}
