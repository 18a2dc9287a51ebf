//! The size objective (`optimize: size`, `--optimize size`): its plan rules, that its builds
//! are never larger than the speed builds of the same model and precision, that an int8 size
//! build is never larger than the default f32 build (objects measured with arm-none-eabi-size,
//! every bundled example on a Cortex-M0, M4 and M55), and that size builds compute what the
//! reference computes in QEMU (C and Rust; integers bit for bit).
//! Needs arm-none-eabi-gcc, qemu-system-arm and the Rust thumb targets (ci/setup), and FAILS
//! (never skips) when they are missing.

mod common;

use std::path::{Path, PathBuf};

use kpgen::base::sequences::TestInputs;
use kpgen::qemu::Toolchain;
use kpgen::spec::{Lang, Optimize, Precision};
use kpgen::target::Target;
use kpgen::verify::Platform;

const PRECISIONS: [Precision; 3] = [Precision::F32, Precision::Int8, Precision::Int16];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every model of the bundled data sets: `examples/{basic_motions,japanese_vowels}/*/spec.yaml`.
fn examples() -> Vec<PathBuf> {
    let sets = [Path::new("basic_motions"), Path::new("japanese_vowels")];
    let specs: Vec<PathBuf> = common::bundled_examples()
        .into_iter()
        .filter(|spec| {
            let set = spec
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name);
            set.is_some_and(|set| sets.iter().any(|s| s.as_os_str() == set))
        })
        .collect();
    assert!(specs.len() >= 20, "{} bundled examples", specs.len());
    specs
}

fn target(name: &str) -> Target {
    kpgen::target::lookup(name).unwrap_or_else(|d| panic!("{name}: {}", d.render()))
}

fn generate(
    spec: &Path,
    target: &Target,
    precision: Precision,
    optimize: Optimize,
) -> kpgen::Generation {
    let mut model = kpgen::load(spec).unwrap_or_else(|d| panic!("{}", d.render()));
    model.precision = precision;
    model.optimize = optimize;
    kpgen::generate_model(&model, target)
        .unwrap_or_else(|d| panic!("{} {}: {}", spec.display(), precision.as_str(), d.render()))
}

#[test]
fn the_size_rules_loop_every_factor_and_keep_every_overlay_in_csr() {
    for name in ["cortex-m0", "cortex-m4", "cortex-m55"] {
        let t = target(name);
        let speed = kpgen::plan::rules_for(&t, Optimize::Speed);
        assert_eq!(
            speed.unroll_max_factor_elems,
            t.plan.unroll_max_factor_elems
        );
        assert_eq!(speed.tile_float, t.plan.tile_float);
        let size = kpgen::plan::rules_for(&t, Optimize::Size);
        assert_eq!(size.unroll_max_factor_elems, 0, "{name}");
        assert_eq!(size.straight_line_max_nnz, 0, "{name}");
        assert_eq!(size.tile_int, [1, 1], "{name}");
        // Helium's float form needs its four rows of lanes.
        let float = if t.features.mve {
            t.plan.tile_float
        } else {
            [1, 1]
        };
        assert_eq!(size.tile_float, float, "{name}");
    }
    // The plan and the report say what was chosen.
    let spec = repo().join("examples/basic_motions/dkp/spec.yaml");
    let gen = generate(&spec, &target("cortex-m4"), Precision::Int8, Optimize::Size);
    assert_eq!(gen.plan.optimize, Optimize::Size);
    let report = serde_json::to_value(&gen.report).expect("the report as JSON");
    assert_eq!(report["optimize"]["objective"], "size", "{report:#}");
    assert!(report["optimize"]["why"]
        .as_str()
        .unwrap_or("")
        .contains("CSR"));
    let matrices = gen.plan.layers.iter().flat_map(|l| &l.matrices);
    for m in matrices {
        assert!(m.product.stages().iter().all(|s| !s.unrolled), "{}", m.id);
        if let Some(o) = &m.overlay {
            assert!(
                matches!(o.encoding, kpgen::plan::OverlayEncoding::Csr { .. }),
                "{}",
                m.id
            );
        }
    }
}

/// Per core, model and precision: the size build's object is no larger than the speed build's,
/// and the int8 size build no larger than the default (speed) f32 build.
#[test]
fn size_builds_are_never_larger_than_speed_builds_and_int8_never_larger_than_f32() {
    let specs = examples();
    let jobs: Vec<(String, PathBuf)> = ["cortex-m0", "cortex-m4", "cortex-m55"]
        .iter()
        .flat_map(|t| specs.iter().map(move |s| (t.to_string(), s.clone())))
        .collect();
    let queue = std::sync::Mutex::new(jobs);
    let failures = std::sync::Mutex::new(Vec::new());
    let rows = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some((name, spec)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let t = target(&name);
                let dir = tempfile::tempdir().expect("a temporary folder");
                let bytes = |p: Precision, o: Optimize| {
                    let sub = dir.path().join(format!("{}-{}", p.as_str(), o.as_str()));
                    common::object_bytes(&generate(&spec, &t, p, o), &t, &sub, "-Os")
                };
                let what = format!(
                    "{name} {}",
                    spec.strip_prefix(repo()).unwrap_or(&spec).display()
                );
                let mut row = Vec::new();
                for p in PRECISIONS {
                    let (speed, size) = (bytes(p, Optimize::Speed), bytes(p, Optimize::Size));
                    if size > speed {
                        failures.lock().unwrap().push(format!(
                            "{what} {}: size build {size} B > speed build {speed} B",
                            p.as_str()
                        ));
                    }
                    row.push((p, speed, size));
                }
                let (f32_speed, int8_size) = (row[0].1, row[1].2);
                if int8_size > f32_speed {
                    failures.lock().unwrap().push(format!(
                        "{what}: int8 size build {int8_size} B > f32 build {f32_speed} B"
                    ));
                }
                rows.lock().unwrap().push(format!(
                    "{what}: {}",
                    row.iter()
                        .map(|(p, a, b)| format!("{} {a} -> {b} B", p.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort();
    eprintln!("speed -> size, object bytes at -Os:\n{}", rows.join("\n"));
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A core, bundled basic_motions models, precisions and languages.
type QemuCase = (
    &'static str,
    &'static [&'static str],
    &'static [Precision],
    &'static [Lang],
);

/// Size builds run in QEMU against the reference: in C and Rust on the M4 and the M0 (integers
/// bit for bit), in C on the M55.
#[test]
fn size_builds_match_the_reference_in_qemu() {
    let platform = Platform::Qemu(
        Toolchain::locate()
            .unwrap_or_else(|e| panic!("the cross toolchain is missing (run ci/setup): {e}")),
    );
    let mut failures = Vec::new();
    let cases: &[QemuCase] = &[
        (
            "cortex-m4",
            &["kp", "dkp", "hkp8", "lowrank", "pruned"],
            &PRECISIONS,
            &[Lang::C, Lang::Rust],
        ),
        (
            "cortex-m0",
            &["kp", "dkp"],
            &[Precision::Int8],
            &[Lang::C, Lang::Rust],
        ),
        ("cortex-m55", &["kp", "dkp"], &PRECISIONS, &[Lang::C]),
    ];
    for &(name, models, precisions, langs) in cases {
        let t = target(name);
        for model in models {
            let spec = repo().join(format!("examples/basic_motions/{model}/spec.yaml"));
            for &p in precisions {
                let gen = generate(&spec, &t, p, Optimize::Size);
                let inputs = TestInputs::random(2, gen.plan.steps, gen.plan.input_features, 5, 1.0);
                let dir = tempfile::tempdir().expect("a temporary folder");
                if let Err(e) = common::run_against_reference(
                    &platform,
                    &t,
                    &gen,
                    &inputs,
                    langs,
                    false,
                    dir.path(),
                ) {
                    failures.push(format!("{name} {model} {}: {e}", p.as_str()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
