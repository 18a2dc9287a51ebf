//! Building and running one conformance firmware (one model variant in one language).

use std::path::{Path, PathBuf};
use std::process::Command;

use askama::Template;

use super::{Cost, HarnessError, Platform, RunOptions};
use crate::base::sequences::TestInputs;
use crate::emit::syntax::float_lit;
use crate::qemu::{self, Firmware};
use crate::spec::Lang;
use crate::target::Target;
use crate::Generation;

const HOST_HARNESS: &str = include_str!("../../../templates/harness/host_harness.c");

/// What the firmware's `main` calls: a generated C model, the Rust shim, or nothing (the
/// baseline firmware whose size is subtracted to get the model's own flash and RAM).
#[derive(Template)]
#[template(path = "harness/main.c", escape = "none")]
struct TestMain<'a> {
    model: &'a str,
    lang: &'a str,
    /// Element type of inputs and outputs: float, or the codes of a fixed-point model.
    code: &'static str,
    include: String,
    steps: usize,
    features: usize,
    outputs: usize,
    count: usize,
    state_decl: String,
    inputs: Vec<String>,
    lengths: String,
    reset: String,
    step: String,
    infer: String,
    /// Run every sequence through reset + step and print the output after each valid step.
    every_step: bool,
}

#[derive(Clone, Copy)]
enum Driver {
    C,
    Rust,
    Null,
}

/// The body of the baseline firmware's step and infer: the arguments stay used, so that clang
/// (whose `noinline` is not gcc's `noipa`) keeps the input constants the model firmware holds,
/// and the difference of the two is the model alone.
const NULL_DRIVER_BODY: &str = "(void)x;\n    (void)y;\n#if defined(__clang__)\n    \
     __asm__ __volatile__(\"\" : : \"r\"(x), \"r\"(y));\n#endif";

fn render_main(
    gen: &Generation,
    driver: Driver,
    inputs: &TestInputs,
    every_step: bool,
) -> Result<String, HarnessError> {
    let name = &gen.plan.name;
    // Fixed-point models are driven through their integer API.
    let q = if gen.quant.is_some() { "_q" } else { "" };
    let (lang, include, state_decl, reset, step, infer) = match driver {
        Driver::C => (
            "C",
            format!("{name}.h"),
            format!("static {name}_state_t kp_state;"),
            format!("{name}_reset(&kp_state);"),
            format!("{name}_step{q}(&kp_state, x, y);"),
            format!("{name}_infer{q}(&kp_state, x, y);"),
        ),
        Driver::Rust => (
            "Rust",
            "kp_rust_shim.h".to_owned(),
            String::new(),
            "kp_rust_reset();".to_owned(),
            "kp_rust_step(x, y);".to_owned(),
            "kp_rust_infer(x, y);".to_owned(),
        ),
        Driver::Null => (
            "no model",
            "kp_harness.h".to_owned(),
            String::new(),
            String::new(),
            NULL_DRIVER_BODY.to_owned(),
            NULL_DRIVER_BODY.to_owned(),
        ),
    };
    let literals = |s: &[f32]| -> Vec<String> {
        match &gen.quant {
            Some(qp) => crate::quant::intref::quantize_input(qp, s)
                .iter()
                .map(i32::to_string)
                .collect(),
            None => s.iter().map(|&v| input_lit(v)).collect(),
        }
    };
    let inputs_text = inputs
        .sequences
        .iter()
        .map(|s| {
            literals(s)
                .chunks(8)
                .map(|c| format!("        {},", c.join(", ")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    TestMain {
        model: name,
        lang,
        code: match &gen.quant {
            Some(qp) if qp.act_bits == 8 => "int8_t",
            Some(_) => "int16_t",
            None => "float",
        },
        include,
        steps: inputs.steps,
        features: inputs.features,
        outputs: gen.plan.output_size,
        count: inputs.sequences.len(),
        state_decl,
        inputs: inputs_text,
        lengths: inputs
            .lengths
            .chunks(16)
            .map(|c| {
                let items: Vec<String> = c.iter().map(usize::to_string).collect();
                format!("    {},", items.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        reset,
        step,
        infer,
        every_step,
    }
    .render()
    .map_err(|e| HarnessError::Internal(format!("rendering the test main: {e}")))
}

/// What one firmware run printed, decoded.
pub struct RunOutput {
    /// Per sequence, its output after its last valid step (float bits, or the codes of a
    /// fixed-point model as floats).
    pub outputs: Vec<Vec<f32>>,
    /// With `--every-step`: per sequence, the output after each of its valid steps.
    pub step_outputs: Option<Vec<Vec<Vec<f32>>>>,
    pub streaming_matches: bool,
    pub cost: Option<Cost>,
}

struct Ticks {
    overhead: u32,
    infer: u32,
    stream: u32,
    stack: u32,
}

/// The printed outputs: per sequence, then sequence 0 from `infer` and from streaming `step`s.
struct Decoded {
    outputs: Vec<Vec<f32>>,
    steps: Vec<Vec<Vec<f32>>>,
    infer: Vec<f32>,
    stream: Vec<f32>,
    ticks: Ticks,
}

fn parse_hex(s: &str) -> Option<f32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16)
        .ok()
        .map(f32::from_bits)
}

/// Decodes the firmware's lines; `every_step` holds each sequence's valid length when the
/// firmware printed a `P` line per step (which must then come in order, all of them).
fn parse_output(
    lang: &'static str,
    text: &str,
    count: usize,
    outputs: usize,
    every_step: Option<&[usize]>,
) -> Result<Decoded, HarnessError> {
    let bad = |detail: String| HarnessError::Protocol {
        lang,
        detail,
        output: text.chars().take(4000).collect(),
    };
    let mut ys = vec![Vec::new(); count];
    let mut steps: Vec<Vec<Vec<f32>>> = vec![Vec::new(); count];
    let mut stream = Vec::new();
    let mut infer = Vec::new();
    let mut ticks = Ticks {
        overhead: 0,
        infer: 0,
        stream: 0,
        stack: 0,
    };
    let mut ended = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some(tag @ ("Y" | "S" | "I")) => {
                let index: usize = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| bad(format!("bad line `{line}`")))?;
                let values: Option<Vec<f32>> = words.map(parse_hex).collect();
                let values = values.ok_or_else(|| bad(format!("bad value in `{line}`")))?;
                if values.len() != outputs || index >= count {
                    return Err(bad(format!("unexpected line `{line}`")));
                }
                match tag {
                    "Y" => ys[index] = values,
                    "I" => infer = values,
                    _ => stream = values,
                }
            }
            Some("P") if every_step.is_some() => {
                let mut index = || words.next().and_then(|w| w.parse::<usize>().ok());
                let (Some(i), Some(t)) = (index(), index()) else {
                    return Err(bad(format!("bad line `{line}`")));
                };
                let values: Option<Vec<f32>> = words.map(parse_hex).collect();
                let values = values.ok_or_else(|| bad(format!("bad value in `{line}`")))?;
                if values.len() != outputs || i >= count || t != steps[i].len() {
                    return Err(bad(format!("unexpected line `{line}`")));
                }
                steps[i].push(values);
            }
            Some("T") => {
                let key = words.next().unwrap_or("");
                let value: u32 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| bad(format!("bad line `{line}`")))?;
                match key {
                    "overhead" => ticks.overhead = value,
                    "infer" => ticks.infer = value,
                    "stream" => ticks.stream = value,
                    "stack" => ticks.stack = value,
                    _ => return Err(bad(format!("unknown cost `{key}`"))),
                }
            }
            Some("END") => ended = true,
            _ => {}
        }
    }
    if !ended || ys.iter().any(Vec::is_empty) || stream.is_empty() || infer.is_empty() {
        return Err(bad("the output is incomplete".to_owned()));
    }
    if let Some(lengths) = every_step {
        if let Some(i) = (0..count).find(|&i| steps[i].len() != lengths[i]) {
            return Err(bad(format!(
                "sequence {i}: {} step outputs printed, {} expected",
                steps[i].len(),
                lengths[i]
            )));
        }
    }
    Ok(Decoded {
        outputs: ys,
        steps,
        infer,
        stream,
        ticks,
    })
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> HarnessError {
    move |source| HarnessError::Io { what, source }
}

/// Upper bound on the stack of `NAME_infer` from -fstack-usage: the frames of the public
/// chain (infer → step → advance / head) plus the largest frame of any other model function.
fn stack_usage_bound(su_text: &str, name: &str) -> u64 {
    let frames = qemu::parse_stack_usage(su_text);
    let chain = [
        format!("{name}_infer"),
        format!("{name}_step"),
        format!("{name}_advance"),
        format!("{name}_head"),
    ];
    let mut total = 0u64;
    let mut other = 0u64;
    for (func, bytes, _) in frames {
        if chain.contains(&func) {
            total += u64::from(bytes);
        } else {
            other = other.max(u64::from(bytes));
        }
    }
    total + other
}

fn c_sources(dir: &Path, gen: &Generation) -> PathBuf {
    dir.join("gen/c").join(format!("{}.c", gen.plan.name))
}

/// A float input as C: NaN and the infinities through the compilers' constant builtins (the
/// bare-metal toolchain has no <math.h>), so a test can feed what a sensor glitch sends.
fn input_lit(v: f32) -> String {
    if v.is_nan() {
        "__builtin_nanf(\"\")".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 {
            "__builtin_inff()"
        } else {
            "(-__builtin_inff())"
        }
        .to_owned()
    } else {
        float_lit(Lang::C, v)
    }
}

/// Builds the firmware for `lang` in `dir`, runs it and decodes what it printed.
pub fn build_and_run(
    platform: &Platform,
    target: &Target,
    gen: &Generation,
    lang: Lang,
    inputs: &TestInputs,
    dir: &Path,
    opts: &RunOptions,
) -> Result<RunOutput, HarnessError> {
    crate::output::claim_work_dir(dir)?;
    crate::output::write_tree(&dir.join("gen"), &gen.files)?;
    let runtime = dir.join("runtime");
    qemu::write_runtime(&runtime)?;
    let driver = match lang {
        Lang::C => Driver::C,
        Lang::Rust => Driver::Rust,
    };
    // Under QEMU, main.c is the measured firmware, the same with or without --every-step; the
    // outputs of every step come from a second firmware (below). On the host, which measures
    // nothing, main.c prints them itself.
    let host = matches!(platform, Platform::Host { .. });
    let main_c = dir.join("main.c");
    qemu::write_file(
        &main_c,
        &render_main(gen, driver, inputs, opts.every_step && host)?,
    )?;
    let name = gen.plan.name.as_str();
    let mut sources = vec![main_c.clone()];
    let mut libs = Vec::new();
    match lang {
        Lang::C => sources.push(c_sources(dir, gen)),
        Lang::Rust => {
            let shim = dir.join("shim");
            qemu::write_rust_shim(&shim, name, &dir.join("gen/rust"), gen.quant.is_some())?;
            libs.push(match platform {
                Platform::Qemu(tc) => tc.build_rust_staticlib(
                    &qemu::FirmwareTarget::of(target),
                    &shim,
                    &dir.join("target"),
                )?,
                Platform::Host { .. } => host_staticlib(&shim, &dir.join("target"))?,
            });
        }
    }
    let includes = vec![runtime.clone(), dir.join("gen/c")];
    let lang_name = lang.as_str();
    let every_step_lengths = opts.every_step.then_some(inputs.lengths.as_slice());
    match platform {
        Platform::Host { cc } => {
            let exe = dir.join("fw");
            let mut all = vec![dir.join("host_harness.c")];
            qemu::write_file(&all[0], HOST_HARNESS)?;
            all.extend(sources);
            host_compile(cc, &all, &includes, &libs, &exe)?;
            let out = Command::new(&exe)
                .output()
                .map_err(io(format!("run {}", exe.display())))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                return Err(HarnessError::Protocol {
                    lang: lang_name,
                    detail: format!("the host program exited with {}", out.status),
                    output: text,
                });
            }
            let Decoded {
                outputs,
                steps,
                infer,
                stream,
                ..
            } = parse_output(
                lang_name,
                &text,
                inputs.sequences.len(),
                gen.plan.output_size,
                every_step_lengths,
            )?;
            let streaming_matches = bits_equal(&stream, &infer);
            Ok(RunOutput {
                outputs,
                step_outputs: opts.every_step.then_some(steps),
                streaming_matches,
                cost: None,
            })
        }
        Platform::Qemu(tc) => {
            let ft = qemu::FirmwareTarget::of(target);
            let mut all = vec![runtime.join(qemu::HARNESS_C)];
            all.extend(sources);
            let firmware = Firmware {
                name: "fw".to_owned(),
                c_sources: all,
                include_dirs: includes.clone(),
                libs,
            };
            // The same firmware without the model: the difference is what the model costs.
            let baseline_main = dir.join("baseline/main.c");
            qemu::write_file(
                &baseline_main,
                &render_main(gen, Driver::Null, inputs, false)?,
            )?;
            let baseline = Firmware {
                name: "baseline".to_owned(),
                c_sources: vec![runtime.join(qemu::HARNESS_C), baseline_main],
                include_dirs: includes.clone(),
                libs: Vec::new(),
            };
            let built = tc.build_with_baseline(&ft, &firmware, &baseline, dir)?;
            let fw = &built.firmware;
            let run = tc.run_qemu(&ft, &fw.elf, opts.timeout)?;
            check_exit(lang_name, &run, opts)?;
            let Decoded {
                mut outputs,
                infer,
                stream,
                ticks,
                ..
            } = parse_output(
                lang_name,
                &run.output,
                inputs.sequences.len(),
                gen.plan.output_size,
                None,
            )?;
            let mut streaming_matches = bits_equal(&stream, &infer);
            // --every-step: the same model and harness with the per-step printing, built and run
            // apart, so that the measured firmware (its code layout, so its flash, its main's
            // frame, so its stack) is exactly the one without --every-step.
            let mut steps = None;
            if opts.every_step {
                let steps_main = dir.join("every_step/main.c");
                qemu::write_file(&steps_main, &render_main(gen, driver, inputs, true)?)?;
                let c_sources = firmware
                    .c_sources
                    .iter()
                    .map(|p| if *p == main_c { &steps_main } else { p }.clone())
                    .collect();
                let every = Firmware {
                    name: "fw_every_step".to_owned(),
                    c_sources,
                    include_dirs: includes,
                    libs: firmware.libs.clone(),
                };
                let elf = tc.build_firmware(&ft, &every, dir)?.elf;
                let run = tc.run_qemu(&ft, &elf, opts.timeout)?;
                check_exit(lang_name, &run, opts)?;
                let decoded = parse_output(
                    lang_name,
                    &run.output,
                    inputs.sequences.len(),
                    gen.plan.output_size,
                    every_step_lengths,
                )?;
                // Its final outputs come from reset + step, the measured firmware's (of whole
                // sequences) from infer: one more streaming check, over every sequence.
                streaming_matches &= bits_equal(&decoded.stream, &decoded.infer)
                    && outputs.len() == decoded.outputs.len()
                    && outputs
                        .iter()
                        .zip(&decoded.outputs)
                        .all(|(a, b)| bits_equal(a, b));
                outputs = decoded.outputs;
                steps = Some(decoded.steps);
            }
            let stack_usage_bound = match lang {
                Lang::C => {
                    let su = fw
                        .stack_usage
                        .iter()
                        .find(|p| p.file_stem().is_some_and(|s| s == name))
                        .and_then(|p| std::fs::read_to_string(p).ok());
                    su.map(|t| stack_usage_bound(&t, name))
                }
                Lang::Rust => None,
            };
            let steps_per_run = inputs.steps.max(1) as u64;
            Ok(RunOutput {
                outputs,
                step_outputs: steps,
                streaming_matches,
                cost: Some(Cost {
                    instructions_per_inference: qemu::instructions(
                        &ft,
                        ticks.infer,
                        ticks.overhead,
                    ),
                    instructions_per_step: qemu::instructions(&ft, ticks.stream, ticks.overhead)
                        / steps_per_run,
                    flash_bytes: built.added_flash,
                    ram_bytes: built.added_ram,
                    stack_bytes: u64::from(ticks.stack),
                    stack_usage_bound,
                }),
            })
        }
    }
}

fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn check_exit(
    lang: &'static str,
    run: &qemu::QemuRun,
    opts: &RunOptions,
) -> Result<(), HarnessError> {
    let output = format!("{}{}", run.output, run.stderr);
    if run.timed_out {
        return Err(HarnessError::Timeout {
            lang,
            seconds: opts.timeout.as_secs(),
            output,
        });
    }
    let kind = match run.exit_code {
        0 => return Ok(()),
        qemu::EXIT_HARD_FAULT => "hard fault",
        qemu::EXIT_MEM_FAULT => "memory management fault",
        qemu::EXIT_BUS_FAULT => "bus fault",
        qemu::EXIT_USAGE_FAULT => "usage fault",
        qemu::EXIT_OTHER_EXCEPTION => "unexpected exception",
        qemu::EXIT_STACK_OVERFLOW => "stack overflow",
        _ => {
            return Err(HarnessError::Protocol {
                lang,
                detail: format!("QEMU exited with status {}", run.exit_code),
                output,
            })
        }
    };
    Err(HarnessError::Fault {
        lang,
        code: run.exit_code,
        kind,
        output,
    })
}

use crate::qemu::STRICT_C_FLAGS;

fn host_compile(
    cc: &str,
    sources: &[PathBuf],
    includes: &[PathBuf],
    libs: &[PathBuf],
    exe: &Path,
) -> Result<(), HarnessError> {
    let mut cmd = Command::new(cc);
    cmd.args(STRICT_C_FLAGS);
    for i in includes {
        cmd.arg("-I").arg(i);
    }
    cmd.args(sources).args(libs).arg("-o").arg(exe);
    if !libs.is_empty() {
        cmd.arg("-Wl,--gc-sections");
    }
    run_command(&mut cmd, &format!("host compile with {cc}"))
}

fn run_command(cmd: &mut Command, step: &str) -> Result<(), HarnessError> {
    let out = cmd
        .output()
        .map_err(io(format!("{step}: cannot start {:?}", cmd.get_program())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Toolchain(
        qemu::ToolchainError::CommandFailed {
            step: step.to_owned(),
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        },
    ))
}

/// The Rust shim as a host staticlib (host tests).
fn host_staticlib(shim: &Path, target_dir: &Path) -> Result<PathBuf, HarnessError> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(shim.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run_command(&mut cmd, "cargo build of the Rust shim for the host")?;
    Ok(target_dir.join("release/libkp_rust_shim.a"))
}

/// Checks that every C source compiles warning-free with the strict flags and `cc`.
pub fn check_c_compiles(cc: &str, c_dir: &Path, extra: &[&str]) -> Result<(), HarnessError> {
    let sources: Vec<PathBuf> = std::fs::read_dir(c_dir)
        .map_err(io(format!("read {}", c_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    for src in sources {
        let mut cmd = Command::new(cc);
        cmd.args(STRICT_C_FLAGS)
            .args(extra)
            .arg("-I")
            .arg(c_dir)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(src.with_extension("o"));
        run_command(&mut cmd, &format!("compile {} with {cc}", src.display()))?;
    }
    Ok(())
}
