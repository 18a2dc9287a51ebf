//! `kpgen bench`: kpgen's kernels against CMSIS-DSP's dense matrix-vector kernels on the same
//! layer, core and precision, in one run under QEMU. Exact guest instructions come from the
//! instruction-mix plugin (no 24-bit SysTick limit), which also gives the instruction mix for
//! an estimated cycle count; flash and RAM from arm-none-eabi-size. Every run's outputs are
//! checked on the host: kpgen's bit-exactly (fixed point) or within a stated float bound,
//! CMSIS-DSP's against its documented arithmetic.

pub mod cmsis;
pub mod firmware;
pub mod layer;
pub mod model;
pub mod nn;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use layer::{parse_layer, standard_layers, BenchLayer, LayerSource};

use crate::spec::Precision;
use crate::target::Target;

/// Which implementation a measurement is of.
pub const KPGEN: &str = "kpgen";
pub const CMSIS: &str = "cmsis-dsp";

/// One implementation of one layer on one core in one precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub layer: String,
    pub target: String,
    pub precision: String,
    pub implementation: String,
    pub rows: usize,
    pub cols: usize,
    /// Multiply-accumulates the implementation performs (dense: rows x cols).
    pub macs: u64,
    /// Exact guest instructions of one call (None when it could not run).
    pub instructions: Option<u64>,
    /// Estimated cycles from the instruction mix and the core's `[timing]` table.
    pub cycles_estimate: Option<u64>,
    /// Bytes of flash the layer needs: code plus stored weights and indices.
    pub flash: Option<u64>,
    /// Of `flash`: stored weight values and overlay indices.
    pub weight_bytes: u64,
    /// Static RAM the layer adds (kpgen: its temporary).
    pub ram: Option<u64>,
    /// `ok`, or what went wrong (wrong results, does not fit, ...).
    pub status: String,
    /// Where the data lives, for dense matrices moved to a RAM region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// Largest share of the executed instructions, e.g. `fp_mac 41%`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<String>,
}

impl Measurement {
    pub fn instructions_per_mac(&self) -> Option<f64> {
        self.instructions
            .filter(|_| self.macs > 0)
            .map(|i| i as f64 / self.macs as f64)
    }
}

/// A whole benchmark run, as written with `--json` and read back by `--check`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchRun {
    /// Why the figures changed, for a checked-in baseline (shown by `--check`).
    #[serde(default)]
    pub reason: String,
    pub cmsis_dsp: String,
    /// The compiler of every firmware's C (older baselines: gcc).
    #[serde(default)]
    pub compiler: crate::qemu::CCompiler,
    pub measurements: Vec<Measurement>,
    /// `--model`: per-step rows of each recurrent layer, kpgen beside CMSIS-NN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_rows: Vec<model::ModelRow>,
}

/// Where the CMSIS-DSP sources come from.
#[derive(Debug, Clone)]
pub enum CmsisSource {
    /// Download the pinned PyPI sdist into the cache folder.
    Fetch,
    /// An existing source tree.
    Dir(PathBuf),
    /// Measure kpgen only.
    Skip,
}

/// Why a benchmark run stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchError {
    /// A tool, a fetch or a build step failed (exit 3).
    Tool(String),
    /// A measurement could not be made or checked (exit 1).
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Tool(e) | BenchError::Failed(e) => f.write_str(e),
        }
    }
}

impl From<String> for BenchError {
    fn from(e: String) -> BenchError {
        BenchError::Failed(e)
    }
}

pub struct BenchOptions {
    pub layers: Vec<BenchLayer>,
    pub targets: Vec<Target>,
    /// Precisions per target; f32 only runs on FPU cores unless `force_f32`.
    pub precisions: Vec<Precision>,
    pub force_f32: bool,
    pub work_dir: PathBuf,
    pub cmsis: CmsisSource,
    pub jobs: usize,
    /// Models whose LSTM/GRU layers get model rows (int8 and int16 of `precisions`): the
    /// `--spec` files (loaded) and `--lstm` shapes.
    pub models: Vec<crate::model::Model>,
    /// A CMSIS-NN source tree for the model rows' baseline.
    pub cmsis_nn: Option<PathBuf>,
    /// The compiler of every firmware's C: kpgen's and the baselines' alike.
    pub cc: crate::qemu::CCompiler,
}

/// One unit of work.
#[derive(Debug, Clone)]
struct Job {
    layer: usize,
    target: usize,
    precision: Precision,
}

fn jobs_of(o: &BenchOptions) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (ti, t) in o.targets.iter().enumerate() {
        for &p in &o.precisions {
            if p == Precision::F32 && t.features.fpu == crate::target::Fpu::None && !o.force_f32 {
                continue;
            }
            for li in 0..o.layers.len() {
                jobs.push(Job {
                    layer: li,
                    target: ti,
                    precision: p,
                });
            }
        }
    }
    jobs
}

/// Runs the benchmark; `progress` gets the number of jobs, then one line per finished
/// measurement (a job measures kpgen and, once per shape, the dense baseline).
pub fn run(
    o: &BenchOptions,
    progress: &(dyn Fn(crate::base::progress::Progress) + Sync),
) -> Result<BenchRun, BenchError> {
    let tool = |e: String| BenchError::Tool(e);
    let toolchain = crate::qemu::Toolchain::locate_with(o.cc).map_err(|e| tool(e.to_string()))?;
    std::fs::create_dir_all(&o.work_dir)
        .map_err(|e| tool(format!("create {}: {e}", o.work_dir.display())))?;
    let plugin =
        crate::qemu::insn_mix::build_plugin(&o.work_dir).map_err(|e| tool(e.to_string()))?;
    let cmsis_nn = match &o.cmsis_nn {
        Some(d) => Some(nn::CmsisNn::at(d).map_err(tool)?),
        None => None,
    };
    let cmsis = match &o.cmsis {
        CmsisSource::Fetch => {
            Some(cmsis::CmsisDsp::fetch(&o.work_dir.join("cache")).map_err(tool)?)
        }
        CmsisSource::Dir(d) => {
            Some(cmsis::CmsisDsp::at(d, &o.work_dir.join("cache")).map_err(tool)?)
        }
        CmsisSource::Skip => None,
    };
    let env = firmware::Env {
        toolchain: &toolchain,
        plugin: &plugin,
        cmsis: cmsis.as_ref(),
        work_dir: &o.work_dir,
    };
    let jobs = jobs_of(o);
    let total = jobs.len();
    progress(crate::base::progress::Progress::Total(total));
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results: Mutex<Vec<(usize, Vec<Measurement>)>> = Mutex::new(Vec::new());
    // The dense baseline depends only on (rows, cols, core, precision): run it once.
    let dense_done: Mutex<BTreeMap<String, Measurement>> = Mutex::new(BTreeMap::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..o.jobs.max(1) {
            s.spawn(|| loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let Some((index, job)) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let layer = &o.layers[job.layer];
                let target = &o.targets[job.target];
                match firmware::measure(&env, layer, target, job.precision, &dense_done) {
                    Ok(ms) => {
                        for (i, m) in ms.iter().enumerate() {
                            let line = report::progress_line(m, total);
                            // The job's last measurement completes it.
                            progress(if i + 1 == ms.len() {
                                crate::base::progress::Progress::Done(&line)
                            } else {
                                crate::base::progress::Progress::Note(&line)
                            });
                        }
                        if let Ok(mut r) = results.lock() {
                            r.push((index, ms));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            *f = Some(format!(
                                "{} on {} ({}): {e}",
                                layer.name,
                                target.name,
                                job.precision.as_str()
                            ));
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(BenchError::Failed(e));
    }
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    // Model rows: one firmware at a time (each runs a whole sequence).
    let mut model_rows = Vec::new();
    for m in &o.models {
        for target in &o.targets {
            for &p in o.precisions.iter().filter(|p| **p != Precision::F32) {
                let rows =
                    model::model_rows(&env, m, target, p, cmsis_nn.as_ref()).map_err(|e| {
                        BenchError::Failed(format!("{} on {}: {e}", m.name, target.name))
                    })?;
                for r in &rows {
                    progress(crate::base::progress::Progress::Note(
                        &report::model_progress_line(r),
                    ));
                }
                model_rows.extend(rows);
            }
        }
    }
    Ok(BenchRun {
        reason: String::new(),
        cmsis_dsp: cmsis.map_or("not run".to_owned(), |_| cmsis::VERSION.to_owned()),
        compiler: o.cc,
        measurements: results.into_iter().flat_map(|(_, m)| m).collect(),
        model_rows,
    })
}

/// A rendered C source with the final newline the template engine drops (C99 wants one;
/// clang's -pedantic says so).
fn ending_with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A measurement's identity in a baseline.
pub fn key(m: &Measurement) -> String {
    format!(
        "{} | {} | {} | {}",
        m.layer, m.target, m.precision, m.implementation
    )
}

/// Compares `run` with `baseline`: every instruction count more than `tolerance` (0.02 = 2%)
/// above the baseline's is a regression. Returns the regressions and informational lines
/// (improvements, new or missing entries).
pub fn compare(run: &BenchRun, baseline: &BenchRun, tolerance: f64) -> (Vec<String>, Vec<String>) {
    let old: BTreeMap<String, &Measurement> =
        baseline.measurements.iter().map(|m| (key(m), m)).collect();
    let mut regressions = Vec::new();
    let mut notes = Vec::new();
    for m in &run.measurements {
        let k = key(m);
        match (old.get(&k).and_then(|b| b.instructions), m.instructions) {
            (Some(before), Some(now)) => {
                let ratio = now as f64 / before as f64;
                if ratio > 1.0 + tolerance {
                    regressions.push(format!(
                        "{k}: {now} instructions, baseline {before} (+{:.1}%)",
                        (ratio - 1.0) * 100.0
                    ));
                } else if now != before {
                    notes.push(format!(
                        "{k}: {now} instructions, baseline {before} ({:+.1}%)",
                        (ratio - 1.0) * 100.0
                    ));
                }
            }
            (None, Some(now)) => {
                notes.push(format!("{k}: {now} instructions, not in the baseline"))
            }
            (Some(before), None) => regressions.push(format!(
                "{k}: no longer runs ({}), baseline {before} instructions",
                m.status
            )),
            (None, None) => {}
        }
    }
    (regressions, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(layer: &str, instructions: Option<u64>) -> Measurement {
        Measurement {
            layer: layer.into(),
            target: "cortex-m4".into(),
            precision: "int8".into(),
            implementation: KPGEN.into(),
            rows: 4,
            cols: 4,
            macs: 16,
            instructions,
            cycles_estimate: None,
            flash: None,
            weight_bytes: 0,
            ram: None,
            status: "ok".into(),
            placement: None,
            mix: Vec::new(),
        }
    }

    fn run(ms: Vec<Measurement>) -> BenchRun {
        BenchRun {
            reason: String::new(),
            cmsis_dsp: String::new(),
            compiler: Default::default(),
            measurements: ms,
            model_rows: Vec::new(),
        }
    }

    #[test]
    fn the_gate_fails_only_beyond_two_percent() {
        let base = run(vec![
            m("a", Some(1000)),
            m("b", Some(1000)),
            m("c", Some(1000)),
        ]);
        let now = run(vec![
            m("a", Some(1020)),
            m("b", Some(1021)),
            m("c", Some(900)),
        ]);
        let (regressions, notes) = compare(&now, &base, 0.02);
        assert_eq!(regressions.len(), 1, "{regressions:?}");
        assert!(regressions[0].starts_with("b |"));
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn a_measurement_that_stops_running_is_a_regression() {
        let base = run(vec![m("a", Some(1000))]);
        let now = run(vec![m("a", None)]);
        assert_eq!(compare(&now, &base, 0.02).0.len(), 1);
        let (regressions, notes) = compare(&run(vec![m("new", Some(5))]), &base, 0.02);
        assert!(regressions.is_empty());
        assert!(notes[0].contains("not in the baseline"));
    }

    #[test]
    fn layer_shapes_parse_and_bad_ones_say_what_is_expected() {
        let l = parse_layer("16x32*32x16+2%").unwrap();
        assert_eq!(
            l.source,
            LayerSource::Synthetic {
                a: (16, 32),
                b: (32, 16),
                density: 0.02
            }
        );
        for bad in [
            "16x32",
            "16x*2x2",
            "0x2*2x2",
            "2x2*2x2+0%",
            "2x2*2x2+x%",
            "300x300*300x300",
        ] {
            let e = parse_layer(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(standard_layers().len(), 6);
    }
}
