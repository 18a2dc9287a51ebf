/* Units k0 .. n - 1 of the fixed-point LSTM update (see kp_lstm_q), one at a time. */
static inline void kp_lstm_q_units(const int32_t *z, int16_t *c, kp_code_t *h, int n,
                                   int32_t cf, int32_t hf, int k0)
{
    const int32_t ig_shift = 30 - cf;
    const int32_t ig_round = (int32_t)1 << (ig_shift - 1);
    const int32_t h_shift = 30 - hf;
    const int32_t h_round = (int32_t)1 << (h_shift - 1);
    for (int k = k0; k < n; ++k) {
        const int32_t i = kp_sigmoid_q15(z[k]);
        const int32_t f = kp_sigmoid_q15(z[n + k]);
        const int32_t g = kp_lut(KP_TANH_Q15, z[2 * n + k]);
        const int32_t o = kp_sigmoid_q15(z[3 * n + k]);
        const int32_t cn =
            kp_clamp16(((f * c[k] + 16384) >> 15) + ((i * g + ig_round) >> ig_shift));
        const int32_t tc = cf > 12 ? (cn + ((int32_t)1 << (cf - 13))) >> (cf - 12)
                                   : cn * ((int32_t)1 << (12 - cf));
        c[k] = (int16_t)cn;
        h[k] = (kp_code_t)kp_clamp_code((o * kp_lut(KP_TANH_Q15, tc) + h_round) >> h_shift);
    }
}
