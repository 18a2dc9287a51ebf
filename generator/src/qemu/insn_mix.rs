//! Estimated cycle counts from the executed instruction mix.
//!
//! QEMU has no cycle model. The `insn_mix` TCG plugin (`insn_mix.c`, shipped inside kpgen and
//! compiled with the host C compiler by [`build_plugin`]) counts, for a region of a firmware
//! run, every executed guest instruction by class (alu, load, mla, fp_mac, mve_load, ...),
//! the registers moved by the load/store-multiple classes, and the taken branches.
//! [`InsnMix::estimated_cycles`] weighs those counts with the core's instruction timings
//! ([`Timing`], the `[timing]` table of each target file).
//!
//! The region is `[begin, end)`: counting starts when the instruction at `begin` executes
//! (it is counted) and stops when the instruction at `end` executes (it is not); both may
//! repeat, and the figures of all passes add up. Give the addresses of two `noinline` marker
//! functions called around the measured code: the plugin then counts from the first
//! marker's body up to and including the call of the second, i.e. the instructions SysTick
//! counting (`kp_timer_start` / `kp_timer_ticks`) reports for the same region minus a
//! fixed few (the call into the first marker, the second marker's return, argument set-up);
//! the integration test below checks the difference is the same for any region length.
//!
//! The estimate is a sum of per-instruction costs: zero-wait-state memory, no result-latency
//! stalls, no dual issue. For the in-order M0/M3/M4/M33 it is close to the Technical
//! Reference Manual figures (loads and stores at their unpipelined 2 cycles, data-dependent
//! multiply/divide at mid-range); for the dual-issue M7 and M55 it is a single-issue
//! approximation. Each table's `note` says which.
//!
//! Class decisions (see `insn_mix.c`): LDRD/STRD are `load_multiple` / `store_multiple` with
//! 2 registers (timed 1+N like LDM); POP/LDM with pc are `load_multiple` (pc counted in N) and,
//! when taken, a taken branch; FP register counts are 32-bit words (a d register counts 2);
//! capstone 4 (QEMU's disassembler) does not know MVE, so MVE instructions are recognised from
//! their encoding as `mve_load` / `mve_store` / `mve_other`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::target::Timing;

/// The plugin's C source.
pub const PLUGIN_SOURCE: &str = include_str!("../../../runtime/harness/insn_mix.c");

/// Classes the plugin reports, in its order.
pub const CLASSES: &[&str] = &[
    "alu",
    "it",
    "system",
    "mul",
    "mla",
    "mul_long",
    "dsp_mac",
    "simd",
    "div",
    "load",
    "load_multiple",
    "store",
    "store_multiple",
    "branch",
    "fp_alu",
    "fp_mul",
    "fp_mac",
    "fp_div",
    "fp_load",
    "fp_load_multiple",
    "fp_store",
    "fp_store_multiple",
    "mve_load",
    "mve_store",
    "mve_other",
    "other",
];

/// Errors from building the plugin or reading its output.
#[derive(Debug, thiserror::Error)]
pub enum InsnMixError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no host C compiler (`cc` or `gcc`) on PATH to build the insn_mix QEMU plugin")]
    NoCompiler,
    #[error("building the insn_mix QEMU plugin failed ({status})\ncommand: {command}\n{stderr}")]
    Compile {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{path}:{line}: malformed insn_mix output: {detail}")]
    Parse {
        path: String,
        line: usize,
        detail: String,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InsnMixError {
    let context = context.into();
    move |source| InsnMixError::Io { context, source }
}

/// FNV-1a, 64 bits: names the built plugin after its source.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Writes the plugin source into `work_dir` (created if missing) and compiles it with the host
/// C compiler (`cc`, else `gcc`: `-shared -fPIC -O2`) into `insn_mix-<hash of the source>.so`;
/// returns that path. A plugin already built there from the same source is reused. Safe to call
/// concurrently: the library is built under a temporary name and renamed into place.
pub fn build_plugin(work_dir: &Path) -> Result<PathBuf, InsnMixError> {
    let stem = format!("insn_mix-{:016x}", fnv1a(PLUGIN_SOURCE));
    let lib = work_dir.join(format!("{stem}.so"));
    if lib.is_file() {
        return Ok(lib);
    }
    std::fs::create_dir_all(work_dir)
        .map_err(io_error(format!("create {}", work_dir.display())))?;
    let source = work_dir.join(format!("{stem}.c"));
    let unique = format!(
        "{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp_source = work_dir.join(format!("{stem}.{unique}.c"));
    std::fs::write(&tmp_source, PLUGIN_SOURCE)
        .map_err(io_error(format!("write {}", tmp_source.display())))?;
    std::fs::rename(&tmp_source, &source)
        .map_err(io_error(format!("rename to {}", source.display())))?;
    let cc = find_on_path("cc")
        .or_else(|| find_on_path("gcc"))
        .ok_or(InsnMixError::NoCompiler)?;
    let tmp_lib = work_dir.join(format!("{stem}.{unique}.so.tmp"));
    let mut cmd = Command::new(&cc);
    cmd.args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&tmp_lib)
        .arg(&source)
        .stdin(Stdio::null());
    let command = format!("{cmd:?}");
    let output = cmd
        .output()
        .map_err(io_error(format!("start {}", cc.display())))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp_lib);
        return Err(InsnMixError::Compile {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    std::fs::rename(&tmp_lib, &lib).map_err(io_error(format!("rename to {}", lib.display())))?;
    Ok(lib)
}

/// Doubles commas, QEMU's escape inside an option value.
fn qemu_opt_escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// The `-plugin` argument pair for qemu-system-arm (the syntax QEMU 7.2 takes:
/// `-plugin FILE,begin=0x..,end=0x..,out=FILE`, each `key=value` reaching the plugin as one
/// argument; commas in paths are doubled). `begin` and `end` are instruction addresses;
/// their Thumb bit is cleared.
pub fn plugin_args(plugin: &Path, begin: u32, end: u32, out: &Path) -> Vec<OsString> {
    vec![
        "-plugin".into(),
        format!(
            "{},begin={:#x},end={:#x},out={}",
            qemu_opt_escape(plugin),
            begin & !1,
            end & !1,
            qemu_opt_escape(out)
        )
        .into(),
    ]
}

/// Cycles of one instruction of `class` and per register moved (0 for single-register
/// classes), from `timing`; `None` for a class the table does not know.
pub fn class_cycles(timing: &Timing, class: &str) -> Option<(f64, f64)> {
    let t = timing;
    Some(match class {
        "alu" => (t.alu, 0.0),
        "it" => (t.it, 0.0),
        "system" => (t.system, 0.0),
        "mul" => (t.mul, 0.0),
        "mla" => (t.mla, 0.0),
        "mul_long" => (t.mul_long, 0.0),
        "dsp_mac" => (t.dsp_mac, 0.0),
        "simd" => (t.simd, 0.0),
        "div" => (t.div, 0.0),
        "load" => (t.load, 0.0),
        "store" => (t.store, 0.0),
        "load_multiple" => (t.load_multiple, t.load_multiple_per_reg),
        "store_multiple" => (t.store_multiple, t.store_multiple_per_reg),
        "branch" => (t.branch, 0.0),
        "fp_alu" => (t.fp_alu, 0.0),
        "fp_mul" => (t.fp_mul, 0.0),
        "fp_mac" => (t.fp_mac, 0.0),
        "fp_div" => (t.fp_div, 0.0),
        "fp_load" => (t.fp_load, 0.0),
        "fp_store" => (t.fp_store, 0.0),
        "fp_load_multiple" => (t.fp_load_multiple, t.fp_load_multiple_per_reg),
        "fp_store_multiple" => (t.fp_store_multiple, t.fp_store_multiple_per_reg),
        "mve_load" => (t.mve_load, 0.0),
        "mve_store" => (t.mve_store, 0.0),
        "mve_other" => (t.mve_other, 0.0),
        "other" => (t.other, 0.0),
        _ => return None,
    })
}

/// The plugin's figures for a region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsnMix {
    /// Executed instructions (the sum of the class counts).
    pub total: u64,
    /// Control transfers that did not continue at the fall-through address.
    pub taken_branches: u64,
    /// Class name -> (executed instructions, registers moved: the sum of N for the
    /// multi-register classes, 0 for the others).
    pub classes: BTreeMap<String, (u64, u64)>,
    /// Mnemonics the plugin put in `other` (distinct, translation time; at most 32).
    pub unclassified: Vec<String>,
    /// Instructions of each begin..end region, in execution order (at most 64).
    pub regions: Vec<u64>,
}

impl InsnMix {
    /// Reads the file the plugin wrote at exit.
    pub fn read(path: &Path) -> Result<InsnMix, InsnMixError> {
        let text =
            std::fs::read_to_string(path).map_err(io_error(format!("read {}", path.display())))?;
        InsnMix::parse(&text).map_err(|(line, detail)| InsnMixError::Parse {
            path: path.display().to_string(),
            line,
            detail,
        })
    }

    /// Parses the plugin's output; an error is (1-based line, what is wrong).
    pub fn parse(text: &str) -> Result<InsnMix, (usize, String)> {
        let mut mix = InsnMix::default();
        let (mut total, mut taken) = (None, None);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let n = index + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| (n, format!("`{s}` is not a count in `{line}`")))
            };
            match fields.as_slice() {
                ["total", v] => total = Some(number(v)?),
                ["taken_branches", v] => taken = Some(number(v)?),
                ["class", name, v] => {
                    mix.classes.entry(name.to_string()).or_default().0 = number(v)?
                }
                ["class_regs", name, v] => {
                    mix.classes.entry(name.to_string()).or_default().1 = number(v)?
                }
                ["unclassified", m] => mix.unclassified.push(m.to_string()),
                ["region", v] => mix.regions.push(number(v)?),
                _ => return Err((n, format!("unexpected line `{line}`"))),
            }
        }
        mix.total = total.ok_or((0, "no `total` line".to_string()))?;
        mix.taken_branches = taken.ok_or((0, "no `taken_branches` line".to_string()))?;
        let sum: u64 = mix.classes.values().map(|(c, _)| c).sum();
        if sum != mix.total {
            return Err((
                0,
                format!("class counts add up to {sum}, not the total {}", mix.total),
            ));
        }
        Ok(mix)
    }

    /// Executed instructions of `class` (0 when absent).
    pub fn count(&self, class: &str) -> u64 {
        self.classes.get(class).map_or(0, |c| c.0)
    }

    /// Registers moved by the instructions of `class` (0 when absent).
    pub fn regs(&self, class: &str) -> u64 {
        self.classes.get(class).map_or(0, |c| c.1)
    }

    /// Estimated cycles: each class's count x its cycles, plus registers x the per-register
    /// cycles of the multiple classes, plus taken branches x `timing.taken_branch`; rounded to
    /// the nearest cycle. A class the table does not know is costed as `other`.
    pub fn estimated_cycles(&self, timing: &Timing) -> u64 {
        let mut cycles = self.taken_branches as f64 * timing.taken_branch;
        for (class, &(count, regs)) in &self.classes {
            let (each, per_reg) = class_cycles(timing, class).unwrap_or((timing.other, 0.0));
            cycles += count as f64 * each + regs as f64 * per_reg;
        }
        cycles.round() as u64
    }

    /// One line per class with instructions, largest first, at most `top` lines (the rest
    /// summed), with shares of the instructions and of the estimated cycles, e.g.
    /// `load_multiple   12000  30.0%  41.2% cycles  (N = 48000)`.
    pub fn summary(&self, timing: &Timing, top: usize) -> String {
        let total_cycles = self.estimated_cycles(timing).max(1) as f64;
        let insns = self.total.max(1) as f64;
        let mut rows: Vec<(&str, u64, u64, f64)> = self
            .classes
            .iter()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(class, &(count, regs))| {
                let (each, per_reg) = class_cycles(timing, class).unwrap_or((timing.other, 0.0));
                (
                    class.as_str(),
                    count,
                    regs,
                    count as f64 * each + regs as f64 * per_reg,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out = format!(
            "{} instructions, {} taken branches, ~{} cycles (estimate)\n",
            self.total,
            self.taken_branches,
            self.estimated_cycles(timing)
        );
        let (shown, rest) = rows.split_at(rows.len().min(top));
        for (class, count, regs, cycles) in shown {
            let _ = write!(
                out,
                "  {class:<18} {count:>10} {:>5.1}% {:>5.1}% cycles",
                100.0 * *count as f64 / insns,
                100.0 * cycles / total_cycles
            );
            if *regs > 0 {
                let _ = write!(out, "  (N = {regs})");
            }
            out.push('\n');
        }
        if !rest.is_empty() {
            let count: u64 = rest.iter().map(|r| r.1).sum();
            let _ = writeln!(
                out,
                "  {:<18} {count:>10} {:>5.1}%",
                format!("({} more)", rest.len()),
                100.0 * count as f64 / insns
            );
        }
        let branch_cycles = self.taken_branches as f64 * timing.taken_branch;
        if branch_cycles > 0.0 {
            let _ = writeln!(
                out,
                "  {:<18} {:>10} {:>5}  {:>5.1}% cycles",
                "taken-branch refill",
                self.taken_branches,
                "",
                100.0 * branch_cycles / total_cycles
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m4() -> Timing {
        crate::target::lookup("cortex-m4").unwrap().timing
    }

    const SAMPLE: &str = "# insn_mix begin=0x5c8 end=0x5cc\n\
                          total 110\n\
                          taken_branches 9\n\
                          class alu 20\n\
                          class load 30\n\
                          class load_multiple 10\n\
                          class mla 40\n\
                          class branch 10\n\
                          class fp_mac 0\n\
                          class_regs load_multiple 25\n\
                          unclassified bkpt\n";

    #[test]
    fn output_parses() {
        let mix = InsnMix::parse(SAMPLE).unwrap();
        assert_eq!(mix.total, 110);
        assert_eq!(mix.taken_branches, 9);
        assert_eq!(mix.count("load"), 30);
        assert_eq!(mix.count("fp_mac"), 0);
        assert_eq!(mix.count("missing"), 0);
        assert_eq!(mix.regs("load_multiple"), 25);
        assert_eq!(mix.classes["load_multiple"], (10, 25));
        assert_eq!(mix.unclassified, vec!["bkpt".to_string()]);
    }

    #[test]
    fn malformed_output_is_refused_with_its_line() {
        let bad_count = SAMPLE.replace("class load 30", "class load thirty");
        let (line, msg) = InsnMix::parse(&bad_count).unwrap_err();
        assert_eq!(line, 5);
        assert!(msg.contains("thirty"), "{msg}");
        let (line, msg) = InsnMix::parse("total 1\ntaken_branches 0\nbogus\n").unwrap_err();
        assert_eq!((line, msg.contains("bogus")), (3, true));
        assert!(InsnMix::parse("taken_branches 0\n")
            .unwrap_err()
            .1
            .contains("total"));
        // class counts must add up to the total
        let wrong = SAMPLE.replace("total 110", "total 111");
        assert!(InsnMix::parse(&wrong).unwrap_err().1.contains("111"));
        // and the file-level error names the file
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mix.txt");
        std::fs::write(&path, "total x\n").unwrap();
        let err = InsnMix::read(&path).unwrap_err().to_string();
        assert!(err.contains("mix.txt:1:"), "{err}");
    }

    #[test]
    fn cycles_weigh_classes_registers_and_taken_branches() {
        let t = m4();
        let mix = InsnMix::parse(SAMPLE).unwrap();
        // alu 20x1 + load 30x2 + ldm 10x1 + 25 regs x1 + mla 40x1 + branch 10x1 + 9 taken x2
        assert_eq!(mix.estimated_cycles(&t), 20 + 60 + 10 + 25 + 40 + 10 + 18);
        // fractional per-register figures are summed before rounding (M7: 0.5 per register)
        let m7 = crate::target::lookup("cortex-m7").unwrap().timing;
        assert_eq!(m7.load_multiple_per_reg, 0.5);
        let ldm = InsnMix::parse(
            "total 3\ntaken_branches 0\nclass load_multiple 3\nclass_regs load_multiple 5\n",
        )
        .unwrap();
        assert_eq!(ldm.estimated_cycles(&m7), 6); // 3 + 2.5 = 5.5 -> 6
                                                  // an unknown class is costed as `other`
        let odd = InsnMix::parse("total 4\ntaken_branches 0\nclass future 4\n").unwrap();
        assert_eq!(odd.estimated_cycles(&t), (4.0 * t.other) as u64);
        let s = mix.summary(&t, 5);
        assert!(
            s.starts_with("110 instructions, 9 taken branches, ~183 cycles"),
            "{s}"
        );
        assert!(
            s.contains("mla") && s.contains("(N = 25)") && !s.contains("more)"),
            "{s}"
        );
        let short = mix.summary(&t, 2);
        assert!(
            short.contains("(3 more)") && !short.contains("alu"),
            "{short}"
        );
    }

    #[test]
    fn every_class_has_a_figure_in_every_target() {
        for target in crate::target::builtin_targets() {
            for class in CLASSES {
                let (each, per_reg) = class_cycles(&target.timing, class).unwrap();
                assert!(each > 0.0 && per_reg >= 0.0, "{} {class}", target.name);
            }
            assert!(
                target.timing.note.contains("estimate")
                    || target.timing.note.contains("approximation")
            );
        }
        // the plugin reports exactly these classes
        for class in CLASSES {
            assert!(PLUGIN_SOURCE.contains(&format!("\"{class}\"")), "{class}");
        }
    }

    #[test]
    fn plugin_args_use_the_7_2_syntax() {
        let args = plugin_args(
            Path::new("/w/insn_mix.so"),
            0x5c9,
            0x5cc,
            Path::new("/w/a,b.txt"),
        );
        assert_eq!(args[0], "-plugin");
        assert_eq!(
            args[1],
            "/w/insn_mix.so,begin=0x5c8,end=0x5cc,out=/w/a,,b.txt"
        );
    }

    #[test]
    fn plugin_is_built_once_per_work_dir() {
        if find_on_path("cc").or_else(|| find_on_path("gcc")).is_none() {
            eprintln!("SKIPPED: no host C compiler");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let first = build_plugin(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let built = std::fs::metadata(&first).unwrap().modified().unwrap();
        let second = build_plugin(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            std::fs::metadata(&second).unwrap().modified().unwrap(),
            built
        );
        // no temporary files left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    // ---- under QEMU ----

    use crate::qemu::{self, FirmwareTarget, Toolchain};

    /// The tools, or `None` (with a message) when the cross compiler or QEMU is missing.
    fn tools() -> Option<Toolchain> {
        match Toolchain::locate() {
            Ok(tc) => Some(tc),
            Err(e) => {
                eprintln!("SKIPPED: {e}");
                None
            }
        }
    }

    /// A firmware whose `main` measures `body` (C statements, between two noinline markers)
    /// with SysTick and prints `ticks T overhead O`.
    fn firmware_source(prelude: &str, body: &str) -> String {
        format!(
            r#"#include "kp_harness.h"
__attribute__((noinline)) void kp_mark_begin(void) {{ __asm__ volatile(""); }}
__attribute__((noinline)) void kp_mark_end(void) {{ __asm__ volatile(""); }}
{prelude}
int main(void)
{{
    uint32_t overhead, ticks;
    kp_timer_start();
    overhead = kp_timer_ticks();
    kp_timer_start();
    kp_mark_begin();
    {body}
    kp_mark_end();
    ticks = kp_timer_ticks();
    kp_puts("ticks ");
    kp_put_u32(ticks);
    kp_puts(" overhead ");
    kp_put_u32(overhead);
    kp_puts("\n");
    return 0;
}}
"#
        )
    }

    /// Builds and runs the firmware on `target` under the plugin; returns (plugin figures,
    /// SysTick instruction count of the same region).
    fn measure(
        tc: &Toolchain,
        plugin: &Path,
        target: &str,
        dir: &Path,
        src: &str,
    ) -> (InsnMix, u64) {
        let ft: FirmwareTarget = FirmwareTarget::of(&crate::target::lookup(target).unwrap());
        let runtime = dir.join("runtime");
        qemu::write_runtime(&runtime).unwrap();
        let main = dir.join("main.c");
        std::fs::write(&main, src).unwrap();
        let elf = dir.join("fw.elf");
        tc.compile_firmware(
            &ft,
            &[runtime.join(qemu::HARNESS_C), main],
            std::slice::from_ref(&runtime),
            &[],
            &dir.join("obj"),
            &elf,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let begin = tc.symbol_address(&elf, "kp_mark_begin").unwrap();
        let end = tc.symbol_address(&elf, "kp_mark_end").unwrap();
        let out = dir.join("mix.txt");
        let run = Command::new(&tc.qemu)
            .args(qemu::qemu_args(&ft, &elf))
            .args(plugin_args(plugin, begin, end, &out))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let f: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!((f[0], f[2]), ("ticks", "overhead"), "{stdout}");
        let systick = qemu::instructions(&ft, f[1].parse().unwrap(), f[3].parse().unwrap());
        (InsnMix::read(&out).unwrap(), systick)
    }

    /// Runs `loop_asm` (a loop of `n` iterations in the asm operand `%[n]`) for two values of
    /// n and checks the plugin against SysTick and the loop's known content; returns the
    /// per-iteration difference of the mixes and the difference of estimated cycles.
    fn check_loop(
        target: &str,
        prelude: &str,
        body: impl Fn(u32) -> String,
        per_iter: &[(&str, u64, u64)],
        per_iter_total: u64,
    ) -> Option<(InsnMix, InsnMix)> {
        let tc = tools()?;
        let dir = tempfile::Builder::new()
            .prefix("kpgen-insn-mix-")
            .tempdir()
            .unwrap();
        let plugin = build_plugin(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (n1, n2) = (10u32, 1010u32);
        let mut results = Vec::new();
        for n in [n1, n2] {
            let sub = dir.path().join(format!("{target}-{n}"));
            let (mix, systick) = measure(
                &tc,
                &plugin,
                target,
                &sub,
                &firmware_source(prelude, &body(n)),
            );
            eprintln!(
                "{target} n={n}: systick {systick}\n{}",
                mix.summary(&crate::target::lookup(target).unwrap().timing, 8)
            );
            assert!(
                mix.unclassified.iter().all(|m| m == "bkpt"),
                "{:?}",
                mix.unclassified
            );
            assert_eq!(mix.count("other"), 0);
            results.push((mix, systick));
        }
        let (a, b) = (&results[0], &results[1]);
        let dn = u64::from(n2 - n1);
        // (a) the plugin counts what SysTick counts, less a fixed few instructions (the call
        // into the begin marker, the end marker's return): the same for both lengths.
        let gap = a.1 as i64 - a.0.total as i64;
        assert_eq!(
            gap,
            b.1 as i64 - b.0.total as i64,
            "plugin vs SysTick gap varies"
        );
        assert!((0..=6).contains(&gap), "gap {gap}");
        assert_eq!(b.0.total - a.0.total, dn * per_iter_total);
        // (b) the class counts grow by the loop's content per iteration
        for &(class, count, regs) in per_iter {
            assert_eq!(b.0.count(class) - a.0.count(class), dn * count, "{class}");
            assert_eq!(
                b.0.regs(class) - a.0.regs(class),
                dn * regs,
                "{class} registers"
            );
        }
        // one taken backward branch per extra iteration
        assert_eq!(b.0.taken_branches - a.0.taken_branches, dn);
        Some((results.remove(0).0, results.remove(0).0))
    }

    #[test]
    fn plugin_counts_an_integer_loop_on_cortex_m4() {
        let prelude = "static int32_t kp_buf[4] = {3, 5, 7, 9};\n\
                       static int32_t kp_out;\n";
        let body = |n: u32| {
            format!(
                r#"{{
        uint32_t n = {n}u;
        int32_t acc = 0;
        __asm__ volatile(
            "1:\n\t"
            "ldr r3, [%[p]]\n\t"
            "ldrd r3, r12, [%[p]]\n\t"
            "mla %[acc], r3, r12, %[acc]\n\t"
            "smlad %[acc], r3, r12, %[acc]\n\t"
            "str %[acc], [%[q]]\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [n] "+r"(n), [acc] "+r"(acc)
            : [p] "r"(kp_buf), [q] "r"(&kp_out)
            : "r3", "r12", "cc", "memory");
    }}"#
            )
        };
        let per_iter = [
            ("load", 1, 0),
            ("load_multiple", 1, 2),
            ("mla", 1, 0),
            ("dsp_mac", 1, 0),
            ("store", 1, 0),
            ("alu", 1, 0),
            ("branch", 1, 0),
        ];
        let Some((a, b)) = check_loop("cortex-m4", prelude, body, &per_iter, 7) else {
            return;
        };
        // 2 + (1+2) + 1 + 1 + 2 + 1 + 1 + taken 2 = 13 cycles per iteration on the M4
        let t = crate::target::lookup("cortex-m4").unwrap().timing;
        assert_eq!(b.estimated_cycles(&t) - a.estimated_cycles(&t), 1000 * 13);
    }

    #[test]
    fn plugin_counts_a_float_loop_on_cortex_m7() {
        let prelude = "static float kp_fbuf[2] = {1.5f, 2.5f};\n\
                       static float kp_fout;\n";
        let body = |n: u32| {
            format!(
                r#"{{
        uint32_t n = {n}u;
        __asm__ volatile(
            "vmov.f32 s1, #1.0\n\t"
            "vmov.f32 s3, #1.0\n\t"
            "1:\n\t"
            "vldr s0, [%[p]]\n\t"
            "vmla.f32 s1, s0, s0\n\t"
            "vfma.f32 s1, s0, s0\n\t"
            "vmul.f32 s2, s0, s1\n\t"
            "vadd.f32 s3, s3, s2\n\t"
            "vdiv.f32 s4, s3, s0\n\t"
            "vstr s4, [%[q]]\n\t"
            "vpush {{s16-s17}}\n\t"
            "vpop {{s16-s17}}\n\t"
            "vldmia %[p], {{d2}}\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [n] "+r"(n)
            : [p] "r"(kp_fbuf), [q] "r"(&kp_fout)
            : "s0", "s1", "s2", "s3", "s4", "s5", "cc", "memory");
    }}"#
            )
        };
        let per_iter = [
            ("fp_load", 1, 0),
            ("fp_mac", 2, 0),
            ("fp_mul", 1, 0),
            ("fp_alu", 1, 0),
            ("fp_div", 1, 0),
            ("fp_store", 1, 0),
            ("fp_store_multiple", 1, 2),
            ("fp_load_multiple", 2, 4),
            ("alu", 1, 0),
            ("branch", 1, 0),
        ];
        check_loop("cortex-m7", prelude, body, &per_iter, 12);
    }

    #[test]
    fn plugin_counts_an_mve_loop_on_cortex_m55() {
        let prelude = "static int32_t kp_vbuf[4] = {1, 2, 3, 4};\n\
                       static int32_t kp_vout[4];\n";
        let body = |n: u32| {
            format!(
                r#"{{
        uint32_t n = {n}u;
        __asm__ volatile(
            "dls lr, %[n]\n\t"
            "1:\n\t"
            "vldrw.u32 q0, [%[p]]\n\t"
            "vmul.i32 q1, q0, q0\n\t"
            "vadd.i32 q1, q1, q0\n\t"
            "vstrw.32 q1, [%[q]]\n\t"
            "le lr, 1b\n\t"
            : [n] "+r"(n)
            : [p] "r"(kp_vbuf), [q] "r"(kp_vout)
            : "d0", "d1", "d2", "d3", "lr", "memory");
    }}"#
            )
        };
        // LE is a branch (found from its encoding: capstone 4 does not know v8.1-M)
        let per_iter = [
            ("mve_load", 1, 0),
            ("mve_other", 2, 0),
            ("mve_store", 1, 0),
            ("branch", 1, 0),
        ];
        check_loop("cortex-m55", prelude, body, &per_iter, 5);
    }
}
