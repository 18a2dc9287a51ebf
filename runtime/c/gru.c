/* z holds W_ih x + b_ih (r, z, n) followed by W_hh h + b_hh (r, z, n), n each. */
static inline void kp_gru_update(const float *z, float *h, int n)
{
    kp_gru_units(z, h, n, 0);
}
