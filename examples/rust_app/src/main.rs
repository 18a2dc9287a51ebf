//! A firmware that uses a model kpgen generates from `build.rs`: one static model, a sequence
//! in, the class scores out, printed as float bits over semihosting (as the C example does),
//! then a semihosting exit so QEMU returns the status.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_halt as _;

include!(concat!(env!("OUT_DIR"), "/basic_motions_kp.rs"));

use basic_motions_kp::{Model, INPUT_FEATURES, INPUT_STEPS, OUTPUT_SIZE};

#[entry]
fn main() -> ! {
    // x[t][f] = ((7t + 3f) mod 11 - 5) / 5, the sequence of examples/firmware/main.c.
    let mut x = [[0.0f32; INPUT_FEATURES]; INPUT_STEPS];
    for (t, row) in x.iter_mut().enumerate() {
        for (f, v) in row.iter_mut().enumerate() {
            *v = (((7 * t + 3 * f) % 11) as f32 - 5.0) / 5.0;
        }
    }
    let mut model = Model::new();
    let mut scores = [0.0f32; OUTPUT_SIZE];
    model.infer(&x, &mut scores);
    for s in scores {
        hprintln!("score {:08x}", s.to_bits());
    }
    hprintln!("done");
    debug::exit(debug::EXIT_SUCCESS);
    // Not reached under QEMU; on a board without a debugger, wait for events.
    loop {
        cortex_m::asm::wfe();
    }
}
