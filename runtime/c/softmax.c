static inline void kp_softmax(float *y, int n)
{
    float m = y[0];
    float sum = 0.0f;
    for (int k = 1; k < n; ++k) {
        m = y[k] > m ? y[k] : m;
    }
    for (int k = 0; k < n; ++k) {
        y[k] = kp_expf(y[k] - m);
        sum += y[k];
    }
    sum = 1.0f / sum;
    for (int k = 0; k < n; ++k) {
        y[k] = y[k] * sum;
    }
}
