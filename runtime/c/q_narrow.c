/* A dense accumulator (acc_shift fraction bits below the output quantum) to output codes;
 * relu clamps at the real zero. */
static inline void kp_narrow_linear(const int32_t *acc, kp_code_t *y, int n, int32_t acc_shift,
                                    int32_t zero_point, int relu)
{
    for (int k = 0; k < n; ++k) {
        int32_t v = kp_div_pow2(acc[k], acc_shift);
        if (relu && v < 0) {
            v = 0;
        }
        y[k] = (kp_code_t)kp_sat((int64_t)v + zero_point, KP_CODE_MIN, KP_CODE_MAX);
    }
}
