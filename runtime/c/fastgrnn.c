/* pre holds W x + U h; zeta and nu arrive already passed through the sigmoid. */
static inline void kp_fastgrnn_update(const float *pre, const float *b_z, const float *b_h,
                                      float zeta, float nu, float *h, int n)
{
    kp_fastgrnn_units(pre, b_z, b_h, zeta, nu, h, n, 0);
}
