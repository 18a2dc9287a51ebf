static inline void kp_narrow_sigmoid(const int32_t *acc, kp_code_t *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = kp_unit_code(kp_sigmoid_q15(acc[k]));
    }
}
