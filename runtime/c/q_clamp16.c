#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif
/* v limited to int16: one SSAT where the core has it. The portable form is written out rather
 * than calling the 32-bit clamp, so no static function goes unused where SSAT is taken. */
static inline int32_t kp_clamp16(int32_t v)
{
#if defined(__ARM_FEATURE_SAT)
    return __ssat(v, 16);
#else
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
#endif
}
