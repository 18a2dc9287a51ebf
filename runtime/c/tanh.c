static inline void kp_tanh(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = kp_tanhf(y[k]);
    }
}
