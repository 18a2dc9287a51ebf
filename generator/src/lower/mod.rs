//! Stage: lowering. Each planned matrix becomes a language-neutral kernel ([`kernel`]).

pub mod kernel;
