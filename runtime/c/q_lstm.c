/* z: int32 Q.12 gate pre-activations i, f, g, o; c: int16 cell state with cf fraction bits;
 * h: codes with hf fraction bits. */
static inline void kp_lstm_q(const int32_t *z, int16_t *c, kp_code_t *h, int n, int32_t cf,
                             int32_t hf)
{
    for (int k = 0; k < n; ++k) {
        const int64_t i = kp_lut(KP_SIGMOID_Q15, z[k]);
        const int64_t f = kp_lut(KP_SIGMOID_Q15, z[n + k]);
        const int64_t g = kp_lut(KP_TANH_Q15, z[2 * n + k]);
        const int64_t o = kp_lut(KP_SIGMOID_Q15, z[3 * n + k]);
        const int64_t cn = kp_rshift_round(f * c[k], 15) + kp_rshift_round(i * g, 30 - cf);
        int64_t tc;
        c[k] = (int16_t)kp_sat(cn, -32768, 32767);
        tc = cf > 12 ? kp_rshift_round(c[k], cf - 12) : (int64_t)c[k] * (1 << (12 - cf));
        h[k] = (kp_code_t)kp_sat(
            kp_rshift_round(o * kp_lut(KP_TANH_Q15, kp_sat(tc, INT32_MIN, INT32_MAX)), 30 - hf),
            KP_CODE_MIN, KP_CODE_MAX);
    }
}
