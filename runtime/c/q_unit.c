/* A Q15 value in [0, 1] as a code: int16 as is, int8 at scale 1/256 with zero point -128. */
static inline kp_code_t kp_unit_code(int64_t q15)
{
    if (KP_CODE_MAX == 32767) {
        return (kp_code_t)kp_sat(q15, KP_CODE_MIN, KP_CODE_MAX);
    }
    return (kp_code_t)kp_sat(kp_rshift_round(q15, 7) - 128, KP_CODE_MIN, KP_CODE_MAX);
}
