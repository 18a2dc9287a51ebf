/* tanh(x) = 2 sigmoid(2x) - 1, odd. Absolute error below 4.1e-5 (see docs/design.md); a
 * NaN gives tanh(6.4). */
static inline float kp_tanhf(float x)
{
    const float y = 2.0f * kp_sigmoid_tab(40.0f * (x < 0.0f ? -x : x)) - 1.0f;
    return x < 0.0f ? -y : y;
}
