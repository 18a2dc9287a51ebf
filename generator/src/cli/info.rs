//! `kpgen shapes`, `kpgen explain` and `kpgen targets`: answers that write no files.

use std::process::ExitCode;

use kpgen::{plan::shapes, target};

use super::args::{ExplainArgs, ShapesArgs};
use super::{report_errors, EXIT_BAD_INPUT};

pub fn shapes_cmd(args: &ShapesArgs) -> ExitCode {
    let out = if args.json {
        shapes::render_json(args.m, args.n, args.top, args.factors)
    } else {
        shapes::render_text(args.m, args.n, args.top, args.factors)
    };
    match out {
        Ok(text) => {
            out_raw!("{text}");
            if !text.ends_with('\n') {
                out!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("kpgen shapes: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

pub fn targets() -> ExitCode {
    out!(
        "{:<11} {:<6} {:<3} {:<3} {:<26} {:<12} {:>6} {:>5}  description",
        "target",
        "fpu",
        "dsp",
        "mve",
        "rust",
        "qemu",
        "flash",
        "ram"
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for t in target::builtin_targets() {
        let fpu = match t.features.fpu {
            target::Fpu::None => "none",
            target::Fpu::Single => "single",
            target::Fpu::Double => "double",
        };
        out!(
            "{:<11} {:<6} {:<3} {:<3} {:<26} {:<12} {:>5}K {:>4}K  {}",
            t.name,
            fpu,
            yes_no(t.features.dsp),
            yes_no(t.features.mve),
            t.rust.triple.as_deref().unwrap_or("no (C only)"),
            t.qemu.machine,
            t.budget.flash / 1024,
            t.budget.ram / 1024,
            t.description
        );
    }
    ExitCode::SUCCESS
}

pub fn explain(args: &ExplainArgs) -> ExitCode {
    match args.build.builder().explain(args.stage) {
        Ok(e) if args.json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&e.json).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(e) => {
            out_raw!("{}", e.text);
            ExitCode::SUCCESS
        }
        Err(e) => report_errors(&e),
    }
}
