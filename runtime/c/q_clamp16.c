#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif
/* v limited to int16: one SSAT where the core has it. */
static inline int32_t kp_clamp16(int32_t v)
{
#if defined(__ARM_FEATURE_SAT)
    return __ssat(v, 16);
#else
    return kp_clamp(v, -32768, 32767);
#endif
}
