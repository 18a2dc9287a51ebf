/* arm_nn_requantize: val * multiplier * 2^(shift - 31), rounded. */
static inline int32_t kp_requant(int32_t val, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t prod = (int64_t)(val * (1 << left)) * multiplier + ((int64_t)1 << 30);
    return kp_div_pow2((int32_t)(prod >> 31), right);
}
