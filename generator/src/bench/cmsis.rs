//! CMSIS-DSP, the dense baseline: its sources are fetched from PyPI at benchmark time (the sdist
//! of the `cmsisdsp` package, pinned by version and SHA-256, never committed) and its
//! matrix-vector kernels compiled per core with the DSP, Helium and loop-unroll paths the core
//! allows.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{run_checked, FirmwareTarget, Toolchain};
use crate::spec::Precision;

pub const VERSION: &str = "1.10.3";
/// The pinned sdist: `pip download` is given this as a hash-checked requirement, and the
/// archive is checked again here before it is unpacked.
const SHA256: &str = "307d32298faa7c58db912851027fce35f886fec7eb1a27c4b309ce1a97f47519";
/// The Python that runs `pip download` (`KPGEN_PYTHON` overrides).
const PYTHON: &str = "python3";

/// Stand-ins for the headers CMSIS-DSP expects from CMSIS-Core and a C library, which no
/// reachable registry ships (see the comment in each).
const SHIM: &[(&str, &str)] = &[
    (
        "cmsis_compiler.h",
        include_str!("../../../templates/bench/cmsis/cmsis_compiler.h"),
    ),
    (
        "arm_dsp_config.h",
        include_str!("../../../templates/bench/cmsis/arm_dsp_config.h"),
    ),
    (
        "string.h",
        include_str!("../../../templates/bench/cmsis/string.h"),
    ),
    (
        "math.h",
        include_str!("../../../templates/bench/cmsis/math.h"),
    ),
];

/// The CMSIS-DSP function benchmarked for a precision, and its element type.
pub fn kernel(precision: Precision) -> (&'static str, &'static str, &'static str) {
    match precision {
        Precision::F32 => (
            "arm_mat_vec_mult_f32",
            "float32_t",
            "arm_matrix_instance_f32",
        ),
        Precision::Int16 => ("arm_mat_vec_mult_q15", "q15_t", "arm_matrix_instance_q15"),
        Precision::Int8 => ("arm_mat_vec_mult_q7", "q7_t", "arm_matrix_instance_q7"),
    }
}

/// An unpacked CMSIS-DSP source tree.
#[derive(Debug, Clone)]
pub struct CmsisDsp {
    pub root: PathBuf,
    shim: PathBuf,
}

fn io_err(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

/// The project's checked runner ([`run_checked`]); returns stdout.
fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    run_checked(cmd, what)
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .map_err(|e| e.to_string())
}

/// Writes the header stand-ins into `dir` (CMSIS-NN's build uses them too).
pub fn write_shim(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create the shim folder", e))?;
    for (name, text) in SHIM {
        std::fs::write(dir.join(name), text).map_err(|e| io_err("write the shim", e))?;
    }
    Ok(())
}

impl CmsisDsp {
    /// Uses the source tree at `root` (a CMSIS-DSP checkout or unpacked sdist).
    pub fn at(root: &Path, cache: &Path) -> Result<CmsisDsp, String> {
        let probe = root.join("Source/MatrixFunctions/arm_mat_vec_mult_f32.c");
        if !probe.is_file() {
            return Err(format!(
                "{} is not a CMSIS-DSP source tree (no {})",
                root.display(),
                probe.display()
            ));
        }
        let shim = cache.join("cmsis-shim");
        write_shim(&shim)?;
        Ok(CmsisDsp {
            root: root.to_owned(),
            shim,
        })
    }

    /// Fetches (once, with `pip download` of the pinned sdist, the way Python users get it)
    /// and unpacks CMSIS-DSP under `cache`. The archive and the unpacked tree are kept there.
    pub fn fetch(cache: &Path) -> Result<CmsisDsp, String> {
        let root = cache.join(format!("cmsisdsp-{VERSION}"));
        if !root.join("Source").is_dir() {
            std::fs::create_dir_all(cache).map_err(|e| io_err("create the cache folder", e))?;
            let archive = cache.join(format!("cmsisdsp-{VERSION}.tar.gz"));
            if !archive.is_file() {
                eprintln!("kpgen bench: fetching CMSIS-DSP {VERSION} (pip download cmsisdsp)");
                pip_download(cache).map_err(|e| {
                    format!(
                        "cannot fetch CMSIS-DSP {VERSION} (the PyPI sdist `cmsisdsp`): {e}\n\
                         give a CMSIS-DSP source tree you have with --cmsis-dsp DIR, \
                         or measure kpgen alone with --no-cmsis"
                    )
                })?;
            }
            let sum = run(
                Command::new("sha256sum").arg(&archive),
                "checksum CMSIS-DSP",
            )?;
            if !sum.starts_with(SHA256) {
                let _ = std::fs::remove_file(&archive);
                return Err(format!(
                    "the CMSIS-DSP download has SHA-256 {} instead of {SHA256}",
                    sum.split_whitespace().next().unwrap_or("?")
                ));
            }
            run(
                Command::new("tar")
                    .arg("xzf")
                    .arg(&archive)
                    .arg("-C")
                    .arg(cache),
                "unpack CMSIS-DSP",
            )?;
        }
        CmsisDsp::at(&root, cache)
    }

    /// Compiles the precision's kernel for `target` into `work_dir`; returns the object.
    /// Flags: the target's, -O2 (as kpgen's C), ARM_MATH_LOOPUNROLL; the DSP and Helium paths
    /// follow the core's `__ARM_FEATURE_DSP` / `__ARM_FEATURE_MVE`, as in CMSIS builds.
    pub fn compile(
        &self,
        toolchain: &Toolchain,
        target: &FirmwareTarget,
        precision: Precision,
        work_dir: &Path,
    ) -> Result<PathBuf, String> {
        let (func, _, _) = kernel(precision);
        let source = self.root.join(format!("Source/MatrixFunctions/{func}.c"));
        let object = work_dir.join(format!("{func}.o"));
        self.compile_source(toolchain, target, &source, &[], &object)?;
        Ok(object)
    }

    /// Compiles one C source that uses CMSIS-DSP ([`CmsisDsp::cflags`] plus `extra`).
    pub fn compile_source(
        &self,
        toolchain: &Toolchain,
        target: &FirmwareTarget,
        source: &Path,
        extra: &[String],
        object: &Path,
    ) -> Result<(), String> {
        if let Some(dir) = object.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create the work folder", e))?;
        }
        run(
            toolchain
                .c_compiler(target)
                .args(self.cflags())
                .args(extra)
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(object),
            &format!("compile {}", source.display()),
        )
        .map(|_| ())
    }

    /// Flags for CMSIS-DSP sources and for code including its headers.
    pub fn cflags(&self) -> Vec<String> {
        vec![
            "-std=c99".into(),
            "-O2".into(),
            "-ffreestanding".into(),
            "-ffunction-sections".into(),
            "-DARM_MATH_LOOPUNROLL".into(),
            // Let the baseline fuse multiply-adds (VFMA) as kpgen's kernels do: its best case.
            "-ffp-contract=fast".into(),
            format!("-I{}", self.shim.display()),
            format!("-I{}", self.root.join("Include").display()),
            format!("-I{}", self.root.join("PrivateInclude").display()),
        ]
    }
}

/// `pip download` of the pinned `cmsisdsp` sdist into `dir`: no dependencies, the source
/// distribution only (its build requirements come as wheels, since pip reads the sdist's
/// metadata), the hash checked by pip itself (`--require-hashes`).
fn pip_download(dir: &Path) -> Result<(), String> {
    let python = std::env::var_os("KPGEN_PYTHON").unwrap_or_else(|| PYTHON.into());
    let requirements = dir.join("cmsisdsp-requirements.txt");
    std::fs::write(
        &requirements,
        format!("cmsisdsp=={VERSION} --hash=sha256:{SHA256}\n"),
    )
    .map_err(|e| io_err("write the pip requirements", e))?;
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args([
            "--no-deps",
            "--no-binary",
            "cmsisdsp",
            "--require-hashes",
            "-r",
        ])
        .arg(&requirements)
        .arg("-d")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot start `{} -m pip` ({e}); set KPGEN_PYTHON to a Python with pip",
                python.to_string_lossy()
            )
        })?;
    if out.status.success() {
        return Ok(());
    }
    // pip's own report ends with the reason; its last lines are enough.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
    Err(format!(
        "`{} -m pip download cmsisdsp=={VERSION}` failed ({}):\n  {tail}",
        python.to_string_lossy(),
        out.status
    ))
}
