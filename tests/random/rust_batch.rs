//! Runs the generated Rust of many models in ONE host program: every generated crate is a path
//! dependency of a driver crate, built by one `cargo build` and run once. A cargo build per
//! model (the harness's way, through a staticlib shim) costs seconds each; here the crates
//! compile side by side and the program runs them all in well under a second.
//!
//! Failures stay attributed to their model: a crate that does not compile (or warns) is
//! reported and left out of a second build; a panic is caught per model; a crash of the whole
//! program blames the model it was running, and the program resumes after it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One model to run.
pub struct Entry {
    /// The generated crate's package name.
    pub crate_name: String,
    /// The generated `rust/` folder.
    pub crate_dir: PathBuf,
    /// Drive the integer `_q` API (inputs and outputs are codes).
    pub fixed: bool,
    /// Test sequences (floats, or codes as exact floats), each `steps * features` values.
    pub sequences: Vec<Vec<f32>>,
    /// Valid steps of each sequence: full ones run `infer`, shorter ones `reset` + `step`.
    pub lengths: Vec<usize>,
}

/// What one model printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Per sequence: the output values (codes as floats for fixed point).
    pub outputs: Vec<Vec<f32>>,
    /// `reset` + `step` x steps gave `infer`'s output bit for bit on the first sequence.
    pub streaming_matches: bool,
}

/// The driver's shared code: parses a model's inputs, runs it, prints the outputs as bits.
const DRIVE_RS: &str = r#"//! Shared driver code (written by tests/random/rust_batch.rs).
use std::fmt::Write as _;

pub trait Code: Copy + Default {
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Code for f32 {
    fn from_f32(v: f32) -> Self { v }
    fn to_f32(self) -> f32 { self }
}

impl Code for i8 {
    fn from_f32(v: f32) -> Self { v as i8 }
    fn to_f32(self) -> f32 { f32::from(self) }
}

impl Code for i16 {
    fn from_f32(v: f32) -> Self { v as i16 }
    fn to_f32(self) -> f32 { f32::from(self) }
}

fn line<T: Code>(out: &mut String, tag: &str, index: usize, y: &[T]) {
    write!(out, "{tag} {index}").unwrap();
    for v in y {
        write!(out, " {:08x}", v.to_f32().to_bits()).unwrap();
    }
    out.push('\n');
}

/// Input file: one line per sequence, `length value...` with values as f32 bits in hex.
pub fn run<M, T: Code, const F: usize, const S: usize, const O: usize>(
    text: &str,
    new: fn() -> M,
    reset: fn(&mut M),
    step: fn(&mut M, &[T; F], &mut [T; O]),
    infer: fn(&mut M, &[[T; F]; S], &mut [T; O]),
) -> Result<String, String> {
    let mut seqs: Vec<(usize, Box<[[T; F]; S]>)> = Vec::new();
    for l in text.lines() {
        let mut words = l.split_whitespace();
        let len: usize = words.next().and_then(|w| w.parse().ok()).ok_or("bad length")?;
        let values: Vec<T> = words
            .map(|w| u32::from_str_radix(w, 16).map(|b| T::from_f32(f32::from_bits(b))))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if values.len() != F * S || len == 0 || len > S {
            return Err(format!(
                "the inputs hold {} values of {len} steps: the crate takes {S} steps x {F} features",
                values.len()
            ));
        }
        let steps: Vec<[T; F]> = values
            .chunks(F.max(1))
            .map(|c| c.try_into().unwrap_or([T::default(); F]))
            .collect();
        let steps: Box<[[T; F]]> = steps.into_boxed_slice();
        let steps: Box<[[T; F]; S]> = steps.try_into().map_err(|_| "bad shape")?;
        seqs.push((len, steps));
    }
    let mut m = Box::new(new());
    let mut out = String::new();
    let mut y = [T::default(); O];
    for (i, (len, x)) in seqs.iter().enumerate() {
        if *len == S {
            infer(&mut m, x, &mut y);
        } else {
            reset(&mut m);
            for xt in &x[..*len] {
                step(&mut m, xt, &mut y);
            }
        }
        line(&mut out, "Y", i, &y);
    }
    let (_, x0) = seqs.first().ok_or("no sequence")?;
    infer(&mut m, x0, &mut y);
    line(&mut out, "I", 0, &y);
    reset(&mut m);
    for xt in x0.iter() {
        step(&mut m, xt, &mut y);
    }
    line(&mut out, "S", 0, &y);
    Ok(out)
}

pub type Runner = fn(&str) -> Result<String, String>;

static LAST_PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Runs every model from key `start` on: `BEGIN k`, its lines (or `ERR`/`PANIC`), `END k`.
pub fn main(models: &[(usize, Runner)]) {
    use std::io::Write as _;
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let start: usize = args[2].parse().unwrap();
    std::panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap() = info.to_string().replace('\n', " | ");
    }));
    let mut stdout = std::io::stdout();
    for &(key, f) in models.iter().filter(|(k, _)| *k >= start) {
        writeln!(stdout, "BEGIN {key}").unwrap();
        stdout.flush().unwrap();
        let text = std::fs::read_to_string(dir.join(format!("{key}.txt"))).unwrap();
        // A big stack: debug builds of large unrolled kernels keep much on it.
        let run = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || f(&text))
            .unwrap()
            .join();
        match run {
            Ok(Ok(text)) => write!(stdout, "{text}").unwrap(),
            Ok(Err(e)) => writeln!(stdout, "ERR {e}").unwrap(),
            Err(_) => writeln!(stdout, "PANIC {}", LAST_PANIC.lock().unwrap()).unwrap(),
        }
        writeln!(stdout, "END {key}").unwrap();
        stdout.flush().unwrap();
    }
    writeln!(stdout, "DONE").unwrap();
}
"#;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// Writes the driver crate for `keys` (indices into `entries`).
fn write_driver(dir: &Path, entries: &[Entry], keys: &[usize]) -> std::io::Result<()> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    let mut toml = String::from(
        "# Written by tests/random/rust_batch.rs.\n[package]\nname = \"kp_random_driver\"\n\
         version = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n",
    );
    for &k in keys {
        let e = &entries[k];
        let path = e.crate_dir.to_string_lossy().replace('\\', "/");
        writeln!(
            toml,
            "m_{k} = {{ package = \"{}\", path = \"{path}\" }}",
            e.crate_name
        )
        .unwrap();
    }
    // Overflow checks on: an integer overflow in generated fixed-point code panics here
    // (release builds would wrap silently). No debug info: it only slows the build.
    toml.push_str(
        "\n[workspace]\n\n[profile.dev]\nopt-level = 0\ndebug = false\n\
         overflow-checks = true\nincremental = false\n",
    );
    std::fs::write(dir.join("Cargo.toml"), toml)?;
    let mut main = String::from("mod drive;\n");
    for &k in keys {
        writeln!(main, "mod m_{k};").unwrap();
    }
    main.push_str("\nfn main() {\n    drive::main(&[\n");
    for &k in keys {
        writeln!(main, "        ({k}, m_{k}::run),").unwrap();
        let (step, infer) = if entries[k].fixed {
            ("step_q", "infer_q")
        } else {
            ("step", "infer")
        };
        let module = format!(
            "// {name}\nuse m_{k}::Model;\n\npub fn run(text: &str) -> Result<String, String> {{\n    \
             crate::drive::run(text, Model::new, Model::reset, Model::{step}, Model::{infer})\n}}\n",
            name = entries[k].crate_name
        );
        std::fs::write(src.join(format!("m_{k}.rs")), module)?;
    }
    main.push_str("    ]);\n}\n");
    std::fs::write(src.join("main.rs"), main)?;
    std::fs::write(src.join("drive.rs"), DRIVE_RS)
}

/// Which model a cargo JSON message is about: a model crate (by package name) or the driver's
/// glue module `src/m_K.rs`.
fn blame(msg: &serde_json::Value, by_crate: &BTreeMap<&str, usize>) -> Option<usize> {
    let target = msg["target"]["name"].as_str()?;
    if let Some(&k) = by_crate.get(target) {
        return Some(k);
    }
    msg["message"]["spans"].as_array()?.iter().find_map(|s| {
        let file = s["file_name"].as_str()?;
        let stem = Path::new(file).file_stem()?.to_str()?;
        stem.strip_prefix("m_")?.parse().ok()
    })
}

/// Builds and runs the Rust of every entry; returns, per entry, its output or why it has none.
/// Compiler warnings in a generated crate are errors too (the crates are meant to be
/// warning-free).
pub fn run_all(work: &Path, entries: &[Entry]) -> Vec<Result<Output, String>> {
    let mut results: Vec<Option<Result<Output, String>>> = vec![None; entries.len()];
    let by_crate: BTreeMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(k, e)| (e.crate_name.as_str(), k))
        .collect();
    let inputs = work.join("inputs");
    let driver = work.join("driver");
    let target_dir = work.join("target");
    let setup = std::fs::create_dir_all(&inputs).and_then(|()| {
        for (k, e) in entries.iter().enumerate() {
            let mut text = String::new();
            for (s, len) in e.sequences.iter().zip(&e.lengths) {
                write!(text, "{len}").unwrap();
                for v in s {
                    write!(text, " {:08x}", v.to_bits()).unwrap();
                }
                text.push('\n');
            }
            std::fs::write(inputs.join(format!("{k}.txt")), text)?;
        }
        Ok(())
    });
    if let Err(e) = setup {
        return vec![Err(format!("writing the Rust driver's inputs: {e}")); entries.len()];
    }

    let mut keys: Vec<usize> = (0..entries.len()).collect();
    // Each round drops the models whose code did not build; the cached crates make a second
    // round cheap. Two rounds suffice unless the driver glue itself fails for a new model.
    for _round in 0..4 {
        if keys.is_empty() {
            break;
        }
        if let Err(e) = write_driver(&driver, entries, &keys) {
            return vec![Err(format!("writing the Rust driver: {e}")); entries.len()];
        }
        let out = cargo()
            .args([
                "build",
                "--offline",
                "--keep-going",
                "--message-format=json",
            ])
            .arg("--manifest-path")
            .arg(driver.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => return vec![Err(format!("cannot start cargo: {e}")); entries.len()],
        };
        let mut bad: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut unattributed = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if msg["reason"] != "compiler-message" {
                continue;
            }
            let level = msg["message"]["level"].as_str().unwrap_or("");
            let rendered = msg["message"]["rendered"].as_str().unwrap_or("").to_owned();
            match blame(&msg, &by_crate) {
                Some(k) if level == "error" || level == "warning" => {
                    bad.entry(k).or_default().push(rendered)
                }
                None if level == "error" => unattributed.push(rendered),
                _ => {}
            }
        }
        for (&k, msgs) in &bad {
            if results[k].is_none() {
                results[k] = Some(Err(format!(
                    "the generated Rust does not build cleanly (rustc, debug, overflow checks):\n{}",
                    msgs.join("\n")
                )));
            }
        }
        if !out.status.success() && bad.is_empty() {
            let why = format!(
                "the Rust driver did not build ({}):\n{}\n{}",
                out.status,
                unattributed.join("\n"),
                String::from_utf8_lossy(&out.stderr)
            );
            for &k in &keys {
                results[k] = Some(Err(why.clone()));
            }
            break;
        }
        keys.retain(|k| results[*k].is_none());
        if out.status.success() {
            let exe = target_dir.join("debug/kp_random_driver");
            run_driver(&exe, &inputs, &keys, &mut results);
            break;
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("the Rust was not run".to_owned())))
        .collect()
}

/// The whole driver run takes well under a second per hundred models: longer is a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// `cmd.output()`, killed after `limit` (its status then says it was killed by a signal).
fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Collected> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        stderr.read_to_end(&mut v).map(|_| v)
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            child.kill()?;
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let join = |h: std::thread::JoinHandle<std::io::Result<Vec<u8>>>| {
        h.join().unwrap_or_else(|_| Ok(Vec::new()))
    };
    let mut stderr = join(err)?;
    if timed_out {
        stderr.extend_from_slice(format!("killed after {} s", limit.as_secs()).as_bytes());
    }
    Ok(Collected {
        status,
        stdout: join(out)?,
        stderr,
    })
}

/// What [`output_within`] collected.
struct Collected {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the driver, restarting it after a model that crashed it.
fn run_driver(
    exe: &Path,
    inputs: &Path,
    keys: &[usize],
    results: &mut [Option<Result<Output, String>>],
) {
    let mut start = 0;
    let wanted: BTreeSet<usize> = keys.iter().copied().collect();
    while let Some(&from) = wanted.range(start..).next() {
        let mut cmd = Command::new(exe);
        cmd.arg(inputs).arg(from.to_string());
        let out = match output_within(&mut cmd, RUN_TIMEOUT) {
            Ok(o) => o,
            Err(e) => {
                for &k in wanted.range(from..) {
                    results[k] = Some(Err(format!("cannot run the Rust driver: {e}")));
                }
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut current: Option<(usize, Vec<&str>)> = None;
        let mut last_end = None;
        let mut done = false;
        for line in text.lines() {
            if let Some(k) = line.strip_prefix("BEGIN ") {
                current = k.parse().ok().map(|k| (k, Vec::new()));
            } else if line.starts_with("END ") {
                if let Some((k, lines)) = current.take() {
                    // A model already failed (it built with warnings) keeps its verdict.
                    if wanted.contains(&k) {
                        results[k] = Some(parse_model(&lines));
                    }
                    last_end = Some(k);
                }
            } else if line == "DONE" {
                done = true;
            } else if let Some((_, lines)) = current.as_mut() {
                lines.push(line);
            }
        }
        if done {
            return;
        }
        let why = format!(
            "the Rust program crashed ({}) running this model:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(4000)
                .collect::<String>()
        );
        // Blame the model it died in (or the first, if it died before any) and resume after it.
        let k = match (current, last_end) {
            (Some((k, _)), _) => k,
            (None, None) => from,
            (None, Some(_)) => {
                for &k in wanted.range(start..) {
                    results[k].get_or_insert_with(|| Err(format!("not run: {why}")));
                }
                return;
            }
        };
        results[k].get_or_insert(Err(why));
        start = k + 1;
    }
}

/// Decodes one model's lines: `Y i` per sequence, `I 0` (infer) and `S 0` (streamed).
fn parse_model(lines: &[&str]) -> Result<Output, String> {
    let count = lines.iter().filter(|l| l.starts_with("Y ")).count();
    let mut outputs = vec![Vec::new(); count];
    let (mut infer, mut stream) = (None, None);
    for line in lines {
        if let Some(e) = line.strip_prefix("ERR ") {
            return Err(format!("the Rust driver refused the model: {e}"));
        }
        if let Some(e) = line.strip_prefix("PANIC ") {
            return Err(format!(
                "the generated Rust panicked (debug build, overflow checks on): {e}"
            ));
        }
        let mut words = line.split_whitespace();
        let tag = words.next().unwrap_or("");
        let index: usize = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("bad driver line `{line}`"))?;
        let values: Vec<f32> = words
            .map(|w| u32::from_str_radix(w, 16).map(f32::from_bits))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad driver line `{line}`: {e}"))?;
        match tag {
            "Y" if index < count => outputs[index] = values,
            "I" => infer = Some(values),
            "S" => stream = Some(values),
            _ => return Err(format!("unexpected driver line `{line}`")),
        }
    }
    let (Some(infer), Some(stream)) = (infer, stream) else {
        return Err("the Rust driver's output is incomplete".to_owned());
    };
    let streaming_matches = infer.len() == stream.len()
        && infer
            .iter()
            .zip(&stream)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    Ok(Output {
        outputs,
        streaming_matches,
    })
}
