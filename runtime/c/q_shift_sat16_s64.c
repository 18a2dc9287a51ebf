/* kp_shift_sat16 for a 64-bit accumulator. */
static inline int16_t kp_shift_sat16_s64(int64_t v, int32_t k)
{
    const int64_t r = k > 0 ? (v + ((int64_t)1 << (k - 1))) >> k : v;
    return (int16_t)(r < -32768 ? -32768 : (r > 32767 ? 32767 : r));
}
