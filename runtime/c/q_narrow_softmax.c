/* Softmax of Q.12 logits: exp by table on x - max (clamped at -8), then normalized. */
static inline void kp_narrow_softmax(const int32_t *acc, kp_code_t *y, int n)
{
    int32_t m = acc[0];
    int64_t sum = 0;
    for (int k = 1; k < n; ++k) {
        m = acc[k] > m ? acc[k] : m;
    }
    for (int k = 0; k < n; ++k) {
        sum += kp_lut(KP_EXP_Q15, kp_sat((int64_t)acc[k] - m, -32768, 0));
    }
    sum = sum > 0 ? sum : 1;
    for (int k = 0; k < n; ++k) {
        const int64_t e = kp_lut(KP_EXP_Q15, kp_sat((int64_t)acc[k] - m, -32768, 0));
        if (KP_CODE_MAX == 32767) {
            y[k] = (kp_code_t)kp_sat(((e << 15) + sum / 2) / sum, KP_CODE_MIN, KP_CODE_MAX);
        } else {
            y[k] = (kp_code_t)kp_sat(((e << 8) + sum / 2) / sum - 128, KP_CODE_MIN, KP_CODE_MAX);
        }
    }
}
