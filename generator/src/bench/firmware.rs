//! Building, running and checking one benchmark: kpgen's kernels for a layer, and CMSIS-DSP's
//! dense kernel on the same layer's shape.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use askama::Template;

use super::cmsis::{self, CmsisDsp};
use super::layer::{self, BenchLayer, BuiltLayer, Expected, Inputs};
use super::{Measurement, CMSIS, KPGEN};
use crate::emit::syntax::float_lit;
use crate::qemu::insn_mix::{self, InsnMix};
use crate::qemu::{self, Firmware, FirmwareTarget, Toolchain, ToolchainError};
use crate::spec::Lang;
use crate::spec::Precision;
use crate::target::Target;

/// What every benchmark shares.
pub struct Env<'a> {
    pub toolchain: &'a Toolchain,
    pub plugin: &'a Path,
    pub cmsis: Option<&'a CmsisDsp>,
    pub work_dir: &'a Path,
}

const TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Template)]
#[template(path = "bench/kpgen_main.c", escape = "none")]
struct KpgenMain<'a> {
    layer: &'a str,
    precision: &'a str,
    model_source: String,
    x_type: &'static str,
    y_type: &'static str,
    cols: usize,
    x_values: String,
    y_len: usize,
    y_first: usize,
    temp_decl: String,
    calls: Vec<String>,
    measured: &'static str,
}

#[derive(Template)]
#[template(path = "bench/cmsis_main.c", escape = "none")]
struct CmsisMain<'a> {
    layer: &'a str,
    precision: &'a str,
    version: &'static str,
    func: &'static str,
    elem: &'static str,
    matrix_type: &'static str,
    rows: usize,
    cols: usize,
    placement: String,
    bulk_attr: &'static str,
    seed: u32,
    convert: &'static str,
    measured: &'static str,
}

const MEASURED_CALL: &str = "kp_bench_layer();";

pub(super) fn dir_name(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn elem_bytes(p: Precision) -> u64 {
    p.value_bytes() as u64
}

/// Outcome of one benchmark firmware run.
pub(super) struct Run {
    pub instructions: u64,
    pub cycles: u64,
    pub mix: Vec<String>,
    pub outputs: Vec<u32>,
}

/// Runs `elf` with the plugin counting kp_bench_begin..kp_bench_end; the firmware measures an
/// empty region first, whose count (the call overhead of the markers) is subtracted.
pub(super) fn run_counted(
    env: &Env,
    fwt: &FirmwareTarget,
    target: &Target,
    elf: &Path,
) -> Result<Run, String> {
    let symbol = |name: &str| {
        env.toolchain
            .symbol_address(elf, name)
            .map_err(|e| e.to_string())
    };
    let (begin, end) = (symbol("kp_bench_begin")?, symbol("kp_bench_end")?);
    let mix_file = elf.with_extension("mix");
    let _ = std::fs::remove_file(&mix_file);
    let extra: Vec<OsString> = insn_mix::plugin_args(env.plugin, begin, end, &mix_file);
    let run = env
        .toolchain
        .run_qemu_with(fwt, elf, &extra, TIMEOUT)
        .map_err(|e| e.to_string())?;
    if run.timed_out || run.exit_code != 0 || !run.output.contains("END") {
        return Err(format!(
            "{} failed under QEMU (exit {}{}):\n{}{}",
            elf.display(),
            run.exit_code,
            if run.timed_out { ", timed out" } else { "" },
            run.output
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
            run.stderr
        ));
    }
    let mix = InsnMix::read(&mix_file).map_err(|e| e.to_string())?;
    let [empty, call] = mix.regions[..] else {
        return Err(format!(
            "{}: expected 2 measured regions, the plugin saw {}",
            elf.display(),
            mix.regions.len()
        ));
    };
    let instructions = call - empty;
    // The mix covers both regions; scale its cycle estimate to the call alone.
    let cycles = (mix.estimated_cycles(&target.timing) as f64 * instructions as f64
        / mix.total.max(1) as f64)
        .round() as u64;
    let mut classes: Vec<(&String, u64)> = mix.classes.iter().map(|(k, v)| (k, v.0)).collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top = classes
        .iter()
        .take(4)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {:.0}%", 100.0 * *n as f64 / mix.total.max(1) as f64))
        .collect();
    let outputs = run
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("Y "))
        .map(|h| u32::from_str_radix(h.trim().trim_start_matches("0x"), 16))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad output line: {e}", elf.display()))?;
    Ok(Run {
        instructions,
        cycles,
        mix: top,
        outputs,
    })
}

pub(super) fn does_not_fit(e: &ToolchainError) -> Option<String> {
    if let ToolchainError::CommandFailed { stderr, .. } = e {
        if let Some(line) = stderr.lines().find(|l| {
            l.contains("overflowed by") || l.contains("will not fit") || l.contains("overlap")
        }) {
            let why = line.rsplit(": ").next().unwrap_or(line);
            return Some(format!("does not fit the emulated memory ({why})"));
        }
    }
    None
}

/// Checks outputs against the host's expectation; Err names the first differing row.
fn check(expected: &Expected, got: &[u32], terms: usize) -> Result<(), String> {
    let n = match expected {
        Expected::Float(v) => v.len(),
        Expected::Exact(v) => v.len(),
    };
    if got.len() != n {
        return Err(format!("printed {} outputs, expected {n}", got.len()));
    }
    // |fl(Σ) − Σ| ≤ γ·Σ|terms| with γ = terms · 2^-24 (a rigorous bound for any summation order).
    let gamma = terms as f64 * f64::from(f32::EPSILON) / 2.0;
    let mut bad = 0;
    let mut first = None;
    for (r, &bits) in got.iter().enumerate() {
        let ok = match expected {
            Expected::Float(v) => {
                let g = f64::from(f32::from_bits(bits));
                let (want, mag) = v[r];
                (g - want).abs() <= gamma * mag + 1e-30
            }
            Expected::Exact(v) => bits as i32 == v[r],
        };
        if !ok {
            bad += 1;
            first.get_or_insert_with(|| {
                let shown = match expected {
                    Expected::Float(v) => format!("{} vs {}", f32::from_bits(bits), v[r].0),
                    Expected::Exact(v) => format!("{} vs {}", bits as i32, v[r]),
                };
                format!("row {r}: {shown}")
            });
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(format!("{bad} of {n} outputs wrong (first: {f})")),
    }
}

fn c_values(inputs: &Inputs) -> String {
    let items: Vec<String> = match inputs {
        Inputs::Float(v) => v.iter().map(|&f| float_lit(Lang::C, f)).collect(),
        Inputs::Codes(v) => v.iter().map(|c| c.to_string()).collect(),
    };
    items
        .chunks(8)
        .map(|c| format!("    {},", c.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kpgen_main(
    built: &BuiltLayer,
    layer: &BenchLayer,
    precision: Precision,
    inputs: &Inputs,
    null: bool,
) -> Result<String, String> {
    let (x_type, y_type, t_type) = match precision {
        Precision::F32 => ("float", "float", "float"),
        Precision::Int16 => ("int16_t", "int32_t", "int16_t"),
        Precision::Int8 => ("int8_t", "int32_t", "int16_t"),
    };
    let temp_len = built
        .calls
        .iter()
        .filter_map(|(m, _)| m.product.temp_len())
        .max();
    let calls = built
        .calls
        .iter()
        .map(|(m, at)| {
            let t = if m.product.temp_len().is_some() {
                ", kp_t"
            } else {
                ""
            };
            format!("{}_mv(kp_x + {at}, kp_y{t});", m.id)
        })
        .collect();
    KpgenMain {
        layer: &layer.name,
        precision: precision.as_str(),
        model_source: format!("{}.c", built.generation.plan.name),
        x_type,
        y_type,
        cols: built.cols,
        x_values: c_values(inputs),
        y_len: built.dest_len,
        y_first: built.calls[0].0.dest_offset,
        temp_decl: temp_len.map_or(String::new(), |n| format!("static {t_type} kp_t[{n}];")),
        calls,
        measured: if null { "" } else { MEASURED_CALL },
    }
    .render()
    .map(super::ending_with_newline)
    .map_err(|e| format!("render the benchmark main: {e}"))
}

/// kpgen's measurement of `layer`, then the dense baseline's (once per shape).
pub fn measure(
    env: &Env,
    layer: &BenchLayer,
    target: &Target,
    precision: Precision,
    dense_done: &Mutex<BTreeMap<String, Measurement>>,
) -> Result<Vec<Measurement>, String> {
    let built = layer::build_layer(layer, target, precision).map_err(|d| d.to_string())?;
    let dir = env
        .work_dir
        .join("runs")
        .join(dir_name(&layer.name))
        .join(&target.name)
        .join(precision.as_str());
    let fwt = FirmwareTarget::of(target);
    let runtime = dir.join("runtime");
    qemu::write_runtime(&runtime).map_err(|e| e.to_string())?;
    let model_dir = dir.join("model");
    for f in &built.generation.files {
        if let Some(name) = f.path.strip_prefix("c/") {
            qemu::write_file(&model_dir.join(name), &f.contents).map_err(|e| e.to_string())?;
        }
    }
    let inputs = layer::bench_input(&layer.name, built.cols, precision);
    let mut out = vec![measure_kpgen(
        env, &built, layer, target, precision, &inputs, &dir, &fwt, &runtime, &model_dir,
    )?];
    if let Some(cm) = env.cmsis {
        let key = format!(
            "{}x{} {} {}",
            built.rows,
            built.cols,
            target.name,
            precision.as_str()
        );
        let done = dense_done.lock().ok().and_then(|d| d.get(&key).cloned());
        let m = match done {
            Some(m) => m,
            None => {
                let m = measure_cmsis(env, cm, &built, target, precision, &dir, &fwt, &runtime)?;
                if let Ok(mut d) = dense_done.lock() {
                    d.insert(key, m.clone());
                }
                m
            }
        };
        out.push(Measurement {
            layer: layer.name.clone(),
            ..m
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn measure_kpgen(
    env: &Env,
    built: &BuiltLayer,
    layer: &BenchLayer,
    target: &Target,
    precision: Precision,
    inputs: &Inputs,
    dir: &Path,
    fwt: &FirmwareTarget,
    runtime: &Path,
    model_dir: &Path,
) -> Result<Measurement, String> {
    let macs: u64 = built.calls.iter().map(|(m, _)| m.macs as u64).sum();
    let weight_bytes: u64 = built
        .calls
        .iter()
        .map(|(m, _)| {
            m.stored_params as u64 * elem_bytes(precision)
                + m.overlay.as_ref().map_or(0, |o| o.index_bytes as u64)
        })
        .sum();
    let mut base = Measurement {
        layer: layer.name.clone(),
        target: target.name.clone(),
        precision: precision.as_str().to_owned(),
        implementation: KPGEN.to_owned(),
        rows: built.rows,
        cols: built.cols,
        macs,
        instructions: None,
        cycles_estimate: None,
        flash: None,
        weight_bytes,
        ram: None,
        status: String::new(),
        placement: None,
        mix: Vec::new(),
    };
    // The benchmark firmware, and its baseline: the same main without the measured call.
    let firmware = |name: &str, null: bool| -> Result<Firmware, String> {
        let main = dir.join(format!("{name}.c"));
        qemu::write_file(&main, &kpgen_main(built, layer, precision, inputs, null)?)
            .map_err(|e| e.to_string())?;
        Ok(Firmware {
            name: name.to_owned(),
            c_sources: vec![main, runtime.join(qemu::HARNESS_C)],
            include_dirs: vec![runtime.to_path_buf(), model_dir.to_path_buf()],
            libs: Vec::new(),
        })
    };
    let (with, without) = (firmware("kpgen", false)?, firmware("kpgen_null", true)?);
    let builds = match env.toolchain.build_with_baseline(fwt, &with, &without, dir) {
        Ok(builds) => builds,
        Err(e) => match does_not_fit(&e) {
            Some(why) => {
                base.status = why;
                return Ok(base);
            }
            None => return Err(e.to_string()),
        },
    };
    let run = run_counted(env, fwt, target, &builds.firmware.elf)?;
    let expected = layer::expected_kpgen(built, inputs);
    check(&expected, &run.outputs, built.cols + 2)
        .map_err(|e| format!("kpgen's kernels computed wrong results: {e}"))?;
    let x_bytes = built.cols as u64 * elem_bytes(precision);
    Ok(Measurement {
        instructions: Some(run.instructions),
        cycles_estimate: Some(run.cycles),
        flash: Some(builds.added_flash.saturating_sub(x_bytes)),
        ram: Some(builds.added_ram),
        status: "ok".to_owned(),
        mix: run.mix,
        ..base
    })
}

/// The value sequence cmsis_main.c fills the matrix and vector with (LCG, signed 16-bit).
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> i32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 16) & 0xFFFF) as i32 - 32768
    }
}

const CMSIS_SEED: u32 = 12345;

/// What CMSIS-DSP must print: its documented arithmetic on the LCG's matrix and vector.
fn expected_cmsis(rows: usize, cols: usize, precision: Precision) -> Expected {
    let mut lcg = Lcg(CMSIS_SEED);
    let mut take = |n: usize| -> Vec<i32> { (0..n).map(|_| lcg.next()).collect() };
    let w = take(rows * cols);
    let x = take(cols);
    match precision {
        Precision::F32 => Expected::Float(
            (0..rows)
                .map(|r| {
                    let (mut v, mut mag) = (0.0, 0.0);
                    for c in 0..cols {
                        let t = f64::from(w[r * cols + c]) / 32768.0 * f64::from(x[c]) / 32768.0;
                        v += t;
                        mag += t.abs();
                    }
                    (v, mag)
                })
                .collect(),
        ),
        // q15: 64-bit sum of q15 x q15, then saturate(sum >> 15) to 16 bits.
        Precision::Int16 => Expected::Exact(
            (0..rows)
                .map(|r| {
                    let s: i64 = (0..cols)
                        .map(|c| i64::from(w[r * cols + c]) * i64::from(x[c]))
                        .sum();
                    (s >> 15).clamp(-32768, 32767) as i32
                })
                .collect(),
        ),
        // q7: 32-bit sum of q7 x q7 (values are the LCG's >> 8), then saturate(sum >> 7).
        Precision::Int8 => Expected::Exact(
            (0..rows)
                .map(|r| {
                    let s: i32 = (0..cols)
                        .map(|c| (w[r * cols + c] >> 8) * (x[c] >> 8))
                        .fold(0i32, i32::wrapping_add);
                    (s >> 7).clamp(-128, 127)
                })
                .collect(),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn measure_cmsis(
    env: &Env,
    cm: &CmsisDsp,
    built: &BuiltLayer,
    target: &Target,
    precision: Precision,
    dir: &Path,
    fwt: &FirmwareTarget,
    runtime: &Path,
) -> Result<Measurement, String> {
    let (rows, cols) = (built.rows, built.cols);
    let (func, elem, matrix_type) = cmsis::kernel(precision);
    let bytes = (rows * cols) as u64 * elem_bytes(precision);
    let mut m = Measurement {
        layer: String::new(),
        target: target.name.clone(),
        precision: precision.as_str().to_owned(),
        implementation: CMSIS.to_owned(),
        rows,
        cols,
        macs: (rows * cols) as u64,
        instructions: None,
        cycles_estimate: None,
        flash: None,
        weight_bytes: bytes,
        ram: Some(0),
        status: String::new(),
        placement: None,
        mix: Vec::new(),
    };
    // The dense matrix goes to the board's bulk RAM region when it has one that holds it,
    // else into .bss if RAM (less the stack and some slack) holds it.
    let ram_room = fwt
        .ram_size
        .saturating_sub(qemu::stack_size(fwt) + 16 * 1024);
    let (placement, bulk_attr) = match fwt.bulk {
        Some((origin, size)) if bytes <= size => (
            format!("in board RAM at {origin:#010x} (.kp_bulk)"),
            "__attribute__((section(\".kp_bulk\")))",
        ),
        _ if bytes + 2 * (rows + cols) as u64 * elem_bytes(precision) <= ram_room => {
            ("in RAM (.bss)".to_owned(), "")
        }
        _ => {
            m.status = format!(
                "does not fit: the {bytes}-byte dense matrix fits no RAM region of the emulated board"
            );
            return Ok(m);
        }
    };
    m.placement = Some(placement.clone());
    let convert = match precision {
        Precision::F32 => "(float32_t)kp_next(&s) / 32768.0f",
        Precision::Int16 => "(q15_t)kp_next(&s)",
        Precision::Int8 => "(q7_t)(kp_next(&s) >> 8)",
    };
    let main_c = CmsisMain {
        layer: &built.generation.plan.name,
        precision: precision.as_str(),
        version: cmsis::VERSION,
        func,
        elem,
        matrix_type,
        rows,
        cols,
        placement,
        bulk_attr,
        seed: CMSIS_SEED,
        convert,
        measured: MEASURED_CALL,
    }
    .render()
    .map(super::ending_with_newline)
    .map_err(|e| format!("render the CMSIS-DSP main: {e}"))?;
    let cdir = dir.join("cmsis");
    let main = cdir.join("cmsis_main.c");
    qemu::write_file(&main, &main_c).map_err(|e| e.to_string())?;
    let kernel_obj = cm.compile(env.toolchain, fwt, precision, &cdir)?;
    let main_obj = cdir.join("cmsis_main.o");
    let extra = [
        format!("-I{}", runtime.display()),
        "-Wall".to_owned(),
        "-Wextra".to_owned(),
    ];
    cm.compile_source(env.toolchain, fwt, &main, &extra, &main_obj)?;
    // CMSIS-DSP's flash is its kernel object's own size, so this firmware needs no baseline.
    let firmware = Firmware {
        name: "cmsis".to_owned(),
        c_sources: vec![runtime.join(qemu::HARNESS_C)],
        include_dirs: vec![runtime.to_path_buf()],
        libs: vec![main_obj, kernel_obj.clone()],
    };
    let build = match env.toolchain.build_firmware(fwt, &firmware, &cdir) {
        Ok(build) => build,
        Err(e) => {
            return match does_not_fit(&e) {
                Some(why) => {
                    m.status = why;
                    Ok(m)
                }
                None => Err(e.to_string()),
            }
        }
    };
    let run = run_counted(env, fwt, target, &build.elf)?;
    let code = env
        .toolchain
        .section_sizes(&kernel_obj)
        .map_err(|e| e.to_string())?;
    let raw: Vec<u32> = run
        .outputs
        .iter()
        .map(|&b| match precision {
            Precision::F32 => b,
            Precision::Int16 => b as u16 as i16 as i32 as u32,
            Precision::Int8 => b as u8 as i8 as i32 as u32,
        })
        .collect();
    m.status = match check(&expected_cmsis(rows, cols, precision), &raw, cols) {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("wrong results: {e}"),
    };
    Ok(Measurement {
        instructions: Some(run.instructions),
        cycles_estimate: Some(run.cycles),
        flash: Some(code.text + code.rodata + bytes),
        mix: run.mix,
        ..m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsis_expectations_follow_its_documented_arithmetic() {
        let mut lcg = Lcg(CMSIS_SEED);
        let v: Vec<i32> = (0..6).map(|_| lcg.next()).collect();
        // 1 x 2 matrix: the first two LCG values, then the vector.
        let (w, x) = (&v[..2], &v[2..4]);
        let Expected::Exact(q15) = expected_cmsis(1, 2, Precision::Int16) else {
            panic!("q15 is exact")
        };
        let s = i64::from(w[0]) * i64::from(x[0]) + i64::from(w[1]) * i64::from(x[1]);
        assert_eq!(q15, [(s >> 15).clamp(-32768, 32767) as i32]);
        let Expected::Exact(q7) = expected_cmsis(1, 2, Precision::Int8) else {
            panic!("q7 is exact")
        };
        let s = (w[0] >> 8) * (x[0] >> 8) + (w[1] >> 8) * (x[1] >> 8);
        assert_eq!(q7, [(s >> 7).clamp(-128, 127)]);
    }

    #[test]
    fn the_float_check_uses_the_summation_bound_and_names_the_first_bad_row() {
        let expected = Expected::Float(vec![(1.0, 1.0), (2.0, 4.0)]);
        let near = [1.0f32 + f32::EPSILON, 2.0];
        assert!(check(&expected, &near.map(f32::to_bits), 4).is_ok());
        let far = [1.0f32, 2.01];
        let e = check(&expected, &far.map(f32::to_bits), 4).unwrap_err();
        assert!(e.contains("1 of 2") && e.contains("row 1"), "{e}");
        assert!(check(&expected, &[0], 4)
            .unwrap_err()
            .contains("printed 1 outputs"));
    }
}
