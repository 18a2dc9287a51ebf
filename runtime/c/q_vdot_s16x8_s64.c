/* acc + the dot product of eight int16 lane pairs in 64 bits: one VMLALDAVA.S16 on Helium
 * cores. */
static inline int64_t kp_vdot_s16x8_s64(int64_t acc, kp_i16x8_t a, kp_i16x8_t b)
{
#if defined(__ARM_FEATURE_MVE)
    return vmlaldavaq_s16(acc, a, b);
#else
    int64_t s = acc;
    for (int k = 0; k < 8; ++k) {
        s += (int32_t)a.v[k] * b.v[k];
    }
    return s;
#endif
}
