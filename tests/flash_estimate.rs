//! The flash estimate (`report.json` `flash`, `kpgen::lower::flash`) against the measured
//! object: every bundled example (`examples/*/*/spec.yaml`) and every conformance model of
//! `common` (`all_cases` and `coverage_cases`), on every built-in core, in f32, int16 and int8,
//! under both objectives, compiled with the core's flags at `-Os` and measured with
//! arm-none-eabi-size (`.text` + `.rodata` + `.data`). The estimate must be within
//! [`TOLERANCE`] of every object.
//!
//! `KPGEN_TARGETS=cortex-m4,...` measures only the cores named, `KPGEN_FLASH_OPT=-O2` at
//! another optimization level. `KPGEN_CODESIZE_ROWS=FILE` also writes every row (the construct
//! counts, the exact data bytes and the measured object) as JSON lines: `bench/codesize_fit.py`
//! runs this test that way and fits the `[code]` tables of `targets/*.toml` to the rows.
//! Needs arm-none-eabi-gcc (ci/setup), and FAILS (never skips) when it is missing.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kpgen::spec::{Optimize, Precision};
use kpgen::target::Target;

/// The largest relative error allowed: |estimate - measured| / measured.
const TOLERANCE: f64 = 0.10;

const PRECISIONS: [Precision; 3] = [Precision::F32, Precision::Int16, Precision::Int8];
const OBJECTIVES: [Optimize; 2] = [Optimize::Speed, Optimize::Size];

/// A model to build: a bundled example's spec, or a conformance case by index.
#[derive(Clone)]
enum Model {
    Example(PathBuf),
    Case(usize),
}

fn examples() -> Vec<PathBuf> {
    let specs = common::bundled_examples();
    assert!(specs.len() >= 30, "{} bundled examples", specs.len());
    specs
}

fn cases() -> Vec<common::Case> {
    let mut all = common::all_cases();
    all.extend(common::coverage_cases());
    all
}

struct Row {
    what: String,
    target: String,
    precision: Precision,
    optimize: Optimize,
    measured: u64,
    estimate: kpgen::lower::flash::FlashEstimate,
}

impl Row {
    fn error(&self) -> f64 {
        (self.estimate.total_bytes as f64 - self.measured as f64) / self.measured as f64
    }

    fn json(&self) -> String {
        let counts: serde_json::Map<String, serde_json::Value> = self
            .estimate
            .code
            .iter()
            .map(|c| {
                (
                    serde_json::to_value(c.construct)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    c.count.into(),
                )
            })
            .collect();
        serde_json::json!({
            "model": self.what,
            "target": self.target,
            "precision": self.precision.as_str(),
            "optimize": self.optimize.as_str(),
            "measured": self.measured,
            "data_bytes": self.estimate.data_bytes,
            "estimate": self.estimate.total_bytes,
            "counts": counts,
        })
        .to_string()
    }
}

fn build(
    model: &Model,
    cases: &[common::Case],
    target: &Target,
    precision: Precision,
    optimize: Optimize,
) -> kpgen::Generation {
    match model {
        Model::Example(spec) => {
            let mut m = kpgen::load(spec).unwrap_or_else(|d| panic!("{}", d.render()));
            m.precision = precision;
            m.optimize = optimize;
            kpgen::generate_model(&m, target).unwrap_or_else(|d| {
                panic!("{} {}: {}", spec.display(), precision.as_str(), d.render())
            })
        }
        Model::Case(i) => {
            let (_fixture, gen) = common::generate_for(&cases[*i], target, precision, optimize)
                .unwrap_or_else(|e| panic!("{}: {e}", cases[*i].name()));
            gen
        }
    }
}

fn name(model: &Model, cases: &[common::Case]) -> String {
    match model {
        Model::Example(spec) => spec
            .parent()
            .and_then(|d| d.strip_prefix(common::repo_root().join("examples")).ok())
            .map_or_else(|| spec.display().to_string(), |p| p.display().to_string()),
        Model::Case(i) => format!("conformance/{}", cases[*i].name()),
    }
}

/// Builds and measures every model on every core in every precision and objective, in
/// parallel threads.
fn measure_all() -> Vec<Row> {
    let cases = cases();
    let mut models: Vec<Model> = examples().into_iter().map(Model::Example).collect();
    models.extend((0..cases.len()).map(Model::Case));
    // `KPGEN_TARGETS=cortex-m4,cortex-m0` measures only those cores (a developer's rerun).
    let only = std::env::var("KPGEN_TARGETS").ok();
    let targets: Vec<Target> = kpgen::target::builtin_targets()
        .into_iter()
        .filter(|t| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == t.name))
        })
        .collect();
    assert!(
        !targets.is_empty(),
        "KPGEN_TARGETS names no built-in target"
    );
    let jobs: Vec<(Model, Target)> = models
        .iter()
        .flat_map(|m| targets.iter().map(move |t| (m.clone(), t.clone())))
        .collect();
    // `KPGEN_FLASH_OPT=-O2` measures objects at another level than the fitted `-Os` (to see
    // how far the estimate is from them; the tolerance then rarely holds).
    let opt = std::env::var("KPGEN_FLASH_OPT").unwrap_or_else(|_| "-Os".to_owned());
    let queue = Mutex::new(jobs);
    let rows = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((model, target)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let dir = tempfile::tempdir().expect("a temporary folder");
                for p in PRECISIONS {
                    for o in OBJECTIVES {
                        let gen = build(&model, &cases, &target, p, o);
                        let sub = dir.path().join(format!("{}-{}", p.as_str(), o.as_str()));
                        let measured = common::object_bytes(&gen, &target, &sub, &opt);
                        let estimate = gen.report.flash.clone().expect("the flash estimate");
                        rows.lock().unwrap().push(Row {
                            what: name(&model, &cases),
                            target: target.name.clone(),
                            precision: p,
                            optimize: o,
                            measured,
                            estimate,
                        });
                    }
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by(|a, b| {
        (
            &a.target,
            &a.what,
            a.precision.as_str(),
            a.optimize.as_str(),
        )
            .cmp(&(
                &b.target,
                &b.what,
                b.precision.as_str(),
                b.optimize.as_str(),
            ))
    });
    rows
}

#[test]
fn the_flash_estimate_is_within_ten_percent_of_every_measured_object() {
    let rows = measure_all();
    if let Some(path) = std::env::var_os("KPGEN_CODESIZE_ROWS") {
        let mut f = std::fs::File::create(Path::new(&path)).expect("create the rows file");
        for r in &rows {
            writeln!(f, "{}", r.json()).expect("write a row");
        }
    }
    // Per core: the worst and the mean absolute error.
    let mut summary = Vec::new();
    for t in kpgen::target::builtin_names() {
        if !rows.iter().any(|r| r.target == t) {
            continue;
        }
        let errors: Vec<f64> = rows
            .iter()
            .filter(|r| r.target == t)
            .map(|r| r.error().abs())
            .collect();
        let worst = errors.iter().copied().fold(0.0, f64::max);
        let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
        summary.push(format!(
            "{t}: {} objects, worst {:.1}%, mean {:.1}%",
            errors.len(),
            100.0 * worst,
            100.0 * mean
        ));
    }
    eprintln!("estimate against measured:\n{}", summary.join("\n"));
    let misses: Vec<String> = rows
        .iter()
        .filter(|r| r.error().abs() > TOLERANCE)
        .map(|r| {
            format!(
                "{} {} {} {}: estimated {} B (data {} + code {}), measured {} B ({:+.1}%)",
                r.target,
                r.what,
                r.precision.as_str(),
                r.optimize.as_str(),
                r.estimate.total_bytes,
                r.estimate.data_bytes,
                r.estimate.code_bytes,
                r.measured,
                100.0 * r.error()
            )
        })
        .collect();
    assert!(
        misses.is_empty(),
        "{} of {} estimates off by more than {:.0}%:\n{}",
        misses.len(),
        rows.len(),
        100.0 * TOLERANCE,
        misses.join("\n")
    );
}

/// The estimate's parts add up, `report.json` carries it, and the budget check uses it: a
/// budget the stored weights fit but the code does not is refused, naming what it counts.
#[test]
fn the_budget_check_counts_code_and_says_so() {
    let spec = common::repo_root().join("examples/basic_motions/kp/spec.yaml");
    let target = kpgen::target::lookup("cortex-m4").unwrap_or_else(|d| panic!("{}", d.render()));
    let gen = kpgen::generate(&spec, &target).unwrap_or_else(|d| panic!("{}", d.render()));
    let flash = gen.report.flash.clone().expect("the flash estimate");
    assert_eq!(flash.total_bytes, flash.data_bytes + flash.code_bytes);
    assert_eq!(
        flash.data_bytes,
        flash.data.iter().map(|d| d.bytes).sum::<u64>()
    );
    let code: f64 = flash.code.iter().map(|c| c.bytes).sum();
    assert_eq!(flash.code_bytes, code.round() as u64);
    assert!(flash.code_bytes > 0 && flash.data_bytes > 0, "{flash:?}");
    let json = serde_json::to_value(&gen.report).expect("the report as JSON");
    assert_eq!(json["flash"]["total_bytes"], flash.total_bytes, "{json:#}");

    // Over the stored data, under the whole estimate: refused after lowering.
    let stored = (gen.report.totals.weight_bytes + gen.report.totals.overlay_index_bytes) as u64;
    assert!(stored < flash.total_bytes);
    let message = |t: &Target| {
        let d = kpgen::generate(&spec, t).unwrap_err();
        d.0.iter().map(|e| e.message.clone()).collect::<String>()
    };
    let mut tight = target.clone();
    tight.budget.flash = stored + 1;
    let err = message(&tight);
    assert!(
        err.contains(&format!(
            "needs an estimated {} bytes of flash",
            flash.total_bytes
        )) && err.contains("code and constant data"),
        "{err}"
    );
    // Under the stored data: refused right after planning, saying it counts the data only.
    tight.budget.flash = stored - 1;
    let err = message(&tight);
    assert!(
        err.contains(&format!("needs an estimated {stored} bytes of flash"))
            && err.contains("before code is counted"),
        "{err}"
    );
}
