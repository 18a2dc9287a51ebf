/* sigmoid(a) for a >= 0, given t = 20 a: linear interpolation in KP_SIGMOID_F32, points at
 * 0, 0.05, ..., 12.8 (and the last again) set so the error averages zero. The clamp comes
 * before the conversion to an integer and is written so that a NaN takes it too: no input value
 * reads outside the table. */
static inline float kp_sigmoid_tab(float t)
{
    int32_t i;
    if (!(t < 256.0f)) {
        t = 256.0f;
    }
    i = (int32_t)t;
    return kp_fmaf(t - (float)i, KP_SIGMOID_F32[i + 1] - KP_SIGMOID_F32[i], KP_SIGMOID_F32[i]);
}
