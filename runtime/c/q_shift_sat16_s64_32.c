/* kp_shift_sat16_s64 where the plan proves the shifted value fits 32 bits: the rounding shift
 * in 64 bits, the saturation in 32 (one SSAT on SAT cores) instead of two 64-bit compares. */
static inline int16_t kp_shift_sat16_s64_32(int64_t v, int32_t k)
{
    const int64_t r = k > 0 ? (v + ((int64_t)1 << (k - 1))) >> k : v;
    return (int16_t)kp_clamp16((int32_t)r);
}
