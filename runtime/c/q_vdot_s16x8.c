/* acc + the dot product of eight int16 lane pairs: one VMLADAVA.S16 on Helium cores. The sum
 * never overflows (the planner proves the accumulator bound); the fallback wraps like it. */
static inline int32_t kp_vdot_s16x8(int32_t acc, kp_i16x8_t a, kp_i16x8_t b)
{
#if defined(__ARM_FEATURE_MVE)
    return vmladavaq_s16(acc, a, b);
#else
    uint32_t s = (uint32_t)acc;
    for (int k = 0; k < 8; ++k) {
        s += (uint32_t)((int32_t)a.v[k] * b.v[k]);
    }
    return (int32_t)s;
#endif
}
