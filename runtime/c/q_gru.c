/* z: int32 Q.12, W_ih x + b_ih (r, z, n) then W_hh h + b_hh (r, z, n); h: codes with hf
 * fraction bits (7 or 15). r times a recurrent pre-activation can exceed 32 bits and takes
 * int64; every other product is a Q15 gate times a Q15 value or a code (at most 2^30), so it
 * stays in int32 and equals the integer reference's int64 arithmetic bit for bit. */
static inline void kp_gru_q(const int32_t *z, kp_code_t *h, int n, int32_t hf)
{
    const int32_t *zh = z + 3 * n;
    const int32_t h_shift = 30 - hf;
    const int32_t h_round = (int32_t)1 << (h_shift - 1);
    for (int k = 0; k < n; ++k) {
        const int32_t r = kp_sigmoid_q15(z[k] + zh[k]);
        const int32_t u = kp_sigmoid_q15(z[n + k] + zh[n + k]);
        const int64_t rh = kp_rshift_round((int64_t)r * zh[2 * n + k], 15);
        const int32_t c = kp_lut(KP_TANH_Q15, kp_sat(z[2 * n + k] + rh, INT32_MIN, INT32_MAX));
        const int32_t v = (((32768 - u) * c + h_round) >> h_shift) + ((u * h[k] + 16384) >> 15);
        h[k] = (kp_code_t)kp_clamp_code(v);
    }
}
