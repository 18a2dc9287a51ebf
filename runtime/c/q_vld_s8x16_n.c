/* The first n (1..16) int8 values from p, the other lanes zero; nothing past p[n - 1] is
 * read. On Helium cores one VCTP.8 and one zeroing predicated VLDRB.8. */
static inline kp_i8x16_t kp_vld_s8x16_n(const int8_t *p, int32_t n)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrbq_z_s8(p, vctp8q((uint32_t)n));
#else
    kp_i8x16_t r;
    for (int k = 0; k < 16; ++k) {
        r.v[k] = k < n ? p[k] : 0;
    }
    return r;
#endif
}
