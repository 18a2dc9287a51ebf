static inline int16_t kp_sat16(int32_t v)
{
    return (int16_t)kp_sat(v, -32768, 32767);
}
