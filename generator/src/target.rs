//! Target descriptions: one data file per core in `targets/`, embedded in the binary.

use serde::{Deserialize, Serialize};

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    pub description: String,
    pub features: Features,
    pub c: CTarget,
    pub rust: RustTarget,
    pub qemu: QemuTarget,
    pub memory: MemoryMap,
    pub budget: Budget,
    pub plan: PlanRules,
    pub timing: Timing,
    pub code: CodeSizes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fpu {
    None,
    Single,
    Double,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    pub fpu: Fpu,
    pub dsp: bool,
    pub mve: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CTarget {
    /// Flags selecting the core, its FPU and float ABI.
    pub cflags: Vec<String>,
    /// Predefined macros of which a compiler for this core defines at least one (GCC and
    /// Clang); the generated C stops with #error on any other Arm core. Empty: no check.
    #[serde(default)]
    pub arch_macros: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RustTarget {
    /// rustup target triple, absent where rustup has none for this core.
    pub triple: Option<String>,
    #[serde(default)]
    pub rustflags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QemuTarget {
    pub machine: String,
    #[serde(default)]
    pub cpu: Option<String>,
    /// SysTick's processor clock in the emulated board, for converting ticks to instructions.
    pub systick_hz: u64,
    pub icount_shift: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryMap {
    pub flash_origin: u64,
    pub flash_size: u64,
    pub ram_origin: u64,
    pub ram_size: u64,
    /// A large RAM region of the emulated board (absent on small boards) where `kpgen bench`
    /// places dense baseline matrices too big for the emulated flash: `[origin, size]`.
    #[serde(default)]
    pub bulk: Option<[u64; 2]>,
}

/// Flash and RAM of a typical part with this core: a build exceeding them is refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub flash: u64,
    pub ram: u64,
}

/// Thresholds the planner uses for this core.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRules {
    /// A stored matrix (KP factor or dense weight) with at most this many elements is unrolled:
    /// its weights become literals in straight-line code.
    pub unroll_max_factor_elems: usize,
    /// Helium cores: what a MAC of an integer stage that reads its input strided along the
    /// reduction (dual 16-bit MACs) costs against one of a contiguous stage (vector dot
    /// products), per precision: the order of a two-factor KP product minimizes MACs weighted
    /// by it. Absent: orders minimize MACs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strided_mac_cost: Option<StridedMacCost>,
    /// A doping overlay with at most this many non-zeros becomes straight-line code.
    pub straight_line_max_nnz: usize,
    /// Register tile `[rows, columns]` of a stored factor's loops in float builds: that many
    /// outputs accumulate in registers per pass over the reduction (see `kernel::Stmt::Tile`).
    pub tile_float: [usize; 2],
    /// The same for integer builds (fewer, since they live in core registers).
    pub tile_int: [usize; 2],
}

/// [`PlanRules::strided_mac_cost`] per integer precision.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StridedMacCost {
    pub int8: f64,
    pub int16: f64,
}

impl PlanRules {
    /// The register tile limit of a build: integer (`fixed`) or float.
    pub fn tile(&self, fixed: bool) -> [usize; 2] {
        if fixed {
            self.tile_int
        } else {
            self.tile_float
        }
    }

    /// The relative cost of a strided stage's MAC in a build with `bits`-bit integer weights
    /// (None: float), 1 where the target sets none.
    pub fn strided_weight(&self, bits: Option<u32>) -> f64 {
        match (self.strided_mac_cost, bits) {
            (Some(c), Some(8)) => c.int8,
            (Some(c), Some(16)) => c.int16,
            _ => 1.0,
        }
    }
}

/// Cycles per executed instruction class, from the core's published instruction timings:
/// the data of the cycle estimate of [`crate::qemu::insn_mix`]. An instruction of a class
/// costs the class's figure; the multi-register classes cost `class + class_per_reg x
/// registers`; each taken branch adds `taken_branch`. The class names are those of the
/// `insn_mix` plugin. Figures are fractional where a core moves two registers per cycle.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Where the figures come from, and that they are an estimate.
    pub note: String,
    /// Extra cycles per taken branch (pipeline refill), on top of the branch's class.
    pub taken_branch: f64,
    pub alu: f64,
    pub it: f64,
    pub system: f64,
    pub mul: f64,
    pub mla: f64,
    pub mul_long: f64,
    pub dsp_mac: f64,
    pub simd: f64,
    pub div: f64,
    pub load: f64,
    pub store: f64,
    pub load_multiple: f64,
    pub load_multiple_per_reg: f64,
    pub store_multiple: f64,
    pub store_multiple_per_reg: f64,
    pub branch: f64,
    pub fp_alu: f64,
    pub fp_mul: f64,
    pub fp_mac: f64,
    pub fp_div: f64,
    pub fp_load: f64,
    pub fp_store: f64,
    pub fp_load_multiple: f64,
    pub fp_load_multiple_per_reg: f64,
    pub fp_store_multiple: f64,
    pub fp_store_multiple_per_reg: f64,
    pub mve_load: f64,
    pub mve_store: f64,
    pub mve_other: f64,
    /// Anything the plugin did not recognise.
    pub other: f64,
}

/// A construct of a generated model whose code the flash estimate counts
/// (`lower::flash`), with [`CodeSizes`] bytes per occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Construct {
    /// The model's entry points (step, reset, infer; quantize and dequantize in fixed point).
    Program,
    /// One operation of a step (a bias load, a kernel call, a cell update, a copy...).
    Op,
    /// One matrix kernel (its function, inlined or not).
    Kernel,
    /// The LSTM cell update of the runtime, present once whatever the number of LSTM layers.
    Lstm,
    /// The GRU cell update, once.
    Gru,
    /// The FastGRNN cell update, once.
    Fastgrnn,
    /// A dense layer's sigmoid (float or narrowing), once.
    Sigmoid,
    /// A dense layer's tanh, once.
    Tanh,
    /// A dense layer's softmax, once.
    Softmax,
    /// A dense layer's ReLU, once.
    Relu,
    /// A multiply-accumulate with a literal weight (unrolled factors, straight-line overlays).
    UnrolledMac,
    /// A statement of straight-line sums: one output requantized (fixed point) and stored.
    Sum,
    /// A loop with a constant bound around sums.
    Loop,
    /// One code block of a tiled stage: a block shape of its register tile (remainder
    /// blocks are code of their own).
    TileBlock,
    /// One accumulator of a tiled block (its MAC, load and store code in the inner loop).
    TileMac,
    /// A loop of a tiled stage over its blocks of rows or columns, or its second outer loop.
    TileLoop,
    /// One accumulator of a tiled block's remainder pass: the last `q % group` weights of a
    /// dual-MAC block, or the predicated last chunk of a Helium integer block.
    TileTail,
    /// A CSR overlay's row loop.
    Csr,
}

impl Construct {
    pub const ALL: [Construct; 18] = [
        Construct::Program,
        Construct::Op,
        Construct::Kernel,
        Construct::Lstm,
        Construct::Gru,
        Construct::Fastgrnn,
        Construct::Sigmoid,
        Construct::Tanh,
        Construct::Softmax,
        Construct::Relu,
        Construct::UnrolledMac,
        Construct::Sum,
        Construct::Loop,
        Construct::TileBlock,
        Construct::TileMac,
        Construct::TileLoop,
        Construct::TileTail,
        Construct::Csr,
    ];

    /// Its key in a target file's `[code.bytes]`.
    pub fn name(self) -> &'static str {
        match self {
            Construct::Program => "program",
            Construct::Op => "op",
            Construct::Kernel => "kernel",
            Construct::Lstm => "lstm",
            Construct::Gru => "gru",
            Construct::Fastgrnn => "fastgrnn",
            Construct::Sigmoid => "sigmoid",
            Construct::Tanh => "tanh",
            Construct::Softmax => "softmax",
            Construct::Relu => "relu",
            Construct::UnrolledMac => "unrolled_mac",
            Construct::Sum => "sum",
            Construct::Loop => "loop",
            Construct::TileBlock => "tile_block",
            Construct::TileMac => "tile_mac",
            Construct::TileLoop => "tile_loop",
            Construct::TileTail => "tile_tail",
            Construct::Csr => "csr",
        }
    }
}

/// Bytes of code per [`Construct`] in the model's C object compiled with the core's flags at
/// `-Os`, per precision `[f32, int16, int8]`: a least-squares fit to measured objects
/// (`bench/codesize_fit.py` prints it), the data of the flash estimate's code part.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSizes {
    /// What the figures were fitted to, and how well they fit.
    pub note: String,
    /// Construct name -> bytes `[f32, int16, int8]`; every [`Construct`] exactly once.
    pub bytes: std::collections::BTreeMap<String, [f64; 3]>,
}

impl CodeSizes {
    /// Bytes of code one `construct` adds to a build of `precision`.
    pub fn bytes(&self, construct: Construct, precision: crate::spec::Precision) -> f64 {
        let column = match precision {
            crate::spec::Precision::F32 => 0,
            crate::spec::Precision::Int16 => 1,
            crate::spec::Precision::Int8 => 2,
        };
        self.bytes.get(construct.name()).map_or(0.0, |b| b[column])
    }
}

/// The targets shipped with kpgen, as (file name, contents): every file of `targets/`, by name
/// (build.rs embeds them).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_targets.rs"));

/// Names of the built-in targets.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// All built-in targets, parsed.
pub fn builtin_targets() -> Vec<Target> {
    BUILTIN.iter().filter_map(|(n, _)| lookup(n).ok()).collect()
}

/// A built-in target by name (e.g. `cortex-m4`), or a target file given by path.
pub fn lookup(name: &str) -> Result<Target, Diagnostics> {
    let (origin, text) = match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => (format!("targets/{n}.toml"), (*text).to_owned()),
        None if name.ends_with(".toml") => (name.to_owned(), read_target_file(name)?),
        None => {
            return Err(Diagnostic::new(
                Place::file("--target".as_ref()),
                format!("unknown target `{name}`"),
            )
            .with_help(format!(
                "built-in targets: {}; or give the path of a target .toml file",
                builtin_names().join(", ")
            ))
            .into())
        }
    };
    parse_target(&origin, &text)
}

/// Reads a target file (a regular file, at most a spec's size).
fn read_target_file(name: &str) -> Result<String, Diagnostics> {
    let fail =
        |msg: String| -> Diagnostics { Diagnostic::new(Place::file(name.as_ref()), msg).into() };
    let bytes = crate::base::input::Reader::disk()
        .spec(name.as_ref())
        .map_err(|e| fail(format!("cannot read target file: {e}")))?;
    String::from_utf8(bytes).map_err(|_| fail("invalid target file: not UTF-8 text".to_owned()))
}

/// Parses and validates a target file's text; `origin` names it in messages. Every string is
/// checked, since names, flags and macros reach generated code and build files.
pub fn parse_target(origin: &str, text: &str) -> Result<Target, Diagnostics> {
    let target = toml::from_str::<Target>(text).map_err(|e| {
        let mut place = Place::file(origin.as_ref());
        if let Some(span) = e.span() {
            let before = &text[..span.start.min(text.len())];
            place.line = Some(1 + before.matches('\n').count() as u64);
            place.column =
                Some(1 + before.rsplit('\n').next().unwrap_or("").chars().count() as u64);
        }
        Diagnostic::new(place, format!("invalid target file: {}", e.message()))
    })?;
    let mut errors = Diagnostics::default();
    let mut bad = |field: &str, value: &str, expected: &str| {
        let mut place = Place::file(origin.as_ref());
        place.field = Some(field.to_owned());
        // The line of the value, where it is written literally.
        if let Some(pos) = (!value.is_empty()).then(|| text.find(value)).flatten() {
            place.line = Some(1 + text[..pos].matches('\n').count() as u64);
        }
        errors.push(Diagnostic::new(
            place,
            format!("invalid target file: `{value}`: expected {expected}"),
        ));
    };
    let word = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    let flag = |v: &str| {
        v.len() <= 200
            && v.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=+.,/:".contains(c))
    };
    let ident = |v: &str| {
        v.len() <= 64
            && v.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let prose = |v: &str| v.len() <= 500 && !v.chars().any(char::is_control) && !v.contains("*/");
    const WORD: &str = "letters, digits, `.`, `_` or `-` (at most 64)";
    const FLAG: &str = "a compiler flag of letters, digits and `-_=+.,/:` (no spaces or quotes)";
    if !word(&target.name) {
        bad("name", &target.name, WORD);
    }
    if !prose(&target.description) {
        bad(
            "description",
            &target.description,
            "one line of text without `*/` (at most 500 characters)",
        );
    }
    for (i, f) in target.c.cflags.iter().enumerate() {
        if !flag(f) {
            bad(&format!("c.cflags[{i}]"), f, FLAG);
        }
    }
    for (i, m) in target.c.arch_macros.iter().enumerate() {
        if !ident(m) {
            bad(
                &format!("c.arch_macros[{i}]"),
                m,
                "a C macro name (letters, digits, `_`)",
            );
        }
    }
    if let Some(t) = &target.rust.triple {
        if !word(t) {
            bad("rust.triple", t, WORD);
        }
    }
    for (i, f) in target.rust.rustflags.iter().enumerate() {
        if !flag(f) {
            bad(&format!("rust.rustflags[{i}]"), f, FLAG);
        }
    }
    if !word(&target.qemu.machine) {
        bad("qemu.machine", &target.qemu.machine, WORD);
    }
    if let Some(c) = &target.qemu.cpu {
        if !word(c) {
            bad("qemu.cpu", c, WORD);
        }
    }
    if !prose(&target.timing.note) {
        bad(
            "timing.note",
            &target.timing.note,
            "one line of text (at most 500 characters)",
        );
    }
    if !prose(&target.code.note) {
        bad(
            "code.note",
            &target.code.note,
            "one line of text (at most 500 characters)",
        );
    }
    let mut number = |field: &str, ok: bool, value: String, expected: &str| {
        if !ok {
            bad(field, &value, expected);
        }
    };
    let q = &target.qemu;
    number(
        "qemu.systick_hz",
        q.systick_hz > 0,
        q.systick_hz.to_string(),
        "a positive clock in Hz",
    );
    number(
        "qemu.icount_shift",
        q.icount_shift <= 10,
        q.icount_shift.to_string(),
        "0 to 10",
    );
    let m = &target.memory;
    number(
        "memory.flash_size",
        m.flash_size > 0,
        m.flash_size.to_string(),
        "a positive size",
    );
    number(
        "memory.ram_size",
        m.ram_size > 0,
        m.ram_size.to_string(),
        "a positive size",
    );
    let p = &target.plan;
    for (field, tile) in [
        ("plan.tile_float", p.tile_float),
        ("plan.tile_int", p.tile_int),
    ] {
        let ok = tile.iter().all(|&n| (1..=16).contains(&n));
        number(field, ok, format!("{tile:?}"), "two sizes from 1 to 16");
    }
    for c in Construct::ALL {
        if !target.code.bytes.contains_key(c.name()) {
            number(
                &format!("code.bytes.{}", c.name()),
                false,
                String::new(),
                "bytes [f32, int16, int8] for every construct",
            );
        }
    }
    for (name, b) in &target.code.bytes {
        let known = Construct::ALL.iter().any(|c| c.name() == name);
        let ok = known && b.iter().all(|v| v.is_finite() && v.abs() <= 1e6);
        number(
            &format!("code.bytes.{name}"),
            ok,
            format!("{name} = {b:?}"),
            "a known construct and three byte figures of at most 1e6",
        );
    }
    errors.into_result(target)
}

impl Target {
    /// This target with no flash or RAM budget: for measurements (the benchmark, the dense
    /// baseline), which are not deployments.
    pub fn unbudgeted(&self) -> Target {
        let mut t = self.clone();
        t.budget.flash = u64::MAX;
        t.budget.ram = u64::MAX;
        t
    }

    /// Guest instructions represented by a SysTick tick count under `-icount shift=N`.
    /// One instruction advances the virtual clock 2^N ns; SysTick counts at `systick_hz`.
    pub fn ticks_per_instruction(&self) -> f64 {
        (1u64 << self.qemu.icount_shift) as f64 * self.qemu.systick_hz as f64 / 1e9
    }
}

/// What a build of this precision means on this core, for report.json.
pub fn build_notes(target: &Target, precision: crate::spec::Precision) -> Vec<String> {
    let mut notes = Vec::new();
    if target.features.fpu == Fpu::None && !precision.is_fixed() {
        notes.push(format!(
            "{} has no FPU: float32 arithmetic runs in software floating point (libgcc / \
             compiler_builtins calls for every add, multiply and compare), typically 20-50x the \
             instructions of an FPU core; int8 or int16 (--precision) avoid it",
            target.name
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_targets_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                name.strip_suffix(".toml").map(str::to_owned)
            })
            .collect();
        files.sort();
        let mut names: Vec<String> = builtin_names().into_iter().map(str::to_owned).collect();
        names.sort();
        assert_eq!(files, names);
    }

    #[test]
    fn every_builtin_target_parses_and_counts_exactly() {
        let targets = builtin_targets();
        assert_eq!(targets.len(), BUILTIN.len());
        for t in &targets {
            assert_eq!(t.name, lookup(&t.name).unwrap().name);
            // More than 2 ticks per instruction: exact instruction counts.
            assert!(t.ticks_per_instruction() > 2.0, "{}", t.name);
            assert!(t.budget.ram <= t.memory.ram_size, "{}", t.name);
            assert_eq!(t.features.mve, t.name == "cortex-m55");
        }
        // Each target's [code] table names every construct, by the name report.json uses.
        for t in &targets {
            for c in Construct::ALL {
                assert!(
                    t.code.bytes.contains_key(c.name()),
                    "{} {}",
                    t.name,
                    c.name()
                );
                assert_eq!(serde_json::to_value(c).unwrap(), c.name());
            }
        }
        let m55 = lookup("cortex-m55").unwrap();
        assert!(m55.rust.triple.is_none());
        assert_eq!(lookup("cortex-m0").unwrap().features.fpu, Fpu::None);
    }
}
