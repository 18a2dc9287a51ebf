//! The `kpgen` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use kpgen::diagnostic::{Diagnostic, Diagnostics, Place};
use kpgen::harness::{self, Lang, LangResult, Platform, RunOptions, TestInputs, Tolerance};
use kpgen::{shapes, target};

/// Writes a line to stderr, control characters other than newlines escaped; a closed or full
/// stderr is not a reason to panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = kpgen::diagnostic::shown_lines(&format!($($arg)*));
        let _ = writeln!(std::io::stderr(), "{text}");
    }};
}

/// Writes a line to stdout; a closed pipe (`kpgen … | head`) is not a reason to panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Progress on stderr: one line per event, and on a terminal, once the run has taken two
/// seconds, a bar below them (steps done of all, elapsed, estimate).
struct ProgressView {
    bar: indicatif::ProgressBar,
    started: Instant,
    terminal: bool,
    shown: std::sync::atomic::AtomicBool,
}

impl ProgressView {
    fn new(what: &str) -> Self {
        use std::io::IsTerminal as _;
        let bar = indicatif::ProgressBar::hidden();
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} in {elapsed}, about {eta} to go",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        ProgressView {
            bar,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn show(&self, event: kpgen::progress::Progress) {
        use kpgen::progress::Progress;
        use std::sync::atomic::Ordering;
        let line = match event {
            Progress::Total(n) => {
                self.bar.set_length(n as u64);
                None
            }
            Progress::Done(line) => {
                self.bar.inc(1);
                Some(line)
            }
            Progress::Note(line) => Some(line),
        };
        if self.terminal
            && self.started.elapsed() > Duration::from_secs(2)
            && !self.shown.swap(true, Ordering::SeqCst)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(250));
        }
        if let Some(line) = line {
            let line = kpgen::diagnostic::shown_lines(line);
            if self.shown.load(Ordering::SeqCst) {
                self.bar.println(line);
            } else {
                say!("{line}");
            }
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What `kpgen test` measured, as the HTML report shows it.
fn measured_of(suite: &harness::Suite) -> kpgen::report_html::Measured {
    kpgen::report_html::Measured {
        platform: suite.platform.clone(),
        sequences: suite.sequences,
        reference_accuracy: suite.reference_accuracy,
        rows: suite
            .results
            .iter()
            .map(|r| kpgen::report_html::MeasuredRow {
                variant: r.variant.to_owned(),
                lang: r.lang.as_str().to_owned(),
                pass: r.comparison.pass,
                max_abs_error: r.comparison.max_abs_error,
                accuracy: r.comparison.accuracy,
                instructions_per_step: r.cost.as_ref().map(|c| c.instructions_per_step),
                flash_bytes: r.cost.as_ref().map(|c| c.flash_bytes),
                ram_bytes: r.cost.as_ref().map(|c| c.ram_bytes),
                stack_bytes: r.cost.as_ref().map(|c| c.stack_bytes),
            })
            .collect(),
        notes: suite.notes.clone(),
    }
}

/// A path as printed: a newline or escape sequence in it cannot fake a line of kpgen's.
fn shown_path(p: &Path) -> String {
    kpgen::diagnostic::shown(&p.display().to_string())
}

/// Exit codes, documented in README.md.
const EXIT_TEST_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kpgen",
    version,
    about = "Generates verified C and no_std Rust for Kronecker-product compressed RNNs on Cortex-M"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate C and Rust sources and report.json for a model spec.
    Build(BuildArgs),
    /// Build, run under QEMU against the float reference, and measure the cost.
    Test(TestArgs),
    /// Print the Kronecker factorization of an M x N matrix with the fewest parameters.
    Shapes(ShapesArgs),
    /// Benchmark kpgen's kernels against CMSIS-DSP's dense kernels under QEMU.
    Bench(BenchArgs),
    /// List the built-in targets.
    Targets,
}

#[derive(Args)]
struct BuildOptions {
    /// The YAML model spec.
    spec: PathBuf,
    /// A built-in target (see `kpgen targets`) or a target .toml file.
    #[arg(long, default_value = "cortex-m4")]
    target: String,
    /// Flash budget in bytes, replacing the target's (the model's estimated flash must fit).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_bytes)]
    flash_budget: Option<u64>,
    /// RAM budget in bytes, replacing the target's (the model's state must fit).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_bytes)]
    ram_budget: Option<u64>,
    /// Arithmetic of the generated code, replacing the spec's `precision` (default f32).
    #[arg(long, value_enum)]
    precision: Option<kpgen::spec::Precision>,
    /// Calibration inputs for int8/int16 (float .npy, sequences x steps x features), replacing
    /// the spec's `calibration`.
    #[arg(long, value_name = "FILE.npy")]
    calibrate: Option<PathBuf>,
}

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    build: BuildOptions,
    /// Output directory: gets c/, rust/ and report.json. Replaced as a whole, never half-written.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Also write a Make-syntax dependency file: the generated C sources depend on the spec
    /// and every file it reads (for CMake's DEPFILE, Make and Ninja).
    #[arg(long, value_name = "FILE.d")]
    depfile: Option<PathBuf>,
}

#[derive(Args)]
struct TestArgs {
    #[command(flatten)]
    build: BuildOptions,
    /// Also write the generated sources and report.json (with measured costs) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Input sequences: float .npy of shape sequences x steps x features.
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Valid steps per sequence (int .npy, e.g. test_len.npy): shorter sequences run
    /// reset + step for their own length.
    #[arg(long, requires = "inputs")]
    lengths: Option<PathBuf>,
    /// Class labels per sequence (int .npy, e.g. test_y.npy): report accuracy.
    #[arg(long, requires = "inputs")]
    labels: Option<PathBuf>,
    /// Number of seeded random sequences when --inputs is not given.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Seed of the random sequences.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pass when |y - ref| <= TOL * max(1, |ref|) for every output.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// Languages to test (repeatable); default both.
    #[arg(long = "lang", value_enum)]
    langs: Vec<Lang>,
    /// Skip building and measuring the dense expansion of the model.
    #[arg(long)]
    no_dense: bool,
    /// Run natively with this C compiler instead of QEMU (no cost figures).
    #[arg(long, value_name = "CC")]
    host: Option<String>,
    /// Keep the firmware build directory here (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds each firmware may run in QEMU.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Args)]
struct BenchArgs {
    /// The standard set: 256x256, 512x512 and 2600x1300 KP layers, plain and 2% doped.
    #[arg(long)]
    standard: bool,
    /// A synthetic KP layer `MxN*PxQ[+D%]` (A is MxN, B is PxQ, D percent doped); repeatable.
    #[arg(long = "layer", value_name = "SHAPE")]
    layers: Vec<String>,
    /// Benchmark every layer of this model spec (its matrices side by side); repeatable.
    #[arg(long = "spec", value_name = "SPEC.yaml")]
    specs: Vec<PathBuf>,
    /// Targets (repeatable); default cortex-m0, -m4, -m7, -m33, -m55.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Precisions (repeatable); default f32 (FPU cores only), int16, int8.
    #[arg(long = "precision", value_enum)]
    precisions: Vec<kpgen::spec::Precision>,
    /// Where CMSIS-DSP's sources are: default, fetch the pinned PyPI sdist into the work dir.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cmsis")]
    cmsis_dsp: Option<PathBuf>,
    /// Measure kpgen only.
    #[arg(long)]
    no_cmsis: bool,
    /// Build and cache folder.
    #[arg(long, default_value = "target/kpgen-bench")]
    work_dir: PathBuf,
    /// Parallel jobs (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Write all measurements as JSON (the format of --check's baseline).
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Write the markdown table here (it is always printed).
    #[arg(long, value_name = "FILE.md")]
    markdown: Option<PathBuf>,
    /// Fail (exit 1) when an instruction count exceeds this baseline's by more than 2%.
    #[arg(long, value_name = "BASELINE.json")]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct ShapesArgs {
    /// Rows of the matrix.
    m: usize,
    /// Columns of the matrix.
    n: usize,
    /// List the K best factorizations.
    #[arg(long, default_value_t = 1)]
    top: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A byte count: a whole number, optionally with a K or M suffix (1024, 1024²), or hex `0x…`.
fn parse_bytes(text: &str) -> Result<u64, String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // On Ctrl-C or SIGTERM, temporaries go too: a killed build leaves nothing behind.
    let _ = ctrlc::set_handler(|| {
        kpgen::output::cleanup_on_interrupt();
        std::process::exit(130);
    });
    match cli.command {
        Command::Build(args) => build(&args),
        Command::Test(args) => test(&args),
        Command::Shapes(args) => shapes_cmd(&args),
        Command::Bench(args) => bench(&args),
        Command::Targets => targets(),
    }
}

fn report_errors(errors: &Diagnostics) -> ExitCode {
    say!("{}", errors.render());
    let n = errors.0.len();
    say!(
        "kpgen: {n} problem{} found; nothing was written",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_BAD_INPUT)
}

fn shapes_cmd(args: &ShapesArgs) -> ExitCode {
    let out = if args.json {
        shapes::render_json(args.m, args.n, args.top)
    } else {
        shapes::render_text(args.m, args.n, args.top)
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

fn bench(args: &BenchArgs) -> ExitCode {
    use kpgen::bench;
    let bad = |msg: String| {
        say!("kpgen bench: {msg}");
        ExitCode::from(EXIT_BAD_INPUT)
    };
    let mut layers = Vec::new();
    if args.standard {
        layers.extend(bench::standard_layers());
    }
    for text in &args.layers {
        match bench::parse_layer(text) {
            Ok(l) => layers.push(l),
            Err(e) => return bad(e),
        }
    }
    for spec in &args.specs {
        match bench::layer::model_layers(spec) {
            Ok(l) => layers.extend(l),
            Err(d) => return report_errors(&d),
        }
    }
    if layers.is_empty() {
        return bad("nothing to benchmark: give --standard, --layer or --spec".into());
    }
    let names: Vec<String> = if args.targets.is_empty() {
        [
            "cortex-m0",
            "cortex-m4",
            "cortex-m7",
            "cortex-m33",
            "cortex-m55",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.targets.clone()
    };
    let mut targets = Vec::new();
    for n in &names {
        match target::lookup(n) {
            Ok(t) => targets.push(t),
            Err(d) => return report_errors(&d),
        }
    }
    let baseline = match &args.check {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<bench::BenchRun>(&t).map_err(|e| e.to_string()))
        {
            Ok(b) => Some(b),
            Err(e) => return bad(format!("cannot read the baseline {}: {e}", shown_path(p))),
        },
        None => None,
    };
    use kpgen::spec::Precision;
    let options = bench::BenchOptions {
        layers,
        targets,
        force_f32: !args.precisions.is_empty(),
        precisions: if args.precisions.is_empty() {
            vec![Precision::F32, Precision::Int16, Precision::Int8]
        } else {
            args.precisions.clone()
        },
        work_dir: args.work_dir.clone(),
        cmsis: if args.no_cmsis {
            bench::CmsisSource::Skip
        } else if let Some(d) = &args.cmsis_dsp {
            bench::CmsisSource::Dir(d.clone())
        } else {
            bench::CmsisSource::Fetch
        },
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    };
    let started = Instant::now();
    let view = ProgressView::new("kpgen bench");
    let run = bench::run(&options, &|event| view.show(event));
    view.finish();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            say!("kpgen bench: {e}");
            return ExitCode::from(EXIT_TEST_FAILED);
        }
    };
    let table = bench::report::markdown(&run);
    out!("{table}");
    say!(
        "kpgen bench: {} measurements in {:.0} s",
        run.measurements.len(),
        started.elapsed().as_secs_f64()
    );
    let write = |path: &Path, text: &str| {
        kpgen::output::write_file(path, text).map_err(|e| kpgen::diagnostic::shown(&e.to_string()))
    };
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&run).unwrap_or_default() + "\n";
        if let Err(e) = write(p, &json) {
            return bad(e);
        }
    }
    if let Some(p) = &args.markdown {
        if let Err(e) = write(p, &table) {
            return bad(e);
        }
    }
    if let Some(b) = &baseline {
        if !b.reason.is_empty() {
            say!("kpgen bench: baseline: {}", b.reason);
        }
        let (regressions, notes) = bench::compare(&run, b, 0.02);
        for n in &notes {
            say!("kpgen bench: {n}");
        }
        if !regressions.is_empty() {
            for r in &regressions {
                say!("kpgen bench: REGRESSION {r}");
            }
            say!(
                "kpgen bench: {} count(s) more than 2% above the baseline; if intended, \
                 update the baseline in the same commit and say why in its `reason`",
                regressions.len()
            );
            return ExitCode::from(EXIT_TEST_FAILED);
        }
        say!("kpgen bench: no regression against the baseline (2% gate)");
    }
    ExitCode::SUCCESS
}

fn targets() -> ExitCode {
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

impl BuildOptions {
    fn builder(&self) -> kpgen::Builder {
        let mut b = kpgen::Builder::new(&self.spec).target(&self.target);
        if let Some(p) = self.precision {
            b = b.precision(p);
        }
        if let Some(c) = &self.calibrate {
            b = b.calibrate(c);
        }
        if let Some(f) = self.flash_budget {
            b = b.flash_budget(f);
        }
        if let Some(r) = self.ram_budget {
            b = b.ram_budget(r);
        }
        b
    }
}

fn generate(opts: &BuildOptions) -> Result<(target::Target, kpgen::Generation), Diagnostics> {
    let (target, generation) = opts.builder().generate()?;
    let model = &generation.model;
    if model.precision.is_fixed() && model.calibration.is_none() {
        say!(
            "kpgen: note: no calibration data (spec `calibration:` or --calibrate): scales come from {}",
            kpgen::DEFAULT_CALIBRATION
        );
    }
    Ok((target, generation))
}

fn build(args: &BuildArgs) -> ExitCode {
    let started = Instant::now();
    let (_, generation) = match generate(&args.build) {
        Ok(g) => g,
        Err(e) => return report_errors(&e),
    };
    let protected = read_paths(&args.build, &generation);
    if let Some(d) = &args.depfile {
        // Checked before the output is written, so a refusal writes nothing.
        let inside_out = std::path::absolute(d)
            .ok()
            .zip(std::path::absolute(&args.out).ok())
            .is_some_and(|(d, o)| d.starts_with(o));
        if d.is_dir() || inside_out {
            let d = Diagnostic::new(
                Place::file(Path::new("--depfile")),
                format!(
                    "{} is a folder or lies inside --out: expected a file beside the output",
                    shown_path(d)
                ),
            );
            return report_errors(&d.into());
        }
    }
    if let Err(e) = write_output(&args.out, &generation.files, &protected) {
        return report_errors(&e);
    }
    if let Some(depfile) = &args.depfile {
        let name = &generation.model.name;
        let targets = [
            args.out.join(format!("c/{name}.c")),
            args.out.join(format!("c/{name}.h")),
        ];
        let text = kpgen::output::depfile_text(&targets, &protected);
        if let Err(e) = kpgen::output::write_file(depfile, &text) {
            say!("kpgen: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let t = &generation.report.totals;
    say!(
        "kpgen: wrote {} ({} files) in {:.2} s: {} parameters stored for {} dense ({:.2}x), {} MACs per step (dense {})",
        shown_path(&args.out),
        generation.files.len(),
        started.elapsed().as_secs_f64(),
        t.params_stored,
        t.params_dense,
        t.compression,
        t.macs_per_step,
        t.dense_macs_per_step
    );
    ExitCode::SUCCESS
}

/// Writes the output folder (see `kpgen::output`), refusing to touch what the build read.
fn write_output(
    out: &Path,
    files: &[kpgen::emit::GeneratedFile],
    protected: &[PathBuf],
) -> Result<(), Diagnostics> {
    kpgen::output::write_output(out, files, protected).map_err(|e| output_error(&e))
}

fn output_error(e: &kpgen::output::OutputError) -> Diagnostics {
    let mut d = Diagnostic::new(Place::file(Path::new("--out")), e.to_string());
    if let Some(h) = e.help() {
        d = d.with_help(h);
    }
    d.into()
}

/// Everything a build reads: its output may not replace their folders.
fn read_paths(opts: &BuildOptions, generation: &kpgen::Generation) -> Vec<PathBuf> {
    opts.builder().inputs(generation)
}

fn fmt_err(e: f64) -> String {
    format!("{e:.2e}")
}

fn print_results(results: &[LangResult], tol: Tolerance) {
    out!(
        "\n{:<6} {:<5} {:>10} {:>10} {:>8} {:>6}  result",
        "model",
        "lang",
        "max |err|",
        "max rel",
        "classes",
        "stream"
    );
    for r in results {
        let c = &r.comparison;
        out!(
            "{:<6} {:<5} {:>10} {:>10} {:>8} {:>6}  {}",
            r.variant,
            r.lang.as_str(),
            fmt_err(c.max_abs_error),
            fmt_err(c.max_rel_error),
            format!("{}/{}", c.sequences - c.class_mismatches, c.sequences),
            if c.streaming_matches { "same" } else { "DIFF" },
            match (c.pass, c.integer_mismatches) {
                (true, None) => format!("pass (tol {:.0e})", tol.abs),
                (true, Some(_)) => "pass (bit-exact)".to_owned(),
                (false, None) => format!("FAIL: {} outputs out of tolerance", c.failures),
                (false, Some(n)) => format!("FAIL: {n} codes differ from the integer reference"),
            }
        );
    }
    if results
        .iter()
        .any(|r| r.comparison.integer_mismatches.is_some())
    {
        out!(
            "(fixed point: the errors are the dequantized outputs against the float reference, \
             i.e. the quantization error; pass means equal to kpgen's integer reference)"
        );
    }
    if results.iter().any(|r| r.cost.is_some()) {
        out!(
            "\n{:<6} {:<5} {:>14} {:>12} {:>10} {:>8} {:>8} {:>10}",
            "model",
            "lang",
            "instr/infer",
            "instr/step",
            "flash B",
            "RAM B",
            "stack B",
            "su bound B"
        );
        for r in results {
            if let Some(c) = &r.cost {
                out!(
                    "{:<6} {:<5} {:>14} {:>12} {:>10} {:>8} {:>8} {:>10}",
                    r.variant,
                    r.lang.as_str(),
                    c.instructions_per_inference,
                    c.instructions_per_step,
                    c.flash_bytes,
                    c.ram_bytes,
                    c.stack_bytes,
                    c.stack_usage_bound
                        .map_or("-".to_owned(), |b| b.to_string())
                );
            }
        }
    }
}

fn test(args: &TestArgs) -> ExitCode {
    let (target, generation) = match generate(&args.build) {
        Ok(g) => g,
        Err(e) => return report_errors(&e),
    };
    let model = &generation.model;
    let mut protected = read_paths(&args.build, &generation);
    protected.extend(
        [&args.inputs, &args.lengths, &args.labels, &args.work_dir]
            .into_iter()
            .flatten()
            .cloned(),
    );
    // Refused before the (long) run, not after it.
    if let Some(out) = &args.out {
        if let Err(e) = kpgen::output::check_output(out, &protected) {
            return report_errors(&output_error(&e));
        }
    }
    let inputs = match &args.inputs {
        Some(path) => {
            let read = TestInputs::from_file(path, model.steps, model.input_features)
                .and_then(|i| match &args.lengths {
                    Some(l) => i.with_lengths(l),
                    None => Ok(i),
                })
                .and_then(|i| match &args.labels {
                    Some(l) => i.with_labels(l, model.output_size()),
                    None => Ok(i),
                });
            match read {
                Ok(i) => i,
                Err(e) => return report_errors(&e),
            }
        }
        None if args.count == 0 => {
            return report_errors(
                &Diagnostic::new(
                    Place::file("--count".as_ref()),
                    "expected at least one sequence",
                )
                .into(),
            )
        }
        None => TestInputs::random(
            args.count,
            model.steps,
            model.input_features,
            args.seed,
            1.0,
        ),
    };
    if args.tolerance.is_nan() || args.tolerance <= 0.0 {
        return report_errors(
            &Diagnostic::new(
                Place::file("--tolerance".as_ref()),
                "expected a positive tolerance",
            )
            .into(),
        );
    }
    let platform = match &args.host {
        Some(cc) => Platform::Host { cc: cc.clone() },
        None => match harness::firmware::locate_toolchain() {
            Ok(tc) => Platform::Qemu(tc),
            Err(e) => {
                say!("kpgen test: {e}");
                return ExitCode::from(e.exit_code() as u8);
            }
        },
    };
    let tmp;
    let _pending;
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("kpgen-test-").tempdir() {
            Ok(t) => {
                tmp = t;
                _pending = kpgen::output::remove_on_interrupt(tmp.path());
                tmp.path().to_path_buf()
            }
            Err(e) => {
                say!("kpgen test: cannot create a work directory: {e}");
                return ExitCode::from(3);
            }
        },
    };
    let mut langs = if args.langs.is_empty() {
        vec![Lang::C, Lang::Rust]
    } else {
        args.langs.clone()
    };
    if target.rust.triple.is_none() && matches!(platform, Platform::Qemu(_)) {
        if args.langs.contains(&Lang::Rust) {
            say!(
                "kpgen test: target `{}` has no Rust target triple: Rust firmware cannot be built for it (test C with --lang c)",
                target.name
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        langs.retain(|&l| l != Lang::Rust);
        say!(
            "kpgen test: note: target `{}` has no Rust target triple: testing C only",
            target.name
        );
    }
    let opts = RunOptions {
        langs,
        tolerance: Tolerance {
            abs: args.tolerance,
        },
        timeout: Duration::from_secs(args.timeout),
        dense_baseline: !args.no_dense,
        work_dir,
    };
    let where_ = match &platform {
        Platform::Qemu(_) => format!("QEMU {} ({})", target.qemu.machine, target.name),
        Platform::Host { cc } => format!("the host ({cc})"),
    };
    say!(
        "kpgen test: {} on {}, {} sequence(s) of {} steps",
        model.name,
        where_,
        inputs.sequences.len(),
        inputs.steps
    );
    let view = ProgressView::new("kpgen test");
    let outcome = harness::run_suite(
        &platform,
        &target,
        &generation,
        &inputs,
        &opts,
        &mut |event| view.show(event),
    );
    view.finish();
    let suite = match outcome {
        Ok(s) => s,
        Err(e) => {
            say!("kpgen test: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    print_results(&suite.results, opts.tolerance);
    if let Some(acc) = suite.reference_accuracy {
        out!("\naccuracy on the labels: reference {:.2}%", 100.0 * acc);
        for r in &suite.results {
            if let Some(a) = r.comparison.accuracy {
                out!(
                    "  {} {}: {:.2}% ({:+.2} points)",
                    r.variant,
                    r.lang.as_str(),
                    100.0 * a,
                    100.0 * (a - acc)
                );
            }
        }
    }
    if let Some(out) = &args.out {
        let mut files = generation.files.clone();
        let mut report = generation.report.clone();
        report.measured = serde_json::to_value(&suite).ok();
        let measured = measured_of(&suite);
        for f in &mut files {
            match f.path.as_str() {
                "report.json" => {
                    f.contents = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
                }
                "report.html" => {
                    f.contents =
                        kpgen::report_html::render(&report, &generation.plan, Some(&measured));
                }
                _ => {}
            }
        }
        if let Err(e) = write_output(out, &files, &protected) {
            return report_errors(&e);
        }
        say!("kpgen test: wrote {}", shown_path(out));
    }
    if suite.results.iter().all(|r| r.comparison.pass) {
        out!("\nkpgen test: {} passed, 0 failed", suite.results.len());
        ExitCode::SUCCESS
    } else {
        let failed = suite.results.iter().filter(|r| !r.comparison.pass).count();
        out!(
            "\nkpgen test: {} passed, {failed} failed",
            suite.results.len() - failed
        );
        ExitCode::from(EXIT_TEST_FAILED)
    }
}
