/* val * multiplier * 2^(shift - 31), rounded once, half up: ((val << left) * multiplier +
 * 2^(s-1)) >> s with s = 31 + max(-shift, 0). With constant arguments GCC makes it one SMLAL
 * into the preset rounding constant and one shift on ARMv7E-M. */
static inline int32_t kp_requant(int32_t val, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t s = 31 + (shift > 0 ? 0 : -shift);
    const int64_t prod = (int64_t)(val * (1 << left)) * multiplier + ((int64_t)1 << (s - 1));
    return (int32_t)(prod >> s);
}
