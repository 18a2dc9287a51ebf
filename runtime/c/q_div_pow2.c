/* Fixed-point arithmetic, CMSIS-NN conventions (see docs/fixed-point.md). Right shifts of
 * negative values are arithmetic, as GCC and Clang define them.
 * arm_nn_divide_by_power_of_two: v / 2^e rounded half away from zero. */
static inline int32_t kp_div_pow2(int32_t v, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t rem = v & mask;
    int32_t r = v >> e;
    int32_t threshold = mask >> 1;
    if (r < 0) {
        threshold += 1;
    }
    if (rem > threshold) {
        r += 1;
    }
    return r;
}
