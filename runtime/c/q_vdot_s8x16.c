/* acc + the dot product of sixteen int8 lane pairs: one VMLADAVA.S8 on Helium cores. The sum
 * never overflows (the planner proves the accumulator bound); the fallback wraps like it. */
static inline int32_t kp_vdot_s8x16(int32_t acc, kp_i8x16_t a, kp_i8x16_t b)
{
#if defined(__ARM_FEATURE_MVE)
    return vmladavaq_s8(acc, a, b);
#else
    uint32_t s = (uint32_t)acc;
    for (int k = 0; k < 16; ++k) {
        s += (uint32_t)((int32_t)a.v[k] * b.v[k]);
    }
    return (int32_t)s;
#endif
}
