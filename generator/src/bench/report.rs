//! Benchmark output: progress lines and the markdown table (kpgen beside CMSIS-DSP per layer,
//! core and precision).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::{ModelRow, CMSIS_NN, KPGEN_DENSE, KPGEN_FORM};
use super::{BenchRun, Measurement, CMSIS, KPGEN};

use crate::report::thousands;

fn opt(n: Option<u64>) -> String {
    n.map_or("–".to_owned(), thousands)
}

pub fn progress_line(m: &Measurement, total: usize) -> String {
    let ipm = m
        .instructions_per_mac()
        .map_or(String::new(), |v| format!(" ({v:.2}/MAC)"));
    format!(
        "kpgen bench [{total} jobs]: {:<22} {:<11} {:<5} {:<9} {:>12} instr{ipm} {}",
        m.layer,
        m.target,
        m.precision,
        m.implementation,
        opt(m.instructions),
        if m.status == "ok" { "" } else { &m.status }
    )
}

/// kpgen and CMSIS-DSP measurements of one (layer, target, precision).
fn pairs(run: &BenchRun) -> Vec<(&Measurement, Option<&Measurement>)> {
    let mut dense: BTreeMap<(String, String, String), &Measurement> = BTreeMap::new();
    for m in run
        .measurements
        .iter()
        .filter(|m| m.implementation == CMSIS)
    {
        dense.insert((m.layer.clone(), m.target.clone(), m.precision.clone()), m);
    }
    run.measurements
        .iter()
        .filter(|m| m.implementation == KPGEN)
        .map(|k| {
            let d = dense
                .get(&(k.layer.clone(), k.target.clone(), k.precision.clone()))
                .copied();
            (k, d)
        })
        .collect()
}

/// The markdown tables: the kernels (one row per layer, core and precision), then the model
/// rows of `--model`, each when there is something in it.
pub fn markdown(run: &BenchRun) -> String {
    let mut out = String::new();
    if !run.measurements.is_empty() || run.model_rows.is_empty() {
        out.push_str(&kernel_markdown(run));
    }
    if !run.model_rows.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&model_markdown(&run.model_rows));
    }
    if run.compiler != crate::qemu::CCompiler::Gcc {
        // Tables from the default compiler say nothing, as they always have.
        out.insert_str(
            0,
            &format!(
                "C compiled by {} (`kpgen bench --cc {0}`; the cross gcc links).\n\n",
                run.compiler
            ),
        );
    }
    out
}

pub fn model_progress_line(r: &ModelRow) -> String {
    format!(
        "kpgen bench --model: {} layer {} {:<11} {:<5} {:<11} {:>9} instr/step {}",
        r.model,
        r.layer,
        r.target,
        r.precision,
        r.implementation,
        opt(r.instructions_per_step),
        r.status
    )
}

/// Per-step figures of each recurrent layer, one line per (layer, core, precision): kpgen's
/// form, its dense expansion and CMSIS-NN's LSTM; a speed-up is CMSIS-NN's instructions over
/// kpgen's. `check` is `ok` when every implementation passed its check, else what failed.
pub fn model_markdown(rows: &[ModelRow]) -> String {
    let mut out = String::from(
        "| model | layer | shape (in × units) | core | prec | kpgen instr/step | kpgen dense | \
         CMSIS-NN | speed-up kpgen / dense vs CMSIS-NN | est. cycles/step kpgen / dense / CMSIS-NN | check |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut groups: Vec<Vec<&ModelRow>> = Vec::new();
    for r in rows {
        let same = |g: &Vec<&ModelRow>| {
            let f = g[0];
            (&f.model, f.layer, &f.target, &f.precision)
                == (&r.model, r.layer, &r.target, &r.precision)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    for g in groups {
        let f = g[0];
        let of = |name: &str| g.iter().find(|r| r.implementation == name).copied();
        let (kp, dense, cm) = (of(KPGEN_FORM), of(KPGEN_DENSE), of(CMSIS_NN));
        let instr = |r: Option<&ModelRow>| {
            r.and_then(|r| r.instructions_per_step)
                .map_or("–".to_owned(), thousands)
        };
        let cm_instr = cm.and_then(|c| c.instructions_per_step);
        let cycles = |r: Option<&ModelRow>| {
            r.and_then(|r| r.cycles_per_step)
                .map_or("–".to_owned(), thousands)
        };
        let speed = |r: Option<&ModelRow>| match (cm_instr, r.and_then(|r| r.instructions_per_step))
        {
            (Some(c), Some(k)) => format!("{:.2}x", c as f64 / k.max(1) as f64),
            _ => "–".to_owned(),
        };
        let cm_cell = match cm {
            Some(c) if c.instructions_per_step.is_none() => c.status.clone(),
            Some(_) => instr(cm),
            None => "not run (no --cmsis-nn)".to_owned(),
        };
        let failed: Vec<String> = g
            .iter()
            .filter(|r| !r.status.starts_with("ok") && r.instructions_per_step.is_some())
            .map(|r| format!("{}: {}", r.implementation, r.status))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} {} ({}) | {} × {} | {} | {} | {} | {} | {} | {} / {} | {} / {} / {} | {} |",
            f.model,
            f.layer,
            f.kind,
            kp.map_or("–", |k| k.form.as_str()),
            f.inputs,
            f.units,
            f.target.trim_start_matches("cortex-"),
            f.precision,
            instr(kp),
            instr(dense),
            cm_cell,
            speed(kp),
            speed(dense),
            cycles(kp),
            cycles(dense),
            cycles(cm),
            if failed.is_empty() {
                "ok".to_owned()
            } else {
                failed.join("; ").replace('|', "/")
            },
        );
    }
    out
}

/// The kernel table: one row per layer, core and precision.
fn kernel_markdown(run: &BenchRun) -> String {
    let mut out = String::new();
    out.push_str(
        "| layer | core | prec | MACs kpgen / dense | kpgen instr | instr/MAC | CMSIS-DSP instr | \
         instr/MAC | speed-up | speed-up ÷ MAC cut | est. cycles kpgen / CMSIS | flash B kpgen / dense |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (k, d) in pairs(run) {
        let ipm = |m: &Measurement| {
            m.instructions_per_mac()
                .map_or("–".to_owned(), |v| format!("{v:.2}"))
        };
        let (d_instr, d_ipm, speed, rel, d_cyc, d_flash) = match d {
            Some(d) if d.instructions.is_some() => {
                let speed = d.instructions.unwrap_or(0) as f64
                    / k.instructions.unwrap_or(u64::MAX).max(1) as f64;
                let cut = d.macs as f64 / k.macs.max(1) as f64;
                let flag = if d.status == "ok" { "" } else { " ⚠" };
                (
                    format!("{}{flag}", opt(d.instructions)),
                    ipm(d),
                    format!("{speed:.2}x"),
                    format!("{:.2}", speed / cut),
                    opt(d.cycles_estimate),
                    opt(d.flash),
                )
            }
            Some(d) => (
                d.status.clone(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                opt(d.flash.or(Some(d.weight_bytes))),
            ),
            None => (
                "not run".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ),
        };
        let k_instr = if k.status == "ok" {
            opt(k.instructions)
        } else {
            k.status.clone()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
            k.layer,
            k.target.trim_start_matches("cortex-"),
            k.precision,
            thousands(k.macs),
            thousands((k.rows * k.cols) as u64),
            k_instr,
            ipm(k),
            d_instr,
            d_ipm,
            speed,
            rel,
            opt(k.cycles_estimate),
            d_cyc,
            opt(k.flash),
            d_flash,
        );
    }
    let wrong: Vec<&Measurement> = run
        .measurements
        .iter()
        .filter(|m| m.implementation == CMSIS && m.status.starts_with("wrong"))
        .collect();
    if !wrong.is_empty() {
        out.push_str("\n⚠ CMSIS-DSP gave wrong results (its count is still shown):\n");
        let mut seen = std::collections::BTreeSet::new();
        for m in wrong {
            if seen.insert((m.rows, m.cols, m.target.clone(), m.precision.clone())) {
                let _ = writeln!(
                    out,
                    "- {}x{} on {} ({}): {}",
                    m.rows, m.cols, m.target, m.precision, m.status
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(implementation: &str, instructions: Option<u64>, status: &str) -> ModelRow {
        ModelRow {
            model: "m".into(),
            layer: 0,
            kind: "lstm".into(),
            inputs: 6,
            units: 32,
            target: "cortex-m4".into(),
            precision: "int8".into(),
            implementation: implementation.into(),
            form: "dense".into(),
            steps: 100,
            instructions_per_step: instructions,
            cycles_per_step: instructions.map(|i| i + 1),
            status: status.into(),
        }
    }

    #[test]
    fn model_table_puts_the_three_side_by_side_and_shows_a_failed_check() {
        let rows = [
            row(KPGEN_FORM, Some(1000), "ok: equals"),
            row(KPGEN_DENSE, Some(2000), "ok: equals"),
            row(CMSIS_NN, Some(3000), "ok: step 1"),
        ];
        let table = model_markdown(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[2].contains("| 1,000 | 2,000 | 3,000 | 3.00x / 1.50x |"),
            "{table}"
        );
        assert!(lines[2].ends_with("| ok |"), "{table}");
        let bad = [
            row(KPGEN_FORM, Some(1000), "ok"),
            row(
                CMSIS_NN,
                Some(3000),
                "DIFFERS from the float LSTM: step 1 off by 0.5",
            ),
        ];
        assert!(model_markdown(&bad).contains("cmsis-nn: DIFFERS from the float LSTM"));
        let gru = [
            row(KPGEN_FORM, Some(1000), "ok"),
            row(CMSIS_NN, None, "CMSIS-NN has no GRU kernel"),
        ];
        assert!(model_markdown(&gru).contains("| CMSIS-NN has no GRU kernel |"));
    }

    #[test]
    fn a_table_from_clang_says_so_and_one_from_gcc_keeps_its_old_form() {
        let mut run = BenchRun {
            reason: String::new(),
            cmsis_dsp: String::new(),
            compiler: crate::qemu::CCompiler::Gcc,
            measurements: Vec::new(),
            model_rows: vec![row(KPGEN_FORM, Some(1000), "ok")],
        };
        assert!(markdown(&run).starts_with("| model |"));
        run.compiler = crate::qemu::CCompiler::Clang;
        let table = markdown(&run);
        assert!(
            table.starts_with("C compiled by clang (`kpgen bench --cc clang`")
                && table.contains(").\n\n| model |"),
            "{table}"
        );
    }
}
