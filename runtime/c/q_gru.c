/* z: int32 Q.12, W_ih x + b_ih (r, z, n) then W_hh h + b_hh (r, z, n); h: codes with hf
 * fraction bits. */
static inline void kp_gru_q(const int32_t *z, kp_code_t *h, int n, int32_t hf)
{
    const int32_t *zh = z + 3 * n;
    for (int k = 0; k < n; ++k) {
        const int64_t r = kp_lut(KP_SIGMOID_Q15, z[k] + zh[k]);
        const int64_t u = kp_lut(KP_SIGMOID_Q15, z[n + k] + zh[n + k]);
        const int64_t rh = kp_rshift_round(r * zh[2 * n + k], 15);
        const int64_t c = kp_lut(KP_TANH_Q15, kp_sat(z[2 * n + k] + rh, INT32_MIN, INT32_MAX));
        const int64_t v = kp_rshift_round((32768 - u) * c, 30 - hf) + kp_rshift_round(u * h[k], 15);
        h[k] = (kp_code_t)kp_sat(v, KP_CODE_MIN, KP_CODE_MAX);
    }
}
