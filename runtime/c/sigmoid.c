static inline void kp_sigmoid(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = kp_sigmoidf(y[k]);
    }
}
