//! kpgen Rust shim: exports one static instance of the generated model through a C ABI.
//!
//! The panic handler calls `kpgen_error_panic_path_is_reachable`, a function defined
//! nowhere. Firmware is linked with `--gc-sections`, so the link succeeds only when no
//! panicking path is reachable from the exported functions; otherwise the linker reports
//! an undefined reference naming that symbol. This is the proof that the generated
//! inference code cannot panic.
#![no_std]

use core::cell::UnsafeCell;

use kp_model::{Model, INPUT_FEATURES, INPUT_STEPS, OUTPUT_SIZE};

struct Instance(UnsafeCell<Model>);

// SAFETY: the firmware is single-threaded and the harness never calls these functions
// from an interrupt handler, so there is never more than one live reference.
unsafe impl Sync for Instance {}

static MODEL: Instance = Instance(UnsafeCell::new(Model::new()));

/// Clears the recurrent state of the model instance.
#[no_mangle]
pub extern "C" fn kp_rust_reset() {
    // SAFETY: see `impl Sync for Instance`.
    let model = unsafe { &mut *MODEL.0.get() };
    model.reset();
}

/// One time step: reads `INPUT_FEATURES` floats from `x`, writes `OUTPUT_SIZE` floats to `y`.
///
/// # Safety
/// `x` and `y` must be valid, aligned and non-overlapping for those lengths.
#[no_mangle]
pub unsafe extern "C" fn kp_rust_step(x: *const @CODE@, y: *mut @CODE@) {
    // SAFETY: the caller's contract above.
    let (model, x, y) = unsafe {
        (
            &mut *MODEL.0.get(),
            &*x.cast::<[@CODE@; INPUT_FEATURES]>(),
            &mut *y.cast::<[@CODE@; OUTPUT_SIZE]>(),
        )
    };
    model.@STEP@(x, y);
}

/// A whole sequence: reads `INPUT_STEPS * INPUT_FEATURES` floats (step-major) from `x`,
/// writes `OUTPUT_SIZE` floats to `y`.
///
/// # Safety
/// `x` and `y` must be valid, aligned and non-overlapping for those lengths.
#[no_mangle]
pub unsafe extern "C" fn kp_rust_infer(x: *const @CODE@, y: *mut @CODE@) {
    // SAFETY: the caller's contract above.
    let (model, x, y) = unsafe {
        (
            &mut *MODEL.0.get(),
            &*x.cast::<[[@CODE@; INPUT_FEATURES]; INPUT_STEPS]>(),
            &mut *y.cast::<[@CODE@; OUTPUT_SIZE]>(),
        )
    };
    model.@INFER@(x, y);
}

extern "C" {
    /// Defined nowhere on purpose: see the crate documentation.
    fn kpgen_error_panic_path_is_reachable() -> !;
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never actually callable; a reachable call fails the firmware link.
    unsafe { kpgen_error_panic_path_is_reachable() }
}
