/*
 * kp_rust_shim.h - C view of the kpgen Rust shim (rust_shim/src/lib.rs), a staticlib that
 * holds ONE static instance of a generated no_std model.
 */
#ifndef KP_RUST_SHIM_H
#define KP_RUST_SHIM_H

/* Clear the recurrent state. */
void kp_rust_reset(void);
/* One time step: x has INPUT_FEATURES values, y receives OUTPUT_SIZE (floats, or codes of a
 * fixed-point model). */
void kp_rust_step(const void *x, void *y);
/* Whole sequence: x has INPUT_STEPS * INPUT_FEATURES values (step-major), y receives OUTPUT_SIZE. */
void kp_rust_infer(const void *x, void *y);

#endif /* KP_RUST_SHIM_H */
