#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif
/* v limited to the code range, int8 or int16: one SSAT where the core has it (the portable
 * form written out, so no static function goes unused where SSAT is taken). */
static inline int32_t kp_clamp_code(int32_t v)
{
#if defined(__ARM_FEATURE_SAT)
    return KP_CODE_MAX == 32767 ? __ssat(v, 16) : __ssat(v, 8);
#else
    return v < KP_CODE_MIN ? KP_CODE_MIN : (v > KP_CODE_MAX ? KP_CODE_MAX : v);
#endif
}
