//! The command line's arguments (clap derive): one struct per verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use kpgen::spec::Lang;

#[derive(Parser)]
#[command(
    name = "kpgen",
    version,
    about = "Generates verified C and no_std Rust for Kronecker-product compressed RNNs on Cortex-M"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate C and Rust sources and report.json for a model spec.
    Build(BuildArgs),
    /// Build, run under QEMU against the float reference, and measure the cost.
    Test(TestArgs),
    /// Print the Kronecker factorization of an M x N matrix with the fewest parameters.
    Shapes(ShapesArgs),
    /// Benchmark kpgen's kernels against CMSIS-DSP's dense kernels under QEMU.
    Bench(BenchArgs),
    /// Print the intermediate form after one stage (spec, model, plan, quant, lower).
    Explain(ExplainArgs),
    /// List the built-in targets.
    Targets,
}

#[derive(Args)]
pub struct BuildOptions {
    /// The YAML model spec.
    pub spec: PathBuf,
    /// A built-in target (see `kpgen targets`) or a target .toml file.
    #[arg(long, default_value = "cortex-m4")]
    pub target: String,
    /// Flash budget in bytes, replacing the target's (the model's estimated flash must fit).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_bytes)]
    pub flash_budget: Option<u64>,
    /// RAM budget in bytes, replacing the target's (the model's state must fit).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_bytes)]
    pub ram_budget: Option<u64>,
    /// Arithmetic of the generated code, replacing the spec's `precision` (default f32).
    #[arg(long, value_enum)]
    pub precision: Option<kpgen::spec::Precision>,
    /// How f32 code evaluates sigmoid and tanh, replacing the spec's `activations` (default
    /// table: interpolated, absolute error below 1e-4; exact: polynomial exp and a division).
    #[arg(long, value_enum)]
    pub activations: Option<kpgen::spec::Activations>,
    /// What the plan optimizes for, replacing the spec's `optimize` (default speed; size:
    /// loops instead of unrolled factors, no register tiles, CSR overlays).
    #[arg(long, value_enum)]
    pub optimize: Option<kpgen::spec::Optimize>,
    /// Calibration inputs for int8/int16 (float .npy, sequences x steps x features), replacing
    /// the spec's `calibration`.
    #[arg(long, value_name = "FILE.npy")]
    pub calibrate: Option<PathBuf>,
}

#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub build: BuildOptions,
    /// Output directory: gets c/, rust/ and report.json. Replaced as a whole, never half-written.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Also write a Make-syntax dependency file: the generated C sources depend on the spec
    /// and every file it reads (for CMake's DEPFILE, Make and Ninja).
    #[arg(long, value_name = "FILE.d")]
    pub depfile: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub build: BuildOptions,
    /// The stage whose result is shown.
    #[arg(long, value_enum, default_value = "plan")]
    pub stage: kpgen::explain::Stage,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub build: BuildOptions,
    /// Also write the generated sources and report.json (with measured costs) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Input sequences: float .npy of shape sequences x steps x features.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Valid steps per sequence (int .npy, e.g. test_len.npy): shorter sequences run
    /// reset + step for their own length.
    #[arg(long, requires = "inputs")]
    pub lengths: Option<PathBuf>,
    /// Class labels per sequence (int .npy, e.g. test_y.npy): report accuracy.
    #[arg(long, requires = "inputs")]
    pub labels: Option<PathBuf>,
    /// Number of seeded random sequences when --inputs is not given.
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Seed of the random sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pass when |y - ref| <= TOL * max(1, |ref|) for every output.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Languages to test (repeatable); default both.
    #[arg(long = "lang", value_enum)]
    pub langs: Vec<Lang>,
    /// Skip building and measuring the dense expansion of the model.
    #[arg(long)]
    pub no_dense: bool,
    /// Run natively with this C compiler instead of QEMU (no cost figures).
    #[arg(long, value_name = "CC")]
    pub host: Option<String>,
    /// The compiler of the QEMU firmware's C: the cross gcc, or clang
    /// (`--target=arm-none-eabi`; the cross gcc still links).
    #[arg(long, value_enum, default_value_t = kpgen::qemu::CCompiler::Gcc, conflicts_with = "host")]
    pub cc: kpgen::qemu::CCompiler,
    /// Keep the firmware build directory here (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds each firmware may run in QEMU.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Run every sequence through reset + step and compare the output after every valid step
    /// (not only the last) with the references.
    #[arg(long)]
    pub every_step: bool,
    /// Write what the generated code computed, and the float reference, as .npy files into this
    /// folder (VARIANT-LANG.npy, VARIANT-LANG-codes.npy for int8/int16, reference.npy); the
    /// folder follows --out's rules (replaced only when empty or kpgen's own).
    #[arg(long, value_name = "DIR")]
    pub save_outputs: Option<PathBuf>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// The standard set: 256x256, 512x512 and 2600x1300 KP layers, plain and 2% doped.
    #[arg(long)]
    pub standard: bool,
    /// A synthetic KP layer `MxN*PxQ[+D%]` (A is MxN, B is PxQ, D percent doped); repeatable.
    #[arg(long = "layer", value_name = "SHAPE")]
    pub layers: Vec<String>,
    /// Benchmark every layer of this model spec (its matrices side by side); repeatable.
    #[arg(long = "spec", value_name = "SPEC.yaml")]
    pub specs: Vec<PathBuf>,
    /// Targets (repeatable); default cortex-m0, -m4, -m7, -m33, -m55.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Precisions (repeatable); default f32 (FPU cores only), int16, int8.
    #[arg(long = "precision", value_enum)]
    pub precisions: Vec<kpgen::spec::Precision>,
    /// Where CMSIS-DSP's sources are: default, fetch the pinned PyPI sdist into the work dir.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cmsis")]
    pub cmsis_dsp: Option<PathBuf>,
    /// Measure kpgen only.
    #[arg(long)]
    pub no_cmsis: bool,
    /// Model rows instead of kernel rows for the --spec files (and --lstm shapes): per time
    /// step of each LSTM/GRU layer, kpgen's layer and its dense expansion (int8 and int16).
    #[arg(long)]
    pub model: bool,
    /// With --model: also a dense LSTM of this shape `INPUTSxUNITS` with seeded weights over
    /// 100 steps (e.g. `40x128`); repeatable.
    #[arg(long = "lstm", value_name = "IxH", requires = "model")]
    pub lstms: Vec<String>,
    /// A CMSIS-NN source tree (Include/, Source/): adds its arm_lstm_unidirectional_s8/_s16
    /// beside kpgen in the model rows.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub cmsis_nn: Option<PathBuf>,
    /// The compiler of every measured firmware's C (kpgen's, CMSIS-DSP's and CMSIS-NN's): the
    /// cross gcc, or clang (`--target=arm-none-eabi`; the cross gcc still links).
    #[arg(long, value_enum, default_value_t = kpgen::qemu::CCompiler::Gcc)]
    pub cc: kpgen::qemu::CCompiler,
    /// Build and cache folder.
    #[arg(long, default_value = "target/kpgen-bench")]
    pub work_dir: PathBuf,
    /// Parallel jobs (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write all measurements as JSON (the format of --check's baseline).
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    /// Write the markdown table here (it is always printed); in a file holding the lines
    /// `<!-- bench:begin ... -->` and `<!-- bench:end -->` only what lies between them is replaced.
    #[arg(long, value_name = "FILE.md")]
    pub markdown: Option<PathBuf>,
    /// Fail (exit 1) when an instruction count exceeds this baseline's by more than 2%.
    #[arg(long, value_name = "BASELINE.json")]
    pub check: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShapesArgs {
    /// Rows of the matrix.
    pub m: usize,
    /// Columns of the matrix.
    pub n: usize,
    /// List the T best factorizations.
    #[arg(long, default_value_t = 1, value_name = "T")]
    pub top: usize,
    /// Number of Kronecker factors, 2 to 6 (W = F1 ⊗ F2 ⊗ … ⊗ FK).
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub factors: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A byte count: a whole number, optionally with a K or M suffix (1024, 1024²), or hex `0x…`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let expected = "expected a number of bytes: a whole number such as 65536, 64K or 1M";
    let t = text.trim();
    let (digits, scale) = match t.strip_suffix(['K', 'k']) {
        Some(d) => (d, 1024),
        None => match t.strip_suffix(['M', 'm']) {
            Some(d) => (d, 1024 * 1024),
            None => (t, 1),
        },
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    }
    .map_err(|_| expected.to_owned())?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text} is too large: {expected}"))
}
