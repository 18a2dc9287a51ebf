/* An application that uses a kpgen model as a user's firmware would: one static state, a
 * sequence in, the class scores out. It runs the bundled BasicMotions KP model on a fixed
 * synthetic sequence and prints each score's float bits in hex over semihosting, so a test
 * can compare them with kpgen's float reference. Nothing here is generated. */
#include <stdint.h>

#include "basic_motions_kp.h"

#define STEPS BASIC_MOTIONS_KP_INPUT_STEPS
#define FEATURES BASIC_MOTIONS_KP_INPUT_FEATURES
#define OUTPUTS BASIC_MOTIONS_KP_OUTPUT_SIZE

void semihost_write(const char *text);

static basic_motions_kp_state_t state;
static float input[STEPS * FEATURES];

/* x[t][f] = ((7t + 3f) mod 11 - 5) / 5: exact in float, easy to repeat in the test. */
static void fill_input(void)
{
    for (int t = 0; t < STEPS; ++t) {
        for (int f = 0; f < FEATURES; ++f) {
            input[t * FEATURES + f] = (float)((7 * t + 3 * f) % 11 - 5) / 5.0f;
        }
    }
}

static void put_hex(uint32_t v, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) {
        out[i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    }
}

int main(void)
{
    float scores[OUTPUTS];
    fill_input();
    basic_motions_kp_infer(&state, input, scores);
    for (int k = 0; k < OUTPUTS; ++k) {
        char line[] = "score ????????\n";
        union {
            float f;
            uint32_t u;
        } bits;
        bits.f = scores[k];
        put_hex(bits.u, line + 6);
        semihost_write(line);
    }
    semihost_write("done\n");
    return 0;
}
