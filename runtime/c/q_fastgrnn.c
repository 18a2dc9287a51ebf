/* pre: int32 Q.12 W x + U h; b_z, b_h: Q.12; zeta, nu: Q15 (after the sigmoid); h: codes with
 * hf fraction bits. */
static inline void kp_fastgrnn_q(const int32_t *pre, const int32_t *b_z, const int32_t *b_h,
                                 int32_t zeta, int32_t nu, kp_code_t *h, int n, int32_t hf)
{
    for (int k = 0; k < n; ++k) {
        const int64_t z = kp_lut(KP_SIGMOID_Q15, pre[k] + b_z[k]);
        const int64_t c = kp_lut(KP_TANH_Q15, pre[k] + b_h[k]);
        const int64_t coef = kp_rshift_round(zeta * (32768 - z), 15) + nu;
        const int64_t v = kp_rshift_round(coef * c, 30 - hf) + kp_rshift_round(z * h[k], 15);
        h[k] = (kp_code_t)kp_sat(v, KP_CODE_MIN, KP_CODE_MAX);
    }
}
