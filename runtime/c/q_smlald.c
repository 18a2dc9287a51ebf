#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif
/* The 64-bit accumulating form of kp_smlad: one SMLALD on DSP cores. */
static inline int64_t kp_smlald(uint32_t a, uint32_t b, int64_t acc)
{
#if defined(__ARM_FEATURE_DSP)
    return __smlald((int16x2_t)a, (int16x2_t)b, acc);
#else
    return acc + (int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu)
           + (int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16);
#endif
}
