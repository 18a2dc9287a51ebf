//! Smoke tests of the firmware toolchain and the bare-metal runtime under QEMU (Cortex-M4F,
//! mps2-an386). They need arm-none-eabi-gcc, qemu-system-arm and the thumbv7em-none-eabihf
//! Rust target, and FAIL (never skip) when those are missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kpgen::qemu::{self, FirmwareBuild, FirmwareTarget, QemuRun, Toolchain, ToolchainError};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The values of targets/cortex-m4.toml.
fn cortex_m4() -> FirmwareTarget {
    FirmwareTarget {
        cflags: [
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
        ]
        .map(String::from)
        .to_vec(),
        qemu_machine: "mps2-an386".into(),
        qemu_cpu: None,
        systick_hz: 25_000_000,
        icount_shift: 6,
        flash_origin: 0x0000_0000,
        flash_size: 0x0040_0000,
        ram_origin: 0x2000_0000,
        ram_size: 0x0040_0000,
        bulk: None,
        rust_triple: Some("thumbv7em-none-eabihf".into()),
        rustflags: ["-C", "target-cpu=cortex-m4"].map(String::from).to_vec(),
    }
}

fn tools() -> Toolchain {
    Toolchain::locate().unwrap_or_else(|e| panic!("cross toolchain missing: {e}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// Compiles the harness plus `main_c` (and `extra_libs`) into firmware inside `dir`.
fn build(
    tc: &Toolchain,
    dir: &Path,
    main_c: &str,
    extra_libs: &[PathBuf],
) -> Result<FirmwareBuild, ToolchainError> {
    let runtime = dir.join("runtime");
    qemu::write_runtime(&runtime).unwrap();
    let main = dir.join("main.c");
    std::fs::write(&main, main_c).unwrap();
    tc.compile_firmware(
        &cortex_m4(),
        &[runtime.join(qemu::HARNESS_C), main],
        &[runtime],
        extra_libs,
        &dir.join("obj"),
        &dir.join("fw.elf"),
    )
}

/// Builds and runs firmware; the returned directory holds its files until dropped.
fn build_and_run(
    tc: &Toolchain,
    main_c: &str,
    extra_libs: &[PathBuf],
) -> (tempfile::TempDir, FirmwareBuild, QemuRun) {
    let dir = tempfile::tempdir().unwrap();
    let fw = build(tc, dir.path(), main_c, extra_libs).unwrap_or_else(|e| panic!("{e}"));
    let run = tc.run_qemu(&cortex_m4(), &fw.elf, TIMEOUT).unwrap();
    assert!(!run.timed_out, "firmware timed out: {run:?}");
    (dir, fw, run)
}

/// `key value` lines of the firmware output.
fn values(output: &str) -> HashMap<String, u32> {
    output
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

const MEASURE_MAIN: &str = r#"
#include "kp_harness.h"

#define NOPS(n) __asm__ volatile(".rept " #n "\n\tnop\n\t.endr")
#define REPORT(name, t) do { kp_puts(name " "); kp_put_u32(t); kp_puts("\n"); } while (0)
#define MEASURE(name, region) do { \
        uint32_t t_; kp_timer_start(); region; t_ = kp_timer_ticks(); REPORT(name, t_); \
    } while (0)

__attribute__((noipa)) void kp_test_no_stack(void) { __asm__ volatile(""); }

__attribute__((noipa)) uint32_t kp_test_big_frame(uint32_t seed)
{
    volatile uint32_t buf[64];
    uint32_t i, acc = 0;
    for (i = 0; i < 64u; ++i) { buf[i] = seed + i; }
    for (i = 0; i < 64u; ++i) { acc += buf[i]; }
    return acc;
}

volatile uint32_t kp_test_sink;

int main(void)
{
    uint32_t base;
    MEASURE("overhead", (void)0);
    MEASURE("nop1", NOPS(1));
    MEASURE("nop2", NOPS(2));
    MEASURE("nop3", NOPS(3));
    MEASURE("nop4", NOPS(4));
    MEASURE("nop5", NOPS(5));
    MEASURE("nop7", NOPS(7));
    MEASURE("nop10", NOPS(10));
    MEASURE("nop1000", NOPS(1000));
    /* 1 + 2 * 50000 instructions */
    MEASURE("loop100001", __asm__ volatile("ldr r0, =50000\n1:\n\tsubs r0, #1\n\tbne 1b" ::: "r0", "cc"));
    /* 1 + 2 * 10000000 instructions: several wraps of the 24-bit counter */
    MEASURE("loop20000001", __asm__ volatile("ldr r0, =10000000\n1:\n\tsubs r0, #1\n\tbne 1b" ::: "r0", "cc"));

    kp_stack_repaint();
    base = kp_stack_high_water();
    kp_test_no_stack();
    REPORT("stack_no_stack", kp_stack_high_water() - base);

    kp_stack_repaint();
    base = kp_stack_high_water();
    kp_test_sink = kp_test_big_frame(3u);
    REPORT("stack_big_frame", kp_stack_high_water() - base);
    REPORT("stack_size", kp_stack_size());
    return 7;
}
"#;

#[test]
fn instruction_counts_stack_and_exit_code() {
    let tc = tools();
    let target = cortex_m4();
    let (_dir, fw, run) = build_and_run(&tc, MEASURE_MAIN, &[]);
    assert_eq!(
        run.exit_code, 7,
        "main's return value is the exit status: {run:?}"
    );
    let v = values(&run.output);
    let overhead = v["overhead"];
    eprintln!(
        "empty region: {overhead} ticks = {} instructions",
        qemu::instructions(&target, overhead, 0)
    );
    assert!(
        qemu::instructions(&target, overhead, 0) <= 8,
        "overhead {overhead}"
    );
    for (name, expected) in [
        ("nop1", 1),
        ("nop2", 2),
        ("nop3", 3),
        ("nop4", 4),
        ("nop5", 5),
        ("nop7", 7),
        ("nop10", 10),
        ("nop1000", 1000),
        ("loop100001", 100_001),
    ] {
        assert_eq!(
            qemu::instructions(&target, v[name], overhead),
            expected,
            "{name}: {} ticks, overhead {overhead}\n{}",
            v[name],
            run.output
        );
    }

    // Painted-stack measurement agrees with GCC's static stack usage.
    let su: Vec<_> = fw
        .stack_usage
        .iter()
        .flat_map(|p| qemu::parse_stack_usage(&std::fs::read_to_string(p).unwrap()))
        .collect();
    let static_usage = |f: &str| su.iter().find(|(n, _, _)| n == f).unwrap().1;
    assert_eq!(v["stack_no_stack"], static_usage("kp_test_no_stack"));
    assert_eq!(v["stack_big_frame"], static_usage("kp_test_big_frame"));
    assert!(v["stack_big_frame"] >= 256, "{}", run.output);
    assert_eq!(u64::from(v["stack_size"]), qemu::stack_size(&target));

    // Past 2^24 ticks the SysTick interrupt counts the wraps; each adds its handler's few
    // instructions to the count.
    let long = qemu::instructions(&target, v["loop20000001"], overhead);
    let wraps = (20_000_001 * 32 / 10) >> 24;
    assert!(wraps >= 3);
    assert!(
        (20_000_001..=20_000_001 + 10 * wraps).contains(&long),
        "long region: {long} instructions for 20000001 ({wraps} wraps)"
    );
    eprintln!("20000001-instruction region read as {long} ({wraps} wraps)");

    let sizes = tc.section_sizes(&fw.elf).unwrap();
    assert!(sizes.text > 1000 && sizes.rodata >= 192, "{sizes:?}");
    assert_eq!(
        sizes.ram(),
        8,
        "only kp_test_sink and the timer wrap count: {sizes:?}"
    );
    let obj_sizes = tc.section_sizes(&fw.objects[1]).unwrap();
    assert!(obj_sizes.text > 0 && obj_sizes.bss == 4, "{obj_sizes:?}");
}

#[test]
fn faults_exit_with_their_documented_codes() {
    let tc = tools();
    let cases = [
        // Undefined instruction: UsageFault (the harness enables configurable faults).
        (
            "__asm__ volatile(\"udf #0\");",
            qemu::EXIT_USAGE_FAULT,
            "usage fault",
        ),
        // With the configurable faults disabled, the same escalates to HardFault.
        (
            "*(volatile uint32_t *)(uintptr_t)0xE000ED24u = 0u; __asm__ volatile(\"udf #0\");",
            qemu::EXIT_HARD_FAULT,
            "hard fault",
        ),
        // A load from unmapped memory.
        (
            "(void)*(volatile uint32_t *)(uintptr_t)0x70000000u;",
            qemu::EXIT_BUS_FAULT,
            "bus fault",
        ),
        // Executing from the never-executable system region.
        (
            "((void (*)(void))(uintptr_t)0xE0100001u)();",
            qemu::EXIT_MEM_FAULT,
            "memmanage fault",
        ),
        (
            "__asm__ volatile(\"svc #0\");",
            qemu::EXIT_OTHER_EXCEPTION,
            "unexpected",
        ),
    ];
    for (body, code, name) in cases {
        let main = format!(
            "#include \"kp_harness.h\"\nint main(void)\n{{\n    {body}\n    return 0;\n}}\n"
        );
        let (_dir, _, run) = build_and_run(&tc, &main, &[]);
        assert_eq!(run.exit_code, code, "{body}: {run:?}");
        assert!(
            run.output.starts_with(&format!("kp: {name} exception=")),
            "{run:?}"
        );
    }
}

#[test]
fn a_hung_firmware_is_killed_at_the_timeout() {
    let tc = tools();
    let dir = tempfile::tempdir().unwrap();
    let fw = build(&tc, dir.path(), "#include \"kp_harness.h\"\nint main(void)\n{\n    for (;;) {\n        __asm__ volatile(\"\");\n    }\n}\n", &[]).unwrap();
    let run = tc
        .run_qemu(&cortex_m4(), &fw.elf, Duration::from_millis(500))
        .unwrap();
    assert!(run.timed_out, "{run:?}");
    assert_eq!(run.exit_code, -1);
}

#[test]
fn a_firmware_costs_what_it_adds_to_its_baseline() {
    let tc = tools();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    qemu::write_runtime(&runtime).unwrap();
    // The measured code: a 64-word table in flash and a 16-word buffer in RAM.
    let with = "#include \"kp_harness.h\"\n\
                static const uint32_t table[64] = {1u};\n\
                static volatile uint32_t buffer[16];\n\
                int main(void)\n{\n    buffer[1] = table[kp_timer_ticks() & 63u];\n    return 0;\n}\n";
    let without = "#include \"kp_harness.h\"\nint main(void)\n{\n    return 0;\n}\n";
    let firmware = |name: &str, main_c: &str| {
        let main = dir.path().join(name).with_extension("c");
        std::fs::write(&main, main_c).unwrap();
        qemu::Firmware {
            name: name.to_owned(),
            c_sources: vec![runtime.join(qemu::HARNESS_C), main],
            include_dirs: vec![runtime.clone()],
            libs: Vec::new(),
        }
    };
    let built = tc
        .build_with_baseline(
            &cortex_m4(),
            &firmware("with", with),
            &firmware("without", without),
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(built.firmware.elf, dir.path().join("with.elf"));
    assert_eq!(built.baseline.elf, dir.path().join("without.elf"));
    assert!(built.firmware.objects[0].starts_with(dir.path().join("with")));
    // The table, and the few instructions of main that read it.
    assert!(
        (256..512).contains(&built.added_flash),
        "{}",
        built.added_flash
    );
    assert_eq!(built.added_ram, 64, "the buffer");
    let run = tc
        .run_qemu(&cortex_m4(), &built.firmware.elf, TIMEOUT)
        .unwrap();
    assert_eq!(run.exit_code, 0, "{run:?}");
}

const RUST_MAIN: &str = r#"
#include "kp_harness.h"
#include "kp_rust_shim.h"

static void put_floats(const char *name, const float *y, int n)
{
    int i;
    kp_puts(name);
    for (i = 0; i < n; ++i) {
        uint32_t bits;
        memcpy(&bits, &y[i], sizeof bits);
        kp_puts(" ");
        kp_put_hex32(bits);
    }
    kp_puts("\n");
}

int main(void)
{
    static const float x[6] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
    float y[2] = {0.0f, 0.0f};
    uint32_t overhead, t;
    kp_rust_reset();
    kp_rust_step(x, y);
    put_floats("step", y, 2);
    kp_timer_start();
    overhead = kp_timer_ticks();
    kp_timer_start();
    kp_rust_infer(x, y);
    t = kp_timer_ticks();
    put_floats("infer", y, 2);
    kp_puts("ticks "); kp_put_u32(t); kp_puts(" "); kp_put_u32(overhead); kp_puts("\n");
    return 0;
}
"#;

fn rust_staticlib(tc: &Toolchain, dir: &Path, crate_name: &str, fixture_dir: &str) -> PathBuf {
    let shim = dir.join("shim");
    qemu::write_rust_shim(&shim, crate_name, &fixture(fixture_dir), false).unwrap();
    tc.build_rust_staticlib(&cortex_m4(), &shim, &dir.join("target"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn hex(v: f32) -> String {
    format!("{:#010x}", v.to_bits())
}

#[test]
fn rust_shim_drives_a_panic_free_model() {
    let tc = tools();
    let dir = tempfile::tempdir().unwrap();
    let lib = rust_staticlib(&tc, dir.path(), "kp_tiny", "rust_tiny");
    let (_dir, _, run) = build_and_run(&tc, RUST_MAIN, &[lib]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    let lines: Vec<&str> = run.output.lines().collect();
    assert_eq!(lines[0], format!("step {} {}", hex(2.0), hex(-2.0)));
    assert_eq!(lines[1], format!("infer {} {}", hex(13.5), hex(-8.5)));
    let ticks: Vec<u32> = lines[2]
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    let n = qemu::instructions(&cortex_m4(), ticks[0], ticks[1]);
    eprintln!("kp_rust_infer: {n} instructions");
    assert!(n > 10 && n < 500, "{n}");
}

#[test]
fn rust_shim_over_a_panicking_model_fails_to_link() {
    let tc = tools();
    let dir = tempfile::tempdir().unwrap();
    let lib = rust_staticlib(&tc, dir.path(), "kp_tiny_panics", "rust_tiny_panics");
    match build(&tc, &dir.path().join("fw"), RUST_MAIN, &[lib]) {
        Err(ToolchainError::PanicPathReachable { stderr, .. }) => {
            assert!(stderr.contains(qemu::PANIC_SENTINEL), "{stderr}");
            eprintln!("expected link failure:\n{stderr}");
        }
        other => panic!("expected a panic-path link failure, got {other:?}"),
    }
}
