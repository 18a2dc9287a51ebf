//! Model rows (`kpgen bench --model`): for each LSTM or GRU layer of a spec, the instructions
//! per time step of kpgen's generated layer (its form as written, and its dense expansion),
//! beside CMSIS-NN's `arm_lstm_unidirectional_s8` / `_s16` on the same shape when a CMSIS-NN
//! tree is given.
//!
//! kpgen's rows run the conformance firmware of `kpgen test` (C) on the model cut after the
//! layer, and pass only when its outputs equal kpgen's integer reference bit for bit. CMSIS-NN's
//! row runs the layer's float weights quantized as CMSIS-NN expects ([`super::nn`]) on the same
//! input sequence, under the instruction-mix plugin; its dequantized outputs are compared with
//! the float LSTM within [`TOLERANCE`], and a larger error is shown in the row, not hidden.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::firmware::{does_not_fit, run_counted, Env};
use super::nn::{self, CmsisNn};
use crate::base::sequences::TestInputs;
use crate::model::{Cell, Model};
use crate::qemu::{self, Firmware, FirmwareTarget};
use crate::spec::{Lang, Precision};
use crate::target::Target;
use crate::verify::{self, Platform, RunOptions, Tolerance};

/// Largest |h − h_float| accepted from CMSIS-NN over its first steps ([`nn::CHECKED_STEPS`])
/// and every unit (h lies in (−1, 1)): about three int8 steps of h (2⁻⁷). The int8 weights bound both kernels' accuracy,
/// so one figure serves s8 and s16. Later steps drift from the float run as any quantized
/// recurrence does; the last step's error is shown beside kpgen's, not judged.
pub const TOLERANCE: f64 = 0.025;

/// The seed of the input sequence both implementations run.
const SEED: u64 = 28;

pub const KPGEN_FORM: &str = "kpgen";
pub const KPGEN_DENSE: &str = "kpgen dense";
pub const CMSIS_NN: &str = "cmsis-nn";

/// One implementation of one recurrent layer on one core in one precision, per time step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub model: String,
    pub layer: usize,
    /// `lstm` or `gru`.
    pub kind: String,
    pub inputs: usize,
    pub units: usize,
    pub target: String,
    pub precision: String,
    /// `kpgen` (the layer's form as written), `kpgen dense` or `cmsis-nn`.
    pub implementation: String,
    /// The weight form, or the CMSIS-NN function.
    pub form: String,
    pub steps: usize,
    /// Exact guest instructions per time step (the whole run over `steps`).
    pub instructions_per_step: Option<u64>,
    /// Estimated cycles per step from the instruction mix and the core's `[timing]` table.
    pub cycles_per_step: Option<u64>,
    /// `ok`, or what went wrong.
    pub status: String,
}

fn tool<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A dense LSTM of `inputs` × `units` with seeded weights (uniform, scaled by 1/√fan-in, as
/// PyTorch initializes them) over 100 steps: the shapes of issue 28's table (`--lstm 40x128`).
pub fn synthetic_lstm(inputs: usize, units: usize) -> Model {
    use crate::model::{GatedCell, Layer, Weight, WeightForm};
    let mut rng = crate::base::sequences::SplitMix64(SEED ^ ((inputs as u64) << 32) ^ units as u64);
    let k = 1.0 / (units as f64).sqrt();
    let mut matrix = |rows: usize, cols: usize| {
        nalgebra::DMatrix::from_fn(rows, cols, |_, _| f64::from(rng.unit()) * k)
    };
    let (w_ih, w_hh) = (matrix(4 * units, inputs), matrix(4 * units, units));
    let bias = matrix(4 * units, 2);
    Model {
        name: format!("lstm_{inputs}x{units}"),
        input_features: inputs,
        steps: 100,
        layers: vec![Layer {
            inputs,
            units,
            cell: Cell::Lstm(GatedCell {
                w_ih: Weight {
                    field: "w_ih",
                    form: WeightForm::Dense(w_ih),
                },
                w_hh: Weight {
                    field: "w_hh",
                    form: WeightForm::Dense(w_hh),
                },
                b_ih: bias.column(0).iter().copied().collect(),
                b_hh: bias.column(1).iter().copied().collect(),
            }),
        }],
        precision: Precision::F32,
        activations: Default::default(),
        optimize: Default::default(),
        calibration: None,
        sources: Vec::new(),
    }
}

/// Parses `--lstm IxH` (inputs × units, each 1 to 1024).
pub fn parse_lstm(text: &str) -> Result<(usize, usize), String> {
    text.split_once('x')
        .and_then(|(i, h)| Some((i.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .filter(|&(i, h)| (1..=1024).contains(&i) && (1..=1024).contains(&h))
        .ok_or_else(|| {
            format!("bad LSTM shape `{text}`: expected INPUTSxUNITS, each 1 to 1024, e.g. `40x128`")
        })
}

/// The rows of every LSTM/GRU layer of `model` on `target` in `precision` (int8 or int16).
pub fn model_rows(
    env: &Env,
    model: &Model,
    target: &Target,
    precision: Precision,
    cmsis_nn: Option<&CmsisNn>,
) -> Result<Vec<ModelRow>, String> {
    let mut rows = Vec::new();
    // kpgen's rows measure the model cut after the layer (the layer needs its real input); a
    // later layer's own cost is that less the cut before it: (instructions, cycles) of the
    // previous measured cut, per implementation.
    let mut previous_cut: std::collections::HashMap<String, (u64, Option<u64>)> =
        Default::default();
    for (i, layer) in model.layers.iter().enumerate() {
        let (kind, gated) = match &layer.cell {
            Cell::Lstm(g) => ("lstm", g),
            Cell::Gru(g) => ("gru", g),
            _ => continue,
        };
        let row = |implementation: &str, form: String| ModelRow {
            model: model.name.clone(),
            layer: i,
            kind: kind.to_owned(),
            inputs: layer.inputs,
            units: layer.units,
            target: target.name.clone(),
            precision: precision.as_str().to_owned(),
            implementation: implementation.to_owned(),
            form,
            steps: model.steps,
            instructions_per_step: None,
            cycles_per_step: None,
            status: String::new(),
        };
        let dir = env
            .work_dir
            .join("model")
            .join(super::firmware::dir_name(&model.name))
            .join(format!("layer{i}"))
            .join(&target.name)
            .join(precision.as_str());
        let inputs = TestInputs::random(1, model.steps, model.input_features, SEED, 1.0);
        for mut r in kpgen_rows(env, model, i, target, precision, &inputs, &dir, &row)? {
            if let Some(cut) = r.instructions_per_step {
                let cut_cycles = r.cycles_per_step;
                if let Some((before, before_cycles)) =
                    previous_cut.insert(r.implementation.clone(), (cut, cut_cycles))
                {
                    r.instructions_per_step = Some(cut.saturating_sub(before));
                    r.cycles_per_step = cut_cycles
                        .zip(before_cycles)
                        .map(|(c, b)| c.saturating_sub(b));
                }
            }
            rows.push(r);
        }
        let mut cm = row(CMSIS_NN, nn::lstm_function(precision).to_owned());
        match (kind, cmsis_nn) {
            ("gru", _) => {
                cm.form = "-".into();
                cm.status = "CMSIS-NN has no GRU kernel".into();
                rows.push(cm);
            }
            (_, Some(tree)) => {
                // The layer's own input: the model's for the first layer; a seeded sequence in
                // [-1, 1) of the layer's width for a later one.
                let x: Vec<f64> = if i == 0 {
                    inputs.sequences[0].iter().map(|&v| f64::from(v)).collect()
                } else {
                    TestInputs::random(1, model.steps, layer.inputs, SEED, 1.0).sequences[0]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect()
                };
                let w_ih = gated.w_ih.expand();
                let w_hh = gated.w_hh.expand();
                let bias: Vec<f64> = gated
                    .b_ih
                    .iter()
                    .zip(&gated.b_hh)
                    .map(|(a, b)| a + b)
                    .collect();
                rows.push(measure_cmsis_nn(
                    env,
                    tree,
                    &model.name,
                    target,
                    precision,
                    (&w_ih, &w_hh, &bias, &x, model.steps),
                    &dir.join("cmsis-nn"),
                    cm,
                )?);
            }
            (_, None) => {}
        }
    }
    Ok(rows)
}

/// kpgen's layer (the model cut after it) and its dense expansion, through `kpgen test`'s
/// conformance firmware: per-step instructions, checked bit for bit.
#[allow(clippy::too_many_arguments)]
fn kpgen_rows(
    env: &Env,
    model: &Model,
    i: usize,
    target: &Target,
    precision: Precision,
    inputs: &TestInputs,
    dir: &Path,
    row: &dyn Fn(&str, String) -> ModelRow,
) -> Result<Vec<ModelRow>, String> {
    let mut m = model.clone();
    m.layers.truncate(i + 1);
    m.precision = precision;
    m.name = format!("{}_l{i}", model.name);
    let generation = crate::generate_model(&m, &target.unbudgeted()).map_err(tool)?;
    let opts = RunOptions {
        langs: vec![Lang::C],
        tolerance: Tolerance { abs: 1.0 },
        timeout: Duration::from_secs(300),
        dense_baseline: true,
        every_step: false,
        work_dir: dir.join("kpgen"),
    };
    let platform = Platform::Qemu(env.toolchain.clone());
    let suite = verify::run_suite(&platform, target, &generation, inputs, &opts, &mut |_| {})
        .map_err(tool)?;
    let form = describe(&m.layers[i].cell);
    let prefix = if i > 0 {
        format!(
            " (the model's layers 0..={i} run; this layer's cost is theirs less the previous \
             row's cut)"
        )
    } else {
        String::new()
    };
    let mut rows = Vec::new();
    for r in &suite.results {
        let (implementation, form) = if r.variant == "dense" {
            (KPGEN_DENSE, "dense".to_owned())
        } else {
            (KPGEN_FORM, form.clone())
        };
        let mut out = row(implementation, form);
        out.instructions_per_step = r.cost.as_ref().map(|c| c.instructions_per_step);
        let elf = dir
            .join("kpgen")
            .join(format!("{}-{}", r.variant, Lang::C.as_str()))
            .join("fw.elf");
        out.cycles_per_step = out
            .instructions_per_step
            .and_then(|i| cycles_of(env, target, &elf, i));
        out.status = if r.comparison.pass {
            format!(
                "ok: equals the integer reference{prefix}; last step {:.3} from the float model",
                r.comparison.max_abs_error
            )
        } else {
            format!(
                "WRONG: {} output(s) differ from the integer reference{prefix}",
                r.comparison
                    .integer_mismatches
                    .unwrap_or(r.comparison.failures)
            )
        };
        rows.push(out);
    }
    for note in &suite.notes {
        let mut out = row(KPGEN_DENSE, "dense".to_owned());
        out.status = note.clone();
        rows.push(out);
    }
    Ok(rows)
}

/// Estimated cycles of `instructions` of the conformance firmware `elf`: the instruction mix
/// of its timed regions (kp_timer_start to kp_timer_ticks: the empty one, `infer`, the step
/// loop) under the plugin, as cycles per instruction. `None` when the ELF or the run is missing.
fn cycles_of(env: &Env, target: &Target, elf: &Path, instructions: u64) -> Option<u64> {
    let symbol = |name: &str| env.toolchain.symbol_address(elf, name).ok();
    let (begin, end) = (symbol("kp_timer_start")?, symbol("kp_timer_ticks")?);
    let mix_file = elf.with_extension("mix");
    let extra = crate::qemu::insn_mix::plugin_args(env.plugin, begin, end, &mix_file);
    let fwt = FirmwareTarget::of(target);
    let run = env
        .toolchain
        .run_qemu_with(&fwt, elf, &extra, Duration::from_secs(300))
        .ok()?;
    if run.exit_code != 0 {
        return None;
    }
    let mix = crate::qemu::insn_mix::InsnMix::read(&mix_file).ok()?;
    let per_instruction = mix.estimated_cycles(&target.timing) as f64 / mix.total.max(1) as f64;
    Some((instructions as f64 * per_instruction).round() as u64)
}

fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Lstm(g) | Cell::Gru(g) => {
            let (a, b) = (g.w_ih.describe(), g.w_hh.describe());
            if a == b {
                a
            } else {
                format!("{a}; {b}")
            }
        }
        _ => String::new(),
    }
}

type LstmWeights<'a> = (
    &'a nalgebra::DMatrix<f64>,
    &'a nalgebra::DMatrix<f64>,
    &'a [f64],
    &'a [f64],
    usize,
);

#[allow(clippy::too_many_arguments)]
fn measure_cmsis_nn(
    env: &Env,
    tree: &CmsisNn,
    name: &str,
    target: &Target,
    precision: Precision,
    (w_ih, w_hh, bias, x, steps): LstmWeights,
    dir: &Path,
    mut row: ModelRow,
) -> Result<ModelRow, String> {
    let (reference, c_max) = nn::float_lstm(w_ih, w_hh, bias, x, steps);
    let q = nn::quantize_lstm(w_ih, w_hh, bias, x, steps, c_max, precision);
    let fwt = FirmwareTarget::of(target);
    let runtime = dir.join("runtime");
    qemu::write_runtime(&runtime).map_err(tool)?;
    let shim = dir.join("shim");
    super::cmsis::write_shim(&shim)?;
    let main = dir.join("cmsis_nn_main.c");
    qemu::write_file(&main, &nn::lstm_main(&q, name)?).map_err(tool)?;
    // CMSIS-NN and its caller with kpgen's optimization level (-O2) and the target's flags;
    // its DSP and Helium paths follow the core's __ARM_FEATURE_* macros.
    let flags = |extra: &[String]| -> Vec<String> {
        let mut f: Vec<String> = [
            "-std=gnu11",
            "-O2",
            "-ffreestanding",
            "-ffunction-sections",
            "-fdata-sections",
        ]
        .map(String::from)
        .to_vec();
        f.push(format!("-I{}", shim.display()));
        f.push(format!("-I{}", tree.include().display()));
        f.extend(extra.iter().cloned());
        f
    };
    let mut objects = Vec::new();
    let mut sources = vec![(main.clone(), vec![format!("-I{}", runtime.display())])];
    for s in tree.lstm_sources(precision)? {
        sources.push((s, Vec::new()));
    }
    for (k, (source, extra)) in sources.iter().enumerate() {
        let object = dir.join(format!("obj{k}.o"));
        crate::qemu::run_checked(
            env.toolchain
                .c_compiler(&fwt)
                .args(flags(extra))
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(&object),
            &format!("compile {}", source.display()),
        )
        .map_err(tool)?;
        objects.push(object);
    }
    let firmware = Firmware {
        name: "cmsis_nn".to_owned(),
        c_sources: vec![runtime.join(qemu::HARNESS_C)],
        include_dirs: vec![runtime.clone()],
        libs: objects,
    };
    let build = match env.toolchain.build_firmware(&fwt, &firmware, dir) {
        Ok(b) => b,
        Err(e) => {
            return match does_not_fit(&e) {
                Some(why) => {
                    row.status = why;
                    Ok(row)
                }
                None => Err(e.to_string()),
            }
        }
    };
    let run = run_counted(env, &fwt, target, &build.elf)?;
    let codes: Vec<i32> = run
        .outputs
        .iter()
        .map(|&b| match precision {
            Precision::Int16 => b as u16 as i16 as i32,
            _ => b as u8 as i8 as i32,
        })
        .collect();
    let per_step = |v: u64| (v as f64 / steps.max(1) as f64).round() as u64;
    row.instructions_per_step = Some(per_step(run.instructions));
    row.cycles_per_step = Some(per_step(run.cycles));
    row.status = if codes.len() != steps * w_hh.ncols() {
        format!(
            "WRONG: printed {} outputs, expected {}",
            codes.len(),
            steps * w_hh.ncols()
        )
    } else {
        let (first, last) = nn::errors(&q, &codes, &reference);
        if first <= TOLERANCE {
            format!(
                "ok: steps 1-{} within {first:.3} of the float LSTM (tolerance {TOLERANCE}); \
                 last step {last:.3}",
                nn::CHECKED_STEPS
            )
        } else {
            format!(
                "DIFFERS from the float LSTM: steps 1-{} off by {first:.3} > {TOLERANCE}; \
                 last step {last:.3}",
                nn::CHECKED_STEPS
            )
        }
    };
    Ok(row)
}
