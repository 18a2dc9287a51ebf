//! The `kpgen` command line: parses the arguments and dispatches to one module per verb
//! (`cli/`); the library does the work.

#[macro_use]
mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // On Ctrl-C or SIGTERM, temporaries go too: a killed build leaves nothing behind.
    let _ = ctrlc::set_handler(|| {
        kpgen::output::cleanup_on_interrupt();
        std::process::exit(130);
    });
    match cli.command {
        Command::Build(args) => cli::build::build(&args),
        Command::Test(args) => cli::test::test(&args),
        Command::Shapes(args) => cli::info::shapes_cmd(&args),
        Command::Bench(args) => cli::bench::bench(&args),
        Command::Explain(args) => cli::info::explain(&args),
        Command::Targets => cli::info::targets(),
    }
}
