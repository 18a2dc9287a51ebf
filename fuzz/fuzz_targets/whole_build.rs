#![no_main]
//! See `kpgen_fuzz::whole_build`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::whole_build(data));
