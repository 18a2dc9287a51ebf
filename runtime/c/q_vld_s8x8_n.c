/* The first n (1..8) int8 values from p as int16 lanes, the other lanes zero; nothing past
 * p[n - 1] is read. On Helium cores one VCTP.16 and one zeroing widening VLDRB.S16. */
static inline kp_i16x8_t kp_vld_s8x8_n(const int8_t *p, int32_t n)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrbq_z_s16(p, vctp16q((uint32_t)n));
#else
    kp_i16x8_t r;
    for (int k = 0; k < 8; ++k) {
        r.v[k] = (int16_t)(k < n ? p[k] : 0);
    }
    return r;
#endif
}
