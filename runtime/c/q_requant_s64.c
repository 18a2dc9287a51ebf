/* arm_nn_requantize_s64: 64-bit accumulator, 16-bit reduced multiplier. */
static inline int32_t kp_requant_s64(int64_t val, int32_t reduced, int32_t shift)
{
    const int32_t r = (int32_t)((val * reduced) >> (14 - shift));
    return (r + 1) >> 1;
}
