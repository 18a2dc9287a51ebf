/* val * multiplier * 2^(shift - 31), rounded once, half up: kp_rshift_round of
 * (val << left) * multiplier by s = 31 + max(-shift, 0). With constant arguments GCC makes it
 * one SMLAL into the preset rounding constant and one shift on ARMv7E-M. */
static inline int32_t kp_requant(int32_t val, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t s = 31 + (shift > 0 ? 0 : -shift);
    return (int32_t)kp_rshift_round((int64_t)(val * (1 << left)) * multiplier, s);
}
