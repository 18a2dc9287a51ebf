/* z holds the gate pre-activations i, f, g, o (PyTorch order), n each. */
static inline void kp_lstm_update(const float *z, float *c, float *h, int n)
{
    kp_lstm_units(z, c, h, n, 0);
}
