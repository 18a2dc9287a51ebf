/* sigmoid(x) = 1 - sigmoid(-x): one table serves both signs. Absolute error below 2.1e-5
 * (see docs/design.md); a NaN gives sigmoid(12.8). */
static inline float kp_sigmoidf(float x)
{
    const float y = kp_sigmoid_tab(20.0f * (x < 0.0f ? -x : x));
    return x < 0.0f ? 1.0f - y : y;
}
