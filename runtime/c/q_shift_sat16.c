/* sat16((v + 2^(k-1)) >> k): a temp stored at 2^k accumulator quanta (the bound on v leaves
 * room for the rounding bias). On SAT cores the shift folds into one SSAT. */
static inline int16_t kp_shift_sat16(int32_t v, int32_t k)
{
    const int32_t r = k > 0 ? (v + (1 << (k - 1))) >> k : v;
    return (int16_t)kp_clamp16(r);
}
