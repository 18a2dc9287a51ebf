/* pre: int32 Q.12 W x + U h; b_z, b_h: Q.12; zeta, nu: Q15 (after the sigmoid); h: codes with
 * hf fraction bits. coef = zeta (1 - z) + nu reaches 2^16, so coef times tanh takes int64;
 * the other products (at most 2^30) stay in int32, bit for bit the integer reference's. */
static inline void kp_fastgrnn_q(const int32_t *pre, const int32_t *b_z, const int32_t *b_h,
                                 int32_t zeta, int32_t nu, kp_code_t *h, int n, int32_t hf)
{
    for (int k = 0; k < n; ++k) {
        const int32_t z = kp_sigmoid_q15(pre[k] + b_z[k]);
        const int32_t c = kp_lut(KP_TANH_Q15, pre[k] + b_h[k]);
        const int32_t coef = ((zeta * (32768 - z) + 16384) >> 15) + nu;
        const int32_t v = (int32_t)kp_rshift_round((int64_t)coef * c, 30 - hf)
                          + ((z * h[k] + 16384) >> 15);
        h[k] = (kp_code_t)kp_clamp_code(v);
    }
}
