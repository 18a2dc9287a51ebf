/* tanh codes: Q15 (int16) or Q7 (int8). */
static inline void kp_narrow_tanh(const int32_t *acc, kp_code_t *y, int n)
{
    for (int k = 0; k < n; ++k) {
        const int64_t t = kp_lut(KP_TANH_Q15, acc[k]);
        y[k] = (kp_code_t)kp_sat(KP_CODE_MAX == 32767 ? t : kp_rshift_round(t, 8), KP_CODE_MIN,
                                 KP_CODE_MAX);
    }
}
