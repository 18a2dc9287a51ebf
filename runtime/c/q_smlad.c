#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif
/* acc + lo(a)*lo(b) + hi(a)*hi(b) over signed 16-bit halves: one SMLAD on DSP cores. The sum
 * never overflows (the planner proves the accumulator bound); the fallback wraps like SMLAD. */
static inline int32_t kp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(__ARM_FEATURE_DSP)
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
#else
    const int32_t lo = (int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu);
    const int32_t hi = (int16_t)(a >> 16) * (int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
#endif
}
