#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif
/* sigmoid(x) = (1 + tanh(x / 2)) / 2 from the tanh table: one table serves both activations.
 * Q3.12 in (any int32), Q15 out, rounded half up and held below 1. tanh is read at x / 2
 * without dropping x's last bit: the table's spacing is 256 units of x (inputs clamped to
 * +-16), interpolated in 1/256ths; on DSP cores one 32-bit load and one SMLAD, as for tanh,
 * and both clamps are one SSAT where the core has it (written out elsewhere, so no static
 * function goes unused where SSAT is taken). */
static inline int32_t kp_sigmoid_q15(int32_t x)
{
#if defined(__ARM_FEATURE_SAT)
    const int32_t u = __ssat(x, 17) + 65536;
#else
    const int32_t u = (x < -65536 ? -65536 : (x > 65535 ? 65535 : x)) + 65536;
#endif
    const int32_t f = u & 255;
    int32_t t;
#if defined(__ARM_FEATURE_DSP)
    const uint32_t w = (uint32_t)(256 - f) | ((uint32_t)f << 16);
    t = kp_smlad(kp_read32(KP_TANH_Q15 + (u >> 8)), w, 128) >> 8;
#else
    const int32_t lo = KP_TANH_Q15[u >> 8];
    const int32_t hi = KP_TANH_Q15[(u >> 8) + 1];
    /* The DSP form's helpers, referenced so no compiler calls them unused here. */
    (void)kp_smlad;
    (void)kp_read32;
    t = lo + (((hi - lo) * f + 128) >> 8);
#endif
#if defined(__ARM_FEATURE_SAT)
    return __ssat((t + 32769) >> 1, 16);
#else
    t = (t + 32769) >> 1;
    return t > 32767 ? 32767 : t;
#endif
}
