/* Streams words through a kpgen-built language-model LSTM stack on the host, the way a device
 * would call it: one NAME_state_t per text column, NAME_step once per word.
 *
 * Build (host_eval.py does this): cc -std=c99 -O2 -DMODEL=NAME -DMODEL_H='"NAME.h"' -I DIR/c \
 *     driver.c DIR/c/NAME.c -o driver
 * stdin:  int32 columns C, int32 steps N, then N x C rows of NAME_INPUT_FEATURES float32 (the
 *         embeddings of word t of every column, column-major per step);
 * stdout: N x C rows of NAME_OUTPUT_SIZE float32, the top layer's h after each step.
 * Exit 2 on a malformed or short input, 1 on a write error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include MODEL_H

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define UPPER_FEATURES CAT(MODEL_UPPER, _INPUT_FEATURES)
#define UPPER_OUTPUTS CAT(MODEL_UPPER, _OUTPUT_SIZE)

#define MAX_COLUMNS 256

static CAT(MODEL, _state_t) states[MAX_COLUMNS];

int main(void)
{
    int32_t header[2];
    static float x[UPPER_FEATURES];
    static float y[UPPER_OUTPUTS];
    if (fread(header, sizeof header[0], 2, stdin) != 2 || header[0] < 1 || header[0] > MAX_COLUMNS
        || header[1] < 0) {
        fprintf(stderr, "driver: expected a header of columns (1..%d) and steps\n", MAX_COLUMNS);
        return 2;
    }
    for (int32_t c = 0; c < header[0]; ++c) {
        CAT(MODEL, _reset)(&states[c]);
    }
    for (int32_t t = 0; t < header[1]; ++t) {
        for (int32_t c = 0; c < header[0]; ++c) {
            if (fread(x, sizeof x[0], UPPER_FEATURES, stdin) != UPPER_FEATURES) {
                fprintf(stderr, "driver: input ended at step %ld, column %ld\n", (long)t, (long)c);
                return 2;
            }
            CAT(MODEL, _step)(&states[c], x, y);
            if (fwrite(y, sizeof y[0], UPPER_OUTPUTS, stdout) != UPPER_OUTPUTS) {
                return 1;
            }
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
