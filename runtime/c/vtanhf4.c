#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
/* kp_tanhf of four lanes: tanh(x) = 2 sigmoid(2x) - 1, odd, lane by lane. */
static inline float32x4_t kp_vtanhf4(float32x4_t x)
{
    const float32x4_t s = kp_vsigmoid_tab4(vmulq_n_f32(vabsq_f32(x), 40.0f));
    const float32x4_t y = vsubq_f32(vmulq_n_f32(s, 2.0f), vdupq_n_f32(1.0f));
    return vpselq_f32(vnegq_f32(y), y, vcmpltq_n_f32(x, 0.0f));
}
#endif
