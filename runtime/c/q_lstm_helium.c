/* z: int32 Q.12 gate pre-activations i, f, g, o; c: int16 cell state with cf fraction bits
 * (3 <= cf <= 15); h: codes with hf fraction bits (7 or 15). Every product is a Q15 gate
 * times a Q15 gate or an int16 state, at most 2^30 in magnitude, and every rounded shift adds
 * at most 2^29: the arithmetic stays in int32 and equals the integer reference's bit for bit.
 * On Helium cores four units at a time (kp_vlstm_q4, the same arithmetic lane by lane), the
 * rest one at a time. */
static inline void kp_lstm_q(const int32_t *z, int16_t *c, kp_code_t *h, int n, int32_t cf,
                             int32_t hf)
{
    int rest = 0;
#if defined(__ARM_FEATURE_MVE)
    rest = n - n % 4;
    for (int k = 0; k < rest; k += 4) {
        kp_vlstm_q4(z, c, h, n, cf, hf, k);
    }
#endif
    kp_lstm_q_units(z, c, h, n, cf, hf, rest);
}
