#![no_main]
//! See `kpgen_fuzz::target_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::target_file(data));
