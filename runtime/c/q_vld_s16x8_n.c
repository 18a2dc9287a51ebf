/* The first n (1..8) int16 values from p, the other lanes zero; nothing past p[n - 1] is
 * read. On Helium cores one VCTP.16 and one zeroing predicated VLDRH.16. */
static inline kp_i16x8_t kp_vld_s16x8_n(const int16_t *p, int32_t n)
{
#if defined(__ARM_FEATURE_MVE)
    return vldrhq_z_s16(p, vctp16q((uint32_t)n));
#else
    kp_i16x8_t r;
    for (int k = 0; k < 8; ++k) {
        r.v[k] = (int16_t)(k < n ? p[k] : 0);
    }
    return r;
#endif
}
