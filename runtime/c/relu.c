static inline void kp_relu(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = y[k] > 0.0f ? y[k] : 0.0f;
    }
}
