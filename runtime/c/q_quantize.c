/* Float to codes: round(x / scale) + zero_point, half away from zero, saturated (NaN gives the
 * lowest code). Single precision, written as separate statements so no compiler fuses them. */
static inline void kp_quantize(const float *x, kp_code_t *q, int n, float inv_scale,
                               int32_t zero_point)
{
    const float lo = (float)(KP_CODE_MIN - zero_point);
    const float hi = (float)(KP_CODE_MAX - zero_point);
    for (int k = 0; k < n; ++k) {
        float v = x[k] * inv_scale;
        v = v >= 0.0f ? v + 0.5f : v - 0.5f;
        v = v >= lo ? v : lo;
        v = v <= hi ? v : hi;
        q[k] = (kp_code_t)((int32_t)v + zero_point);
    }
}

static inline void kp_dequantize(const kp_code_t *q, float *y, int n, float scale,
                                 int32_t zero_point)
{
    for (int k = 0; k < n; ++k) {
        y[k] = (float)((int32_t)q[k] - zero_point) * scale;
    }
}
