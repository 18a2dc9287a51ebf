//! Stage: emit. The C and Rust front ends print a lowered [`Program`] through askama
//! templates; [`syntax`] prints kernels and tables in either language.

pub mod c;
pub mod ops;
pub mod rust;
pub mod syntax;

use crate::lower::Program;

/// A file of the generated output, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// All generated files: `c/NAME.h`, `c/NAME.c`, `rust/Cargo.toml`, `rust/src/*.rs`.
pub fn emit(program: &Program) -> Result<Vec<GeneratedFile>, askama::Error> {
    let mut files = c::emit(program)?;
    files.extend(rust::emit(program)?);
    Ok(files)
}
