#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
#include <arm_mve.h>
/* kp_sigmoid_tab of four lanes, the same operations lane by lane: the clamp by minNum (so a
 * NaN lane takes 256 too), the truncating conversion, two gathers from KP_SIGMOID_F32 and one
 * fused multiply-add. */
static inline float32x4_t kp_vsigmoid_tab4(float32x4_t t)
{
    const float32x4_t x = vminnmq_f32(t, vdupq_n_f32(256.0f));
    const int32x4_t i = vcvtq_s32_f32(x);
    const uint32x4_t at = vreinterpretq_u32_s32(i);
    const float32x4_t lo = vldrwq_gather_shifted_offset_f32(KP_SIGMOID_F32, at);
    const float32x4_t hi = vldrwq_gather_shifted_offset_f32(KP_SIGMOID_F32 + 1, at);
    return vfmaq_f32(lo, vsubq_f32(x, vcvtq_f32_s32(i)), vsubq_f32(hi, lo));
}
#endif
