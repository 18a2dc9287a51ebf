#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif
/* Bytes 0 and 2 of v, sign-extended into the two 16-bit halves: one SXTB16 on DSP cores. */
static inline uint32_t kp_sxtb16(uint32_t v)
{
#if defined(__ARM_FEATURE_DSP)
    return (uint32_t)__sxtb16((int8x4_t)v);
#else
    const uint32_t lo = (uint16_t)(int16_t)(int8_t)(v & 0xFFu);
    const uint32_t hi = (uint16_t)(int16_t)(int8_t)((v >> 16) & 0xFFu);
    return lo | (hi << 16);
#endif
}
