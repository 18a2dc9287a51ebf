static inline float kp_sigmoidf(float x)
{
    return 1.0f / (1.0f + kp_expf(-x));
}
