/* ---- kpgen runtime: activations and cell updates (single precision, no libm) ----
 * kp_expf: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor polynomial, then a
 * 2^n scale built in the exponent bits. Inputs are clamped to [-87, 88] (the sigmoid and tanh
 * built on it saturate long before). Measured against double precision: see README.md. */

typedef union {
    float f;
    uint32_t u;
} kp_bits_t;

static inline float kp_expf(float x)
{
    kp_bits_t scale;
    float r, p, nf;
    int32_t n;
    if (x > 88.0f) {
        x = 88.0f;
    }
    if (x < -87.0f) {
        x = -87.0f;
    }
    nf = x * 1.442695f;
    n = (int32_t)(nf + (nf >= 0.0f ? 0.5f : -0.5f));
    r = x - (float)n * 0.69314575f;  /* ln2, high bits */
    r = r - (float)n * 1.4286068e-6f; /* ln2, low bits */
    p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f
        + r * (0.008333334f + r * 0.0013888889f)))));
    scale.u = (uint32_t)(n + 127) << 23;
    return p * scale.f;
}

static inline float kp_sigmoidf(float x)
{
    return 1.0f / (1.0f + kp_expf(-x));
}

static inline float kp_tanhf(float x)
{
    /* tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error stays at float rounding near zero. */
    return 1.0f - 2.0f / (kp_expf(2.0f * x) + 1.0f);
}

/* z holds the gate pre-activations i, f, g, o (PyTorch order), n each. */
static inline void kp_lstm_update(const float *z, float *c, float *h, int n)
{
    for (int k = 0; k < n; ++k) {
        float i = kp_sigmoidf(z[k]);
        float f = kp_sigmoidf(z[n + k]);
        float g = kp_tanhf(z[2 * n + k]);
        float o = kp_sigmoidf(z[3 * n + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * kp_tanhf(c[k]);
    }
}

/* z holds W_ih x + b_ih (r, z, n) followed by W_hh h + b_hh (r, z, n), n each. */
static inline void kp_gru_update(const float *z, float *h, int n)
{
    const float *zh = z + 3 * n;
    for (int k = 0; k < n; ++k) {
        float r = kp_sigmoidf(z[k] + zh[k]);
        float u = kp_sigmoidf(z[n + k] + zh[n + k]);
        float c = kp_tanhf(z[2 * n + k] + r * zh[2 * n + k]);
        h[k] = (1.0f - u) * c + u * h[k];
    }
}

/* pre holds W x + U h; zeta and nu arrive already passed through the sigmoid. */
static inline void kp_fastgrnn_update(const float *pre, const float *b_z, const float *b_h,
                                      float zeta, float nu, float *h, int n)
{
    for (int k = 0; k < n; ++k) {
        float z = kp_sigmoidf(pre[k] + b_z[k]);
        float c = kp_tanhf(pre[k] + b_h[k]);
        h[k] = (zeta * (1.0f - z) + nu) * c + z * h[k];
    }
}

static inline void kp_relu(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = y[k] > 0.0f ? y[k] : 0.0f;
    }
}

static inline void kp_sigmoid(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = kp_sigmoidf(y[k]);
    }
}

static inline void kp_tanh(float *y, int n)
{
    for (int k = 0; k < n; ++k) {
        y[k] = kp_tanhf(y[k]);
    }
}

static inline void kp_softmax(float *y, int n)
{
    float m = y[0];
    float sum = 0.0f;
    for (int k = 1; k < n; ++k) {
        m = y[k] > m ? y[k] : m;
    }
    for (int k = 0; k < n; ++k) {
        y[k] = kp_expf(y[k] - m);
        sum += y[k];
    }
    for (int k = 0; k < n; ++k) {
        y[k] = y[k] / sum;
    }
}
