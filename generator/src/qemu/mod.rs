//! Host side of firmware verification: locating the cross tools, building bare-metal test
//! firmware (C, or C driving a Rust staticlib), running it under QEMU and reading its costs.
//!
//! The hand-written runtime in `runtime/harness/` ships inside the kpgen binary
//! ([`runtime_files`]) and is written out next to generated code with [`write_runtime`].
//!
//! # Instruction counting
//! QEMU has no cycle model, but under `-icount shift=N,sleep=off` the guest's virtual clock
//! advances exactly 2^N ns per instruction, so SysTick (processor clock `f_cpu`) advances
//! `2^N * f_cpu / 1e9` ticks per instruction ([`ticks_per_instruction`]). The harness
//! (`kp_timer_start` / `kp_timer_ticks`) returns ticks since the counter was enabled, and
//! [`instructions`] turns a region's ticks, minus those of an empty region, into an exact
//! instruction count when there are more than 2 ticks per instruction (see its docs for
//! the 1.6 of mps2-an386 at shift 6, also exact). The fixed cost of an empty
//! region (`kp_timer_start(); kp_timer_ticks();`) was measured on mps2-an386 (25 MHz,
//! shift 6, GCC 12 -O2): **5 ticks = 3 instructions**. Measure it in every firmware rather
//! than hard-coding it, and pass it as `overhead_ticks`.

pub mod insn_mix;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Symbol the Rust shim's panic handler calls; it is defined nowhere, so a firmware whose
/// Rust code can reach a panic fails to link with an undefined reference to it.
pub const PANIC_SENTINEL: &str = "kpgen_error_panic_path_is_reachable";

/// How to get the cross tools, repeated in every "tool not found" error.
pub const INSTALL_HINT: &str =
    "run ci/setup, or apt-get install --no-install-recommends gcc-arm-none-eabi qemu-system-arm";

/// Exit codes of the C harness (`kp_harness.h`).
pub const EXIT_HARD_FAULT: i32 = 90;
pub const EXIT_MEM_FAULT: i32 = 91;
pub const EXIT_BUS_FAULT: i32 = 92;
pub const EXIT_USAGE_FAULT: i32 = 93;
/// NMI, SecureFault, SVCall, PendSV, SysTick, external interrupts.
pub const EXIT_OTHER_EXCEPTION: i32 = 94;
/// Found when `main` returned: the paint at the stack limit was overwritten.
pub const EXIT_STACK_OVERFLOW: i32 = 95;

/// `kp_timer_ticks()` returns this when the 24-bit SysTick counter wrapped.
pub const TIMER_OVERFLOW: u32 = u32::MAX;

/// The strict flags every generated C file must pass (host and firmware builds alike).
pub const STRICT_C_FLAGS: &[&str] = &[
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wvla",
    "-Wdouble-promotion",
];

/// What firmware builds add to [`STRICT_C_FLAGS`] (before the target's): sections for
/// --gc-sections, no hosted C library, and the stack-usage files the harness reads.
pub const FIRMWARE_C_FLAGS: &[&str] = &[
    "-ffunction-sections",
    "-fdata-sections",
    "-ffreestanding",
    "-fstack-usage",
];

/// File name of the C harness among [`runtime_files`].
pub const HARNESS_C: &str = "kp_harness.c";
/// Directory of the Rust shim template among [`runtime_files`].
pub const RUST_SHIM_DIR: &str = "rust_shim";

const LINK_TEMPLATE: &str = include_str!("../../../runtime/harness/link.ld.in");
const SHIM_CARGO_TEMPLATE: &str = include_str!("../../../runtime/harness/rust_shim/Cargo.toml.in");
const SHIM_LIB_RS: &str = include_str!("../../../runtime/harness/rust_shim/src/lib.rs");

static RUNTIME_FILES: &[(&str, &str)] = &[
    (
        "kp_harness.h",
        include_str!("../../../runtime/harness/kp_harness.h"),
    ),
    (
        "kp_harness.c",
        include_str!("../../../runtime/harness/kp_harness.c"),
    ),
    (
        "kp_rust_shim.h",
        include_str!("../../../runtime/harness/kp_rust_shim.h"),
    ),
    ("link.ld.in", LINK_TEMPLATE),
    ("rust_shim/Cargo.toml.in", SHIM_CARGO_TEMPLATE),
    ("rust_shim/src/lib.rs", SHIM_LIB_RS),
];

/// What firmware building and running needs to know about a target (filled from the
/// target data file, e.g. `targets/cortex-m4.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareTarget {
    /// C flags selecting the core and float ABI, e.g. `-mcpu=cortex-m4 -mthumb ...`.
    pub cflags: Vec<String>,
    /// QEMU machine, e.g. `mps2-an386`.
    pub qemu_machine: String,
    /// `-cpu` for machines that need it (lm3s6965evb with a Cortex-M0).
    pub qemu_cpu: Option<String>,
    /// SysTick processor clock of the QEMU machine.
    pub systick_hz: u64,
    /// `-icount shift=N`.
    pub icount_shift: u32,
    pub flash_origin: u64,
    pub flash_size: u64,
    pub ram_origin: u64,
    pub ram_size: u64,
    /// Origin and size of a large RAM region for bulk benchmark data, linked as `.kp_bulk`.
    pub bulk: Option<(u64, u64)>,
    /// Rust target triple, when the target supports Rust.
    pub rust_triple: Option<String>,
    /// RUSTFLAGS for the Rust staticlib, e.g. `["-C", "target-cpu=cortex-m4"]`.
    pub rustflags: Vec<String>,
}

impl FirmwareTarget {
    /// The firmware-relevant part of a target file.
    pub fn of(t: &crate::target::Target) -> FirmwareTarget {
        FirmwareTarget {
            cflags: t.c.cflags.clone(),
            qemu_machine: t.qemu.machine.clone(),
            qemu_cpu: t.qemu.cpu.clone(),
            systick_hz: t.qemu.systick_hz,
            icount_shift: t.qemu.icount_shift,
            flash_origin: t.memory.flash_origin,
            flash_size: t.memory.flash_size,
            ram_origin: t.memory.ram_origin,
            ram_size: t.memory.ram_size,
            bulk: t.memory.bulk.map(|[origin, size]| (origin, size)),
            rust_triple: t.rust.triple.clone(),
            rustflags: t.rust.rustflags.clone(),
        }
    }
}

/// Errors from building or running firmware.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("`{tool}` was not found on PATH: {hint}")]
    MissingTool { tool: String, hint: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} failed ({status})\ncommand: {command}\n{stderr}")]
    CommandFailed {
        /// What was being done, e.g. `compile kp_harness.c`, `link fw.elf`, `cargo build`.
        step: String,
        /// The full command line, shell-quoted.
        command: String,
        /// Exit status as text.
        status: String,
        /// Everything the tool wrote to stderr (and stdout, when it wrote there too).
        stderr: String,
    },
    #[error(
        "the Rust code can panic: the firmware link found a reachable call to \
         `{PANIC_SENTINEL}` (the shim's panic handler)\ncommand: {command}\n{stderr}"
    )]
    PanicPathReachable { command: String, stderr: String },
    #[error("target has no Rust triple: Rust firmware cannot be built for it")]
    NoRustTriple,
    #[error("cannot read {what}: {detail}")]
    Parse { what: String, detail: String },
}

impl ToolchainError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ToolchainError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Which compiler builds the C of a firmware (the cross gcc always links it, with its libgcc).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum CCompiler {
    /// `arm-none-eabi-gcc`.
    #[default]
    Gcc,
    /// `clang --target=arm-none-eabi` with the target's `-mcpu` flags; C library headers
    /// (which only benchmark baselines include) come from the cross gcc's newlib.
    Clang,
}

impl CCompiler {
    pub fn as_str(self) -> &'static str {
        match self {
            CCompiler::Gcc => "gcc",
            CCompiler::Clang => "clang",
        }
    }
}

impl std::fmt::Display for CCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cross tools, found on PATH by [`Toolchain::locate`] (or [`Toolchain::locate_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `arm-none-eabi-gcc`: it links every firmware, and compiles its C unless `clang` is set.
    pub gcc: PathBuf,
    pub size: PathBuf,
    pub qemu: PathBuf,
    pub cargo: PathBuf,
    /// When set, C is compiled by this clang instead of `gcc`.
    pub clang: Option<Clang>,
}

/// A clang able to compile for bare-metal Arm: its path and the C library header folders of
/// the cross gcc, searched after clang's own (so `stdint.h` and `arm_mve.h` are clang's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clang {
    pub path: PathBuf,
    pub libc_includes: Vec<PathBuf>,
}

/// Result of [`Toolchain::compile_firmware`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareBuild {
    pub elf: PathBuf,
    /// One object per C source, in the order given.
    pub objects: Vec<PathBuf>,
    /// The `-fstack-usage` file of each object, in the same order.
    pub stack_usage: Vec<PathBuf>,
    /// The rendered linker script used.
    pub linker_script: PathBuf,
    /// Linker map file.
    pub map: PathBuf,
}

/// One bare-metal firmware to build with [`Toolchain::build_firmware`]: what it is made of,
/// named once so that a firmware and its baseline ([`Toolchain::build_with_baseline`]) are
/// described the same way by every caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firmware {
    /// Names the build in its folder: the ELF is `NAME.elf`, the objects go to `NAME/`.
    pub name: String,
    /// C sources, compiled and linked in this order, which sets the layout of the image (so
    /// each caller places [`HARNESS_C`] itself, where its measurements always had it).
    pub c_sources: Vec<PathBuf>,
    pub include_dirs: Vec<PathBuf>,
    /// Objects or static libraries linked after the C sources (a Rust staticlib, an object
    /// compiled with other flags).
    pub libs: Vec<PathBuf>,
}

/// Result of [`Toolchain::build_with_baseline`]: both builds and what the firmware costs
/// beyond its baseline, which is what a measurement reports as the cost of the code under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareWithBaseline {
    pub firmware: FirmwareBuild,
    pub baseline: FirmwareBuild,
    /// Bytes of flash ([`Sizes::flash`]) the firmware needs beyond the baseline, 0 if fewer.
    pub added_flash: u64,
    /// Bytes of static RAM ([`Sizes::ram`]) the firmware needs beyond the baseline, 0 if fewer.
    pub added_ram: u64,
}

/// Result of [`Toolchain::run_qemu`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuRun {
    /// QEMU's exit status: the code the firmware passed to `kp_exit` (or returned from
    /// `main`); -1 when QEMU was killed (timeout) or died from a signal.
    pub exit_code: i32,
    /// Semihosting output of the firmware.
    pub output: String,
    /// QEMU's own diagnostics.
    pub stderr: String,
    pub timed_out: bool,
}

/// Section sizes in bytes, summed by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// `.text*`
    pub text: u64,
    /// `.rodata*`, plus the other read-only flash sections `.vectors` and `.ARM.exidx*` /
    /// `.ARM.extab*`.
    pub rodata: u64,
    /// `.data*` (occupies both flash, for its initial values, and RAM).
    pub data: u64,
    /// `.bss*`
    pub bss: u64,
}

impl Sizes {
    /// Bytes of flash: code, constants and initial values of `.data`.
    pub fn flash(&self) -> u64 {
        self.text + self.rodata + self.data
    }

    /// Bytes of static RAM (excluding the stack).
    pub fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

/// The runtime files as `(relative path, contents)`: the C harness, its headers, the
/// linker script template and the Rust shim template.
pub fn runtime_files() -> &'static [(&'static str, &'static str)] {
    RUNTIME_FILES
}

/// Writes [`runtime_files`] under `dir` (created if missing); returns the written paths.
pub fn write_runtime(dir: &Path) -> Result<Vec<PathBuf>, ToolchainError> {
    let mut written = Vec::with_capacity(RUNTIME_FILES.len());
    for (name, contents) in RUNTIME_FILES {
        let path = dir.join(name);
        write_file(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes a ready-to-build Rust shim crate into `dir` (`Cargo.toml` and `src/lib.rs`) that
/// wraps the generated crate named `model_crate` found at `model_path`.
/// `fixed`: the model is fixed point, and the shim exports its integer (`_q`) API.
pub fn write_rust_shim(
    dir: &Path,
    model_crate: &str,
    model_path: &Path,
    fixed: bool,
) -> Result<(), ToolchainError> {
    let model_path = std::path::absolute(model_path)
        .map_err(|e| ToolchainError::io(format!("resolve {}", model_path.display()), e))?;
    // Cargo needs the path as UTF-8 text; any character is fine once TOML-quoted (a
    // backslash is a file-name character on Unix, not a separator).
    let model_path = model_path.to_str().ok_or_else(|| {
        ToolchainError::io(
            format!("use {} as a Cargo path", model_path.display()),
            std::io::Error::other("the path is not valid UTF-8"),
        )
    })?;
    let cargo = SHIM_CARGO_TEMPLATE
        .replace("@MODEL_CRATE@", &toml_string(model_crate))
        .replace("@MODEL_PATH@", &toml_string(model_path));
    write_file(&dir.join("Cargo.toml"), &cargo)?;
    let (code, suffix) = if fixed {
        ("kp_model::Code", "_q")
    } else {
        ("f32", "")
    };
    let lib = SHIM_LIB_RS
        .replace("@CODE@", code)
        .replace("@STEP@", &format!("step{suffix}"))
        .replace("@INFER@", &format!("infer{suffix}"));
    write_file(&dir.join("src/lib.rs"), &lib)
}

/// Bytes reserved for the stack at the top of RAM: a quarter of RAM, at most 64 KiB.
pub fn stack_size(target: &FirmwareTarget) -> u64 {
    (target.ram_size / 4).min(64 * 1024) & !7
}

/// The linker script for `target`: vector table at the flash origin, `.data`/`.bss` at the
/// RAM origin, the stack ([`stack_size`]) at the top of RAM.
pub fn render_linker_script(target: &FirmwareTarget) -> String {
    LINK_TEMPLATE
        .replace("@FLASH_ORIGIN@", &format!("{:#010x}", target.flash_origin))
        .replace("@FLASH_SIZE@", &format!("{:#x}", target.flash_size))
        .replace("@RAM_ORIGIN@", &format!("{:#010x}", target.ram_origin))
        .replace("@RAM_SIZE@", &format!("{:#x}", target.ram_size))
        .replace("@STACK_SIZE@", &format!("{:#x}", stack_size(target)))
        .replace(
            "@BULK_MEMORY@",
            &target.bulk.map_or(String::new(), |(origin, size)| {
                format!("BULK  (rw)  : ORIGIN = {origin:#010x}, LENGTH = {size:#x}")
            }),
        )
        .replace(
            "@BULK_SECTION@",
            if target.bulk.is_some() {
                ".kp_bulk (NOLOAD) : ALIGN(8) { *(.kp_bulk) } > BULK"
            } else {
                ""
            },
        )
}

/// SysTick ticks per guest instruction: `2^icount_shift * systick_hz / 1e9`.
pub fn ticks_per_instruction(target: &FirmwareTarget) -> f64 {
    target.systick_hz as f64 * f64::from(target.icount_shift).exp2() / 1e9
}

/// Ticks to instructions, unrounded (no overhead subtracted).
pub fn ticks_to_instructions(target: &FirmwareTarget, ticks: u32) -> f64 {
    f64::from(ticks) / ticks_per_instruction(target)
}

/// Number of guest instructions in a measured region: `ticks` of the region minus
/// `overhead_ticks` of an empty region, both as returned by `kp_timer_ticks`, divided by
/// [`ticks_per_instruction`] and rounded to the nearest whole instruction.
///
/// Exactness: QEMU reads the counter as `floor(s * k + x0)` for the k-th instruction after
/// the timer started, with `s` ticks per instruction and a fixed phase `x0`. The rounded
/// difference is therefore exact for every region whenever `s > 2` (e.g. shift 7 on a
/// 25 MHz or 20 MHz board, shift 6 on the 32 MHz an547). For `1 < s <= 2` it is exact only
/// for favourable phases: at `s = 1.6` (mps2-an386, shift 6) it was verified exact for all
/// residues with the current harness; at `s = 1.28` (mps2-an505, shift 6) it is NOT exact,
/// so use shift 7 there. Returns `u64::MAX` when either count is [`TIMER_OVERFLOW`].
pub fn instructions(target: &FirmwareTarget, ticks: u32, overhead_ticks: u32) -> u64 {
    if ticks == TIMER_OVERFLOW || overhead_ticks == TIMER_OVERFLOW {
        return u64::MAX;
    }
    let num = u128::from(target.systick_hz) << target.icount_shift;
    if num == 0 {
        return 0;
    }
    let den: u128 = 1_000_000_000;
    let d = u128::from(ticks.saturating_sub(overhead_ticks));
    // round(d / s) with s = num / den, in integers.
    ((2 * d * den + num) / (2 * num)) as u64
}

/// Parses the text of a GCC `-fstack-usage` file (`file:line:col:function<TAB>bytes<TAB>
/// qualifier` per line) into `(function, bytes, qualifier)`; the qualifier is `static`,
/// `dynamic` or `dynamic,bounded`. Lines that do not parse are skipped.
pub fn parse_stack_usage(su_text: &str) -> Vec<(String, u32, String)> {
    su_text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let location = fields.next()?;
            let bytes = fields.next()?.trim().parse::<u32>().ok()?;
            let qualifier = fields.next()?.trim().to_string();
            let function = location.rsplit(':').next()?.trim();
            (!function.is_empty()).then(|| (function.to_string(), bytes, qualifier))
        })
        .collect()
}

/// Parses the output of `arm-none-eabi-size -A` into [`Sizes`].
pub fn parse_size_output(text: &str) -> Result<Sizes, ToolchainError> {
    let mut sizes = Sizes::default();
    let mut seen_header = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"section") {
            seen_header = true;
            continue;
        }
        if !seen_header || fields.len() < 2 || fields[0] == "Total" {
            continue;
        }
        let bytes: u64 = fields[1].parse().map_err(|_| ToolchainError::Parse {
            what: "arm-none-eabi-size output".into(),
            detail: format!("bad size in line `{line}`"),
        })?;
        let name = fields[0];
        if name.starts_with(".text") {
            sizes.text += bytes;
        } else if name.starts_with(".rodata")
            || name == ".vectors"
            || name.starts_with(".ARM.exidx")
            || name.starts_with(".ARM.extab")
        {
            sizes.rodata += bytes;
        } else if name.starts_with(".data") {
            sizes.data += bytes;
        } else if name.starts_with(".bss") {
            sizes.bss += bytes;
        }
    }
    if !seen_header {
        return Err(ToolchainError::Parse {
            what: "arm-none-eabi-size output".into(),
            detail: format!("no `section size addr` header in:\n{text}"),
        });
    }
    Ok(sizes)
}

/// QEMU arguments to run `elf` on `target` with semihosting output on stdout.
pub fn qemu_args(target: &FirmwareTarget, elf: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-M".into(), target.qemu_machine.clone().into()];
    if let Some(cpu) = &target.qemu_cpu {
        args.push("-cpu".into());
        args.push(cpu.into());
    }
    for a in [
        "-display",
        "none",
        "-serial",
        "null",
        "-monitor",
        "none",
        "-chardev",
        "stdio,id=kpout",
        "-semihosting-config",
        "enable=on,target=native,chardev=kpout",
        "-icount",
    ] {
        args.push(a.into());
    }
    args.push(format!("shift={},sleep=off", target.icount_shift).into());
    args.push("-kernel".into());
    args.push(elf.into());
    args
}

impl Toolchain {
    /// Finds `arm-none-eabi-gcc`, `arm-none-eabi-size`, `qemu-system-arm` and `cargo` on
    /// PATH (cargo also via `$CARGO`); C is compiled with the cross gcc.
    pub fn locate() -> Result<Toolchain, ToolchainError> {
        Toolchain::locate_with(CCompiler::Gcc)
    }

    /// [`Toolchain::locate`], C compiled by `compiler` (for clang, also `clang` on PATH and
    /// the cross gcc's C library headers).
    pub fn locate_with(compiler: CCompiler) -> Result<Toolchain, ToolchainError> {
        let find = |tool: &str, hint: &str| {
            find_on_path(tool).ok_or_else(|| ToolchainError::MissingTool {
                tool: tool.to_string(),
                hint: hint.to_string(),
            })
        };
        let cargo = find_on_path("cargo")
            .or_else(|| std::env::var_os("CARGO").map(PathBuf::from))
            .ok_or_else(|| ToolchainError::MissingTool {
                tool: "cargo".into(),
                hint: "install Rust with rustup (https://rustup.rs)".into(),
            })?;
        let gcc = find("arm-none-eabi-gcc", INSTALL_HINT)?;
        let clang = match compiler {
            CCompiler::Gcc => None,
            CCompiler::Clang => Some(Clang {
                path: find("clang", "run ci/setup, or apt-get install clang")?,
                libc_includes: gcc_libc_includes(&gcc)?,
            }),
        };
        Ok(Toolchain {
            gcc,
            size: find("arm-none-eabi-size", INSTALL_HINT)?,
            qemu: find("qemu-system-arm", INSTALL_HINT)?,
            cargo,
            clang,
        })
    }

    /// Which compiler builds C.
    pub fn compiler(&self) -> CCompiler {
        if self.clang.is_some() {
            CCompiler::Clang
        } else {
            CCompiler::Gcc
        }
    }

    /// A command compiling C for `target`: the chosen compiler with the target's flags (for
    /// clang, `--target=arm-none-eabi` before them and the C library headers after its own).
    /// The caller adds the language, optimisation and file arguments.
    pub fn c_compiler(&self, target: &FirmwareTarget) -> Command {
        match &self.clang {
            None => {
                let mut cmd = Command::new(&self.gcc);
                cmd.args(&target.cflags);
                cmd
            }
            Some(clang) => {
                let mut cmd = Command::new(&clang.path);
                cmd.arg("--target=arm-none-eabi").args(&target.cflags);
                for dir in &clang.libc_includes {
                    cmd.arg("-idirafter").arg(dir);
                }
                cmd
            }
        }
    }

    /// Compiles each C source with [`STRICT_C_FLAGS`], [`FIRMWARE_C_FLAGS`] and the target's flags into `work_dir`, then
    /// links them, `extra_libs` (e.g. a Rust staticlib) and libgcc into `out_elf` with
    /// [`render_linker_script`], `-nostdlib` and `--gc-sections`.
    pub fn compile_firmware(
        &self,
        target: &FirmwareTarget,
        c_sources: &[PathBuf],
        include_dirs: &[PathBuf],
        extra_libs: &[PathBuf],
        work_dir: &Path,
        out_elf: &Path,
    ) -> Result<FirmwareBuild, ToolchainError> {
        create_dir(work_dir)?;
        let mut objects = Vec::with_capacity(c_sources.len());
        let mut stack_usage = Vec::with_capacity(c_sources.len());
        for (index, source) in c_sources.iter().enumerate() {
            let stem = source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "source".into());
            let taken = c_sources[..index]
                .iter()
                .any(|other| other.file_stem() == source.file_stem());
            let base = if taken {
                format!("{stem}.{index}")
            } else {
                stem
            };
            let object = work_dir.join(format!("{base}.o"));
            let mut cmd = self.c_compiler(target);
            cmd.args(STRICT_C_FLAGS).args(FIRMWARE_C_FLAGS);
            for dir in include_dirs {
                cmd.arg("-I").arg(dir);
            }
            cmd.arg("-c").arg(source).arg("-o").arg(&object);
            run_checked(&mut cmd, &format!("compile {}", source.display()))?;
            stack_usage.push(work_dir.join(format!("{base}.su")));
            objects.push(object);
        }

        let linker_script = work_dir.join("link.ld");
        write_file(&linker_script, &render_linker_script(target))?;
        let map = out_elf.with_extension("map");
        if let Some(parent) = out_elf.parent() {
            create_dir(parent)?;
        }
        let mut cmd = Command::new(&self.gcc);
        cmd.args(&target.cflags)
            .args(["-nostdlib", "-Wl,--gc-sections", "-Wl,-z,noexecstack", "-T"])
            .arg(&linker_script)
            .arg(format!("-Wl,-Map={}", map.display()))
            .arg("-o")
            .arg(out_elf)
            .args(&objects)
            .args(extra_libs)
            .arg("-lgcc");
        match run_checked(&mut cmd, &format!("link {}", out_elf.display())) {
            Err(ToolchainError::CommandFailed {
                command, stderr, ..
            }) if stderr.contains(PANIC_SENTINEL) => {
                return Err(ToolchainError::PanicPathReachable { command, stderr })
            }
            other => other?,
        };
        Ok(FirmwareBuild {
            elf: out_elf.to_path_buf(),
            objects,
            stack_usage,
            linker_script,
            map,
        })
    }

    /// Builds `firmware` in `dir` with [`Toolchain::compile_firmware`]: the ELF at
    /// `dir/NAME.elf`, its objects, stack-usage files and linker script in `dir/NAME/`.
    pub fn build_firmware(
        &self,
        target: &FirmwareTarget,
        firmware: &Firmware,
        dir: &Path,
    ) -> Result<FirmwareBuild, ToolchainError> {
        self.compile_firmware(
            target,
            &firmware.c_sources,
            &firmware.include_dirs,
            &firmware.libs,
            &dir.join(&firmware.name),
            &dir.join(format!("{}.elf", firmware.name)),
        )
    }

    /// Builds `firmware`, then `baseline` (the same firmware without the code being measured),
    /// both in `dir` as [`Toolchain::build_firmware`] does (so their names must differ), and
    /// subtracts the baseline's flash and RAM: what remains is what that code costs. A failed
    /// build (such as a link that overflows the target's memory) is returned as the toolchain
    /// reported it, so that callers can tell "does not fit" from a broken build.
    pub fn build_with_baseline(
        &self,
        target: &FirmwareTarget,
        firmware: &Firmware,
        baseline: &Firmware,
        dir: &Path,
    ) -> Result<FirmwareWithBaseline, ToolchainError> {
        let firmware = self.build_firmware(target, firmware, dir)?;
        let baseline = self.build_firmware(target, baseline, dir)?;
        let with = self.section_sizes(&firmware.elf)?;
        let without = self.section_sizes(&baseline.elf)?;
        Ok(FirmwareWithBaseline {
            firmware,
            baseline,
            added_flash: with.flash().saturating_sub(without.flash()),
            added_ram: with.ram().saturating_sub(without.ram()),
        })
    }

    /// Builds the Rust staticlib crate in `shim_dir` (normally written by
    /// [`write_rust_shim`]) for the target's triple with the target's RUSTFLAGS; returns the
    /// path of the `.a`.
    pub fn build_rust_staticlib(
        &self,
        target: &FirmwareTarget,
        shim_dir: &Path,
        target_dir: &Path,
    ) -> Result<PathBuf, ToolchainError> {
        let triple = target
            .rust_triple
            .as_deref()
            .ok_or(ToolchainError::NoRustTriple)?;
        let manifest = shim_dir.join("Cargo.toml");
        let manifest_text = std::fs::read_to_string(&manifest)
            .map_err(|e| ToolchainError::io(format!("read {}", manifest.display()), e))?;
        let package: toml::Table =
            toml::from_str(&manifest_text).map_err(|e| ToolchainError::Parse {
                what: manifest.display().to_string(),
                detail: e.to_string(),
            })?;
        let name = package
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| ToolchainError::Parse {
                what: manifest.display().to_string(),
                detail: "no [package] name".into(),
            })?
            .replace('-', "_");

        let mut cmd = Command::new(&self.cargo);
        cmd.args(["build", "--release", "--quiet", "--target", triple])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir)
            // The target's flags replace whatever the calling environment set.
            .env("CARGO_ENCODED_RUSTFLAGS", target.rustflags.join("\u{1f}"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET");
        match run_checked(&mut cmd, "cargo build of the Rust shim") {
            Err(ToolchainError::CommandFailed {
                step,
                command,
                status,
                mut stderr,
            }) => {
                if stderr.contains("may not be installed") || stderr.contains("can't find crate") {
                    let _ = write!(stderr, "\nhint: rustup target add {triple}");
                }
                return Err(ToolchainError::CommandFailed {
                    step,
                    command,
                    status,
                    stderr,
                });
            }
            other => other?,
        };
        let lib = target_dir
            .join(triple)
            .join("release")
            .join(format!("lib{name}.a"));
        if !lib.is_file() {
            return Err(ToolchainError::Parse {
                what: "cargo build output".into(),
                detail: format!("expected {} to exist", lib.display()),
            });
        }
        Ok(lib)
    }

    /// Runs `elf` under QEMU ([`qemu_args`]) with stdin closed, killing it after `timeout`.
    pub fn run_qemu(
        &self,
        target: &FirmwareTarget,
        elf: &Path,
        timeout: Duration,
    ) -> Result<QemuRun, ToolchainError> {
        self.run_qemu_with(target, elf, &[], timeout)
    }

    /// [`Toolchain::run_qemu`] with extra QEMU arguments (e.g. a `-plugin`).
    pub fn run_qemu_with(
        &self,
        target: &FirmwareTarget,
        elf: &Path,
        extra: &[OsString],
        timeout: Duration,
    ) -> Result<QemuRun, ToolchainError> {
        let mut child = Command::new(&self.qemu)
            .args(extra)
            .args(qemu_args(target, elf))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ToolchainError::io(format!("start {}", self.qemu.display()), e))?;
        let stdout = spawn_reader(child.stdout.take());
        let stderr = spawn_reader(child.stderr.take());
        let (status, timed_out) = wait_with_deadline(&mut child, timeout)
            .map_err(|e| ToolchainError::io(format!("wait for {}", self.qemu.display()), e))?;
        Ok(QemuRun {
            exit_code: status.code().unwrap_or(-1),
            output: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            timed_out,
        })
    }

    /// Address of the code symbol `symbol` in `elf`, Thumb bit cleared (arm-none-eabi-nm).
    pub fn symbol_address(&self, elf: &Path, symbol: &str) -> Result<u32, ToolchainError> {
        let mut cmd = Command::new(self.gcc.with_file_name("arm-none-eabi-nm"));
        cmd.arg(elf);
        let output = run_checked(&mut cmd, &format!("nm {}", elf.display()))?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == symbol)
                    .then(|| u32::from_str_radix(f[0], 16).ok())
                    .flatten()
            })
            .map(|a| a & !1)
            .ok_or_else(|| ToolchainError::Parse {
                what: format!("the symbols of {}", elf.display()),
                detail: format!("no symbol `{symbol}`"),
            })
    }

    /// Section sizes of an object or ELF file, from `arm-none-eabi-size -A`.
    pub fn section_sizes(&self, object_or_elf: &Path) -> Result<Sizes, ToolchainError> {
        let mut cmd = Command::new(&self.size);
        cmd.arg("-A").arg(object_or_elf);
        let output = run_checked(&mut cmd, &format!("size {}", object_or_elf.display()))?;
        parse_size_output(&String::from_utf8_lossy(&output.stdout))
    }
}

/// The folders of the cross gcc's own `#include <...>` search list that hold the C library
/// (newlib's `string.h`, ...), as `gcc -E -v` prints them; gcc's private folders (its
/// `stdint.h`, `arm_mve.h`, under `lib/gcc/`) are left to clang's equivalents. None when the
/// toolchain has no C library installed (kpgen's firmware and generated code need none).
fn gcc_libc_includes(gcc: &Path) -> Result<Vec<PathBuf>, ToolchainError> {
    let mut cmd = Command::new(gcc);
    cmd.args(["-xc", "-E", "-v", "-o"])
        .arg(if cfg!(windows) { "NUL" } else { "/dev/null" })
        .arg("-")
        .stdin(Stdio::null());
    let output = run_checked(&mut cmd, "list the include folders of arm-none-eabi-gcc")?;
    Ok(parse_include_search(&String::from_utf8_lossy(
        &output.stderr,
    )))
}

/// The folders of a `gcc -E -v` search list (between `#include <...> search starts here:` and
/// `End of search list.`) holding `string.h` outside gcc's private `lib/gcc/` tree.
fn parse_include_search(text: &str) -> Vec<PathBuf> {
    text.lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list"))
        .map(|l| PathBuf::from(l.trim()))
        .filter(|d| {
            let private = d.components().any(|c| c.as_os_str() == "gcc")
                && d.components().any(|c| c.as_os_str() == "lib");
            !private && d.join("string.h").is_file()
        })
        .map(|d| d.canonicalize().unwrap_or(d))
        .collect()
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

fn create_dir(dir: &Path) -> Result<(), ToolchainError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ToolchainError::io(format!("create {}", dir.display()), e))
}

/// Writes `contents` to `path`, creating its folder.
pub(crate) fn write_file(path: &Path, contents: &str) -> Result<(), ToolchainError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(path, contents)
        .map_err(|e| ToolchainError::io(format!("write {}", path.display()), e))
}

/// `s` as a quoted TOML string, every character escaped as TOML requires.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The command line as a shell would need it typed.
fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=+./:,@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` to completion; a failure carries the command line and the tool's output.
pub(crate) fn run_checked(cmd: &mut Command, step: &str) -> Result<Output, ToolchainError> {
    let command = command_line(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ToolchainError::io(format!("{step}: start `{command}`"), e))?;
    if output.status.success() {
        return Ok(output);
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        stderr.push_str("\n[stdout]\n");
        stderr.push_str(&stdout);
    }
    Err(ToolchainError::CommandFailed {
        step: step.to_string(),
        command,
        status: output.status.to_string(),
        stderr,
    })
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> std::io::Result<(ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            // The child may have exited in between; killing it then is harmless.
            let _ = child.kill();
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m4() -> FirmwareTarget {
        FirmwareTarget {
            cflags: vec!["-mcpu=cortex-m4".into()],
            qemu_machine: "mps2-an386".into(),
            qemu_cpu: None,
            systick_hz: 25_000_000,
            icount_shift: 6,
            flash_origin: 0,
            flash_size: 0x40_0000,
            ram_origin: 0x2000_0000,
            ram_size: 0x40_0000,
            bulk: None,
            rust_triple: Some("thumbv7em-none-eabihf".into()),
            rustflags: vec![],
        }
    }

    #[test]
    fn instruction_counts_are_exact_at_1_6_ticks_per_instruction() {
        let t = m4();
        assert!((ticks_per_instruction(&t) - 1.6).abs() < 1e-12);
        // Values read under QEMU 7.2: n nops after an empty region of 5 ticks.
        for (n, ticks) in [(0, 5), (1, 6), (2, 8), (3, 10), (4, 11), (7, 16), (10, 21)] {
            assert_eq!(instructions(&t, ticks, 5), n, "{ticks} ticks");
        }
        // mps3-an547 (32 MHz, shift 6: 2.048 ticks per instruction), empty region 7 ticks.
        let an547 = FirmwareTarget {
            systick_hz: 32_000_000,
            ..m4()
        };
        for (n, ticks) in [(0, 7), (1, 9), (2, 11), (10, 27), (1000, 2055)] {
            assert_eq!(instructions(&an547, ticks, 7), n, "{ticks} ticks");
        }
        assert_eq!(instructions(&t, 1605, 5), 1000);
        assert_eq!(instructions(&t, TIMER_OVERFLOW, 5), u64::MAX);
        assert!((ticks_to_instructions(&t, 16) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn stack_usage_lines_parse() {
        let su = "kp_harness.c:229:6:kp_put_u32\t24\tstatic\n\
                  model.c:10:1:kp_infer\t112\tdynamic,bounded\n\
                  garbage\n";
        assert_eq!(
            parse_stack_usage(su),
            vec![
                ("kp_put_u32".to_string(), 24, "static".to_string()),
                ("kp_infer".to_string(), 112, "dynamic,bounded".to_string()),
            ]
        );
    }

    #[test]
    fn size_output_sums_by_kind() {
        let text = "fw.elf  :\nsection           size        addr\n\
                    .vectors           192           0\n.text             3412         192\n\
                    .text.foo            8           0\n.rodata            368        3604\n\
                    .data                4   536870912\n.bss                16   536870916\n\
                    .comment            38           0\nTotal             4062\n";
        let s = parse_size_output(text).unwrap();
        assert_eq!(
            s,
            Sizes {
                text: 3420,
                rodata: 560,
                data: 4,
                bss: 16
            }
        );
        assert_eq!(s.flash(), 3984);
        assert_eq!(s.ram(), 20);
        assert!(parse_size_output("nonsense").is_err());
    }

    #[test]
    fn the_c_library_folders_are_read_from_gccs_search_list() {
        let dir = tempfile::tempdir().unwrap();
        let newlib = dir.path().join("arm-none-eabi/include");
        let private = dir.path().join("lib/gcc/arm-none-eabi/12/include");
        let empty = dir.path().join("empty");
        for d in [&newlib, &private, &empty] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(newlib.join("string.h"), "").unwrap();
        std::fs::write(private.join("string.h"), "").unwrap();
        let text = format!(
            "ignoring nonexistent directory \"/nowhere\"\n#include \"...\" search starts here:\n\
             #include <...> search starts here:\n {}\n {}\n {}\nEnd of search list.\n {}\n",
            private.display(),
            newlib.display(),
            empty.display(),
            dir.path().join("after").display()
        );
        assert_eq!(
            parse_include_search(&text),
            vec![newlib.canonicalize().unwrap()]
        );
        assert!(parse_include_search("no list here").is_empty());
    }

    #[test]
    fn linker_script_has_no_placeholders_left() {
        let script = render_linker_script(&m4());
        assert!(!script.contains('@'), "{script}");
        assert!(script.contains("ORIGIN = 0x20000000, LENGTH = 0x400000"));
        assert!(script.contains("KEEP(*(.vectors))"));
        assert_eq!(stack_size(&m4()), 0x10000);
    }

    #[test]
    fn runtime_files_are_all_shipped() {
        let names: Vec<_> = runtime_files().iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&HARNESS_C));
        assert!(names.contains(&"rust_shim/src/lib.rs"));
        let shim = runtime_files()
            .iter()
            .find(|(n, _)| *n == "rust_shim/src/lib.rs")
            .unwrap()
            .1;
        assert!(shim.contains(PANIC_SENTINEL));
    }

    #[test]
    fn command_lines_are_quoted() {
        let mut cmd = Command::new("gcc");
        cmd.args(["-O2", "a b.c", "it's"]);
        assert_eq!(command_line(&cmd), r"gcc -O2 'a b.c' 'it'\''s'");
    }
}
