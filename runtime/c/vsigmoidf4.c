#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* kp_sigmoidf of four lanes: sigmoid(x) = 1 - sigmoid(-x), lane by lane. */
static inline float32x4_t kp_vsigmoidf4(float32x4_t x)
{
    const float32x4_t y = kp_vsigmoid_tab4(vmulq_n_f32(vabsq_f32(x), 20.0f));
    return vpselq_f32(vsubq_f32(vdupq_n_f32(1.0f), y), y, vcmpltq_n_f32(x, 0.0f));
}
#endif
