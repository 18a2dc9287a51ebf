/* z: int32 Q.12 gate pre-activations i, f, g, o; c: int16 cell state with cf fraction bits
 * (3 <= cf <= 15); h: codes with hf fraction bits (7 or 15). Every product is a Q15 gate
 * times a Q15 gate or an int16 state, at most 2^30 in magnitude, and every rounded shift adds
 * at most 2^29: the arithmetic stays in int32 and equals the integer reference's bit for bit. */
static inline void kp_lstm_q(const int32_t *z, int16_t *c, kp_code_t *h, int n, int32_t cf,
                             int32_t hf)
{
    kp_lstm_q_units(z, c, h, n, cf, hf, 0);
}
