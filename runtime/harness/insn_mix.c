/*
 * insn_mix.c - QEMU TCG plugin (plugin API version 1, QEMU 7.2) that counts the executed
 * guest instructions of a measured region of Cortex-M firmware by instruction class, for a
 * cycle estimate from the core's published instruction timings (see insn_mix.rs).
 *
 * Arguments (`-plugin insn_mix.so,begin=0xADDR,end=0xADDR,out=/path/file`):
 *   begin  instruction address (Thumb bit clear) whose execution enables counting
 *   end    instruction address whose execution disables counting
 *   out    file written at exit
 * The region is [begin, end): the instruction at `begin` is counted, the one at `end` is
 * not. Both may execute any number of times; a `begin` while enabled and an `end` while
 * disabled do nothing. A region still open at exit is closed there.
 *
 * Counting: every instruction gets inline (helper-free) adds to global per-class counters
 * that run whether or not counting is enabled; the `begin` / `end` instructions instead get
 * a regular callback that snapshots the counters, so the region's figure is the difference
 * of snapshots. This is exact per instruction (also for a translation block left early).
 *
 * Taken branches: a callback at the start of every executed translation block compares the
 * block's address with the end address of the previously executed block; when that block
 * ended with a control-transfer instruction (branch, pop/ldm/ldr with pc, mov/add to pc,
 * LE/WLS) and execution did not continue at its fall-through address, one taken branch is
 * counted (if counting was enabled when the block started).
 *
 * Classification happens once per translated instruction, from the disassembly QEMU returns
 * (Debian's QEMU 7.2 is built with capstone 4, which knows Armv7-M/Armv8-M but not MVE or
 * the v8.1-M low-overhead branches), with a fallback on the Thumb-2 encoding for those.
 *   - LDRD/STRD are load_multiple/store_multiple with 2 registers (their timing is 1+N).
 *   - POP/LDM with pc are load_multiple (pc counted in N) and, when taken, a taken branch.
 *   - register counts of FP transfers are 32-bit words: a d register counts 2.
 *
 * Output: "total N", "taken_branches N", then "class NAME COUNT" for every class and
 * "class_regs NAME SUM" for the multi-register classes, then "unclassified MNEMONIC" for up
 * to 32 distinct mnemonics that fell into class `other`.
 *
 * Only libc is used; the few plugin API functions needed are declared here.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the part of the QEMU plugin API (version 1) used here ---- */

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*im_tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*im_udata_cb)(unsigned int vcpu_index, void *userdata);
typedef void (*im_atexit_cb)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, im_tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, im_udata_cb cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, im_udata_cb cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, im_atexit_cb cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define IM_EXPORT __attribute__((visibility("default")))

IM_EXPORT int qemu_plugin_version = 1;

/* ---- classes ---- */

enum im_class {
    C_ALU,
    C_IT,
    C_SYSTEM,
    C_MUL,
    C_MLA,
    C_MUL_LONG,
    C_DSP_MAC,
    C_SIMD,
    C_DIV,
    C_LOAD,
    C_LOAD_MULTIPLE,
    C_STORE,
    C_STORE_MULTIPLE,
    C_BRANCH,
    C_FP_ALU,
    C_FP_MUL,
    C_FP_MAC,
    C_FP_DIV,
    C_FP_LOAD,
    C_FP_LOAD_MULTIPLE,
    C_FP_STORE,
    C_FP_STORE_MULTIPLE,
    C_MVE_LOAD,
    C_MVE_STORE,
    C_MVE_OTHER,
    C_OTHER,
    C_COUNT
};

static const char *const class_names[C_COUNT] = {
    "alu",      "it",        "system",           "mul",      "mla",
    "mul_long", "dsp_mac",   "simd",             "div",      "load",
    "load_multiple", "store", "store_multiple",  "branch",   "fp_alu",
    "fp_mul",   "fp_mac",    "fp_div",           "fp_load",  "fp_load_multiple",
    "fp_store", "fp_store_multiple", "mve_load", "mve_store", "mve_other",
    "other",
};

static int is_multiple(enum im_class c)
{
    return c == C_LOAD_MULTIPLE || c == C_STORE_MULTIPLE || c == C_FP_LOAD_MULTIPLE ||
           c == C_FP_STORE_MULTIPLE;
}

/* One translated instruction's classification (also the userdata of trigger callbacks). */
struct im_insn {
    enum im_class cls;
    uint64_t regs;
    int is_branch;
};

/* ---- state (the M-profile machines have one vCPU) ---- */

static uint64_t begin_addr = UINT64_MAX, end_addr = UINT64_MAX;
static char out_path[4096];

/* Counters of all executed instructions, updated inline. */
static uint64_t run_count[C_COUNT];
static uint64_t run_regs[C_COUNT];
/* Snapshot at the last enable, and the accumulated region figures. */
static uint64_t base_count[C_COUNT], base_regs[C_COUNT];
static uint64_t acc_count[C_COUNT], acc_regs[C_COUNT];
static uint64_t acc_taken;
static int enabled;

/* Previous executed translation block. */
static uint64_t prev_tb_end = UINT64_MAX;
static int prev_tb_branch;

#define MAX_UNCLASSIFIED 32
static char unclassified[MAX_UNCLASSIFIED][24];
static int n_unclassified;

/* ---- classification ---- */

static int in_list(const char *m, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(m, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const L_ALU[] = {
    "mov", "mvn", "add", "adc", "sub", "sbc", "rsb", "and", "orr", "eor", "bic", "orn",
    "lsl", "lsr", "asr", "ror", "rrx", "cmp", "cmn", "tst", "teq", "neg", "adr", "movw",
    "movt", "addw", "subw", "sxtb", "sxth", "uxtb", "uxth", "sxtab", "sxtah", "uxtab", "uxtah",
    "bfi", "bfc", "ubfx", "sbfx", "clz", "rbit", "rev", "rev16", "revsh", "cpy", "ssat",
    "usat", "dls", "dlstp", "csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc",
    "cinv", "cneg", "asrl", "lsll", "lsrl", "sqrshr", "sqrshrl", "sqshl", "sqshll", "srshr",
    "srshrl", "uqrshl", "uqrshll", "uqshl", "uqshll", "urshr", "urshrl", NULL};
static const char *const L_SYSTEM[] = {
    "nop", "dmb", "dsb", "isb", "msr", "mrs", "cpsid", "cpsie", "wfi", "wfe", "sev", "yield",
    "pld", "pli", "pldw", "clrex", "tt", "ttt", "tta", "ttat", "sg", "vmrs", "vmsr", "csdb",
    "ssbb", "pssbb", NULL};
static const char *const L_OTHER[] = {"bkpt", "svc", "udf", NULL};
static const char *const L_MUL[] = {"mul", NULL};
static const char *const L_MLA[] = {"mla", "mls", NULL};
static const char *const L_MUL_LONG[] = {
    "smull", "umull", "smlal", "umlal", "umaal", "smlald", "smlaldx", "smlsld", "smlsldx",
    "smlalbb", "smlalbt", "smlaltb", "smlaltt", NULL};
static const char *const L_DSP_MAC[] = {
    "smlad", "smladx", "smlsd", "smlsdx", "smuad", "smuadx", "smusd", "smusdx", "smlabb",
    "smlabt", "smlatb", "smlatt", "smlawb", "smlawt", "smulbb", "smulbt", "smultb",
    "smultt", "smulwb", "smulwt", "smmul", "smmulr", "smmla", "smmlar", "smmls", "smmlsr",
    NULL};
static const char *const L_SIMD[] = {
    "sxtb16", "uxtb16", "sxtab16", "uxtab16", "pkhbt", "pkhtb", "sel", "qadd", "qsub",
    "qdadd", "qdsub", "ssat16", "usat16", "usad8", "usada8", NULL};
static const char *const L_DIV[] = {"sdiv", "udiv", NULL};
static const char *const L_LOAD[] = {
    "ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt",
    "ldrht", "ldrsbt", "ldrsht", "lda", "ldab", "ldah", "ldaex", "ldaexb", "ldaexh", NULL};
static const char *const L_LOAD_MULTIPLE[] = {
    "ldm", "ldmia", "ldmdb", "ldmfd", "ldmea", "pop", "ldrd", NULL};
static const char *const L_STORE[] = {
    "str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht", "stl",
    "stlb", "stlh", "stlex", "stlexb", "stlexh", NULL};
static const char *const L_STORE_MULTIPLE[] = {
    "stm", "stmia", "stmdb", "stmea", "stmfd", "push", "strd", NULL};
static const char *const L_BRANCH[] = {
    "b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh", "bxns", "blxns", "le", "letp", "wls",
    "wlstp", NULL};
static const char *const L_FP_ALU[] = {
    "vadd", "vsub", "vabs", "vneg", "vcmp", "vcmpe", "vmov", "vmaxnm", "vminnm", "vins",
    "vmovx", "vcvt", NULL};
static const char *const L_FP_MUL[] = {"vmul", "vnmul", NULL};
static const char *const L_FP_MAC[] = {
    "vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms", NULL};
static const char *const L_FP_DIV[] = {"vdiv", "vsqrt", NULL};
static const char *const L_FP_LOAD[] = {"vldr", NULL};
static const char *const L_FP_STORE[] = {"vstr", NULL};
static const char *const L_FP_LOAD_MULTIPLE[] = {"vldm", "vldmia", "vldmdb", "vpop", NULL};
static const char *const L_FP_STORE_MULTIPLE[] = {"vstm", "vstmia", "vstmdb", "vpush", NULL};
/* capstone 4 shows MVE loads/stores as coprocessor transfers. */
static const char *const L_COPROC_LOAD[] = {"ldc", "ldcl", "ldc2", "ldc2l", NULL};
static const char *const L_COPROC_STORE[] = {"stc", "stcl", "stc2", "stc2l", NULL};

/* Parallel add/subtract: {s,q,sh,u,uq,uh} x {add16,sub16,add8,sub8,asx,sax}. */
static int is_parallel_addsub(const char *m)
{
    static const char *const pre[] = {"sh", "s", "q", "uq", "uh", "u", NULL};
    static const char *const op[] = {"add16", "sub16", "add8", "sub8", "asx", "sax", NULL};
    for (int i = 0; pre[i]; i++) {
        size_t n = strlen(pre[i]);
        if (strncmp(m, pre[i], n) == 0 && in_list(m + n, op)) {
            return 1;
        }
    }
    return 0;
}

/* Class of a bare mnemonic (lower case, no condition, no .w/.f32 suffix); -1 if unknown. */
static int class_of_base(const char *m)
{
    size_t n = strlen(m);
    if (n >= 2 && m[0] == 'i' && m[1] == 't' && n <= 5 && strspn(m + 2, "te") == n - 2) {
        return C_IT;
    }
    if (strncmp(m, "vcvt", 4) == 0 || strncmp(m, "vrint", 5) == 0 ||
        strncmp(m, "vsel", 4) == 0) {
        return C_FP_ALU;
    }
    if (in_list(m, L_ALU)) return C_ALU;
    if (in_list(m, L_SYSTEM)) return C_SYSTEM;
    if (in_list(m, L_OTHER)) return C_OTHER;
    if (in_list(m, L_MUL)) return C_MUL;
    if (in_list(m, L_MLA)) return C_MLA;
    if (in_list(m, L_MUL_LONG)) return C_MUL_LONG;
    if (in_list(m, L_DSP_MAC)) return C_DSP_MAC;
    if (in_list(m, L_SIMD) || is_parallel_addsub(m)) return C_SIMD;
    if (in_list(m, L_DIV)) return C_DIV;
    if (in_list(m, L_LOAD)) return C_LOAD;
    if (in_list(m, L_LOAD_MULTIPLE)) return C_LOAD_MULTIPLE;
    if (in_list(m, L_STORE)) return C_STORE;
    if (in_list(m, L_STORE_MULTIPLE)) return C_STORE_MULTIPLE;
    if (in_list(m, L_BRANCH)) return C_BRANCH;
    if (in_list(m, L_FP_ALU)) return C_FP_ALU;
    if (in_list(m, L_FP_MUL)) return C_FP_MUL;
    if (in_list(m, L_FP_MAC)) return C_FP_MAC;
    if (in_list(m, L_FP_DIV)) return C_FP_DIV;
    if (in_list(m, L_FP_LOAD)) return C_FP_LOAD;
    if (in_list(m, L_FP_STORE)) return C_FP_STORE;
    if (in_list(m, L_FP_LOAD_MULTIPLE)) return C_FP_LOAD_MULTIPLE;
    if (in_list(m, L_FP_STORE_MULTIPLE)) return C_FP_STORE_MULTIPLE;
    if (in_list(m, L_COPROC_LOAD)) return C_MVE_LOAD;
    if (in_list(m, L_COPROC_STORE)) return C_MVE_STORE;
    return -1;
}

static const char *const CONDS[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs",
                                    "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", NULL};

/* Class of a mnemonic as printed: tries it as is, without a condition suffix (IT blocks,
   conditional branches), without the flag-setting `s`, and without both. */
static int class_of_mnemonic(const char *m)
{
    char buf[32];
    size_t n = strlen(m);
    int c;
    if (n == 0 || n >= sizeof buf) {
        return -1;
    }
    if ((c = class_of_base(m)) >= 0) {
        return c;
    }
    memcpy(buf, m, n + 1);
    if (n > 2 && in_list(m + n - 2, CONDS)) {
        buf[n - 2] = '\0';
        if ((c = class_of_base(buf)) >= 0) {
            return c;
        }
        if (n > 3 && buf[n - 3] == 's') {
            buf[n - 3] = '\0';
            if ((c = class_of_base(buf)) >= 0) {
                return c;
            }
        }
        memcpy(buf, m, n + 1);
    }
    if (n > 1 && m[n - 1] == 's') {
        buf[n - 1] = '\0';
        if ((c = class_of_base(buf)) >= 0) {
            return c;
        }
    }
    return -1;
}

/* 32-bit words transferred by a register list "{r4, r5, lr}" / "{d8-d9}" / "{s0, s1}";
   sets *has_pc when pc is in the list. */
static uint64_t list_words(const char *ops, int *has_pc)
{
    const char *open = strchr(ops, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    uint64_t words = 0;
    if (!open || !close) {
        return 0;
    }
    const char *p = open + 1;
    while (p < close) {
        while (p < close && (*p == ' ' || *p == ',')) {
            p++;
        }
        const char *item = p;
        while (p < close && *p != ',') {
            p++;
        }
        const char *item_end = p;
        while (item_end > item && item_end[-1] == ' ') {
            item_end--;
        }
        if (item_end == item) {
            continue;
        }
        const char *dash = memchr(item, '-', (size_t)(item_end - item));
        uint64_t width = item[0] == 'd' ? 2 : 1;
        if (dash) {
            int a = atoi(item + 1), b = atoi(dash + 2);
            if (b >= a) {
                words += (uint64_t)(b - a + 1) * width;
            }
        } else {
            words += width;
            if ((size_t)(item_end - item) == 2 && strncmp(item, "pc", 2) == 0) {
                *has_pc = 1;
            }
        }
    }
    return words;
}

/* Does the operand text name an MVE q register (q0-q7)? */
static int has_q_reg(const char *ops)
{
    for (const char *p = ops; *p; p++) {
        if (*p == 'q' && p[1] >= '0' && p[1] <= '7' && (p == ops || p[-1] == ' ' ||
                                                        p[-1] == '{' || p[-1] == ',')) {
            char after = p[2];
            if (after == '\0' || after == ',' || after == ' ' || after == '}' || after == '[' ||
                after == ']') {
                return 1;
            }
        }
    }
    return 0;
}

/* Fallback on the encoding, for what capstone 4 does not know (v8.1-M). */
static int class_of_encoding(const uint8_t *b, size_t size, int *is_branch)
{
    if (size != 4) {
        return -1;
    }
    uint16_t hw1 = (uint16_t)(b[0] | b[1] << 8), hw2 = (uint16_t)(b[2] | b[3] << 8);
    /* LE / LETP: loop end, a backwards branch. */
    if ((hw1 & 0xFFCF) == 0xF00F && (hw2 & 0xF001) == 0xC001) {
        *is_branch = 1;
        return C_BRANCH;
    }
    /* WLS / WLSTP: while-loop start, a conditional forward branch. */
    if ((hw1 & 0xFF80) == 0xF000 && (hw1 & 0x0040) && (hw2 & 0xF001) == 0xC001) {
        *is_branch = 1;
        return C_BRANCH;
    }
    /* DLS / DLSTP: set up LR (and the tail predication). */
    if ((hw1 & 0xFF80) == 0xF000 && (hw1 & 0x0040) && hw2 == 0xE001) {
        return C_ALU;
    }
    /* VCTP */
    if ((hw1 & 0xFFC0) == 0xF000 && hw2 == 0xE801) {
        return C_MVE_OTHER;
    }
    /* Coprocessor / floating-point / MVE space: 111x 11xx xxxx xxxx. */
    if ((hw1 & 0xEC00) == 0xEC00) {
        return C_MVE_OTHER;
    }
    return -1;
}

static void note_unclassified(const char *m)
{
    for (int i = 0; i < n_unclassified; i++) {
        if (strcmp(unclassified[i], m) == 0) {
            return;
        }
    }
    if (n_unclassified < MAX_UNCLASSIFIED) {
        snprintf(unclassified[n_unclassified++], sizeof unclassified[0], "%s", m);
    }
}

static struct im_insn classify(const struct qemu_plugin_insn *insn)
{
    struct im_insn r = {C_OTHER, 0, 0};
    char *text = qemu_plugin_insn_disas(insn);
    char mn[32] = "?";
    const char *ops = "";
    int cls = -1;

    if (text) {
        /* mnemonic: up to the first blank; base: up to the first '.' (".w", ".f32") */
        size_t i = 0;
        while (text[i] == ' ') {
            i++;
        }
        size_t k = 0;
        while (text[i] && text[i] != ' ' && text[i] != '\t' && k + 1 < sizeof mn) {
            char ch = text[i++];
            mn[k++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        mn[k] = '\0';
        ops = text + i;
        char base[32];
        memcpy(base, mn, sizeof base);
        char *dot = strchr(base, '.');
        if (dot && dot != base) {
            *dot = '\0';
        }
        cls = class_of_mnemonic(base);
    }
    if (cls == C_MVE_LOAD || cls == C_MVE_STORE || cls < 0 || has_q_reg(ops)) {
        /* Coprocessor transfers and anything capstone does not know: check the encoding. */
        int br = 0;
        int enc = class_of_encoding(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn), &br);
        if (enc >= 0 && (cls < 0 || enc != C_MVE_OTHER)) {
            cls = enc;
            r.is_branch = br;
        } else if (cls >= 0 && cls != C_MVE_LOAD && cls != C_MVE_STORE && has_q_reg(ops)) {
            /* a q-register operand: an MVE instruction decoded under a NEON name */
            cls = (cls == C_FP_LOAD || cls == C_LOAD) ? C_MVE_LOAD
                  : (cls == C_FP_STORE || cls == C_STORE) ? C_MVE_STORE : C_MVE_OTHER;
        }
    }
    if (cls < 0) {
        cls = C_OTHER;
    }
    if (cls == C_OTHER) {
        note_unclassified(mn);
    }
    r.cls = (enum im_class)cls;

    if (cls == C_BRANCH) {
        r.is_branch = 1;
    }
    if (cls == C_LOAD_MULTIPLE || cls == C_STORE_MULTIPLE) {
        if (strncmp(mn, "ldrd", 4) == 0 || strncmp(mn, "strd", 4) == 0) {
            r.regs = 2;
        } else {
            int has_pc = 0;
            r.regs = list_words(ops, &has_pc);
            if (has_pc && cls == C_LOAD_MULTIPLE) {
                r.is_branch = 1;
            }
        }
    } else if (cls == C_FP_LOAD_MULTIPLE || cls == C_FP_STORE_MULTIPLE) {
        int has_pc = 0;
        r.regs = list_words(ops, &has_pc);
    } else if (text) {
        /* ldr pc, mov pc, add pc: the destination (first operand) is pc */
        const char *p = ops;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (strncmp(p, "pc", 2) == 0 && (p[2] == ',' || p[2] == '\0') &&
            (cls == C_LOAD || cls == C_ALU)) {
            r.is_branch = 1;
        }
    }
    free(text);
    return r;
}

/* ---- run-time callbacks ---- */

static void open_region(void)
{
    if (!enabled) {
        memcpy(base_count, run_count, sizeof run_count);
        memcpy(base_regs, run_regs, sizeof run_regs);
        enabled = 1;
    }
}

/* Instructions of each closed region, in order (a firmware measures an empty region first,
 * so callers can subtract the call overhead). */
#define MAX_REGIONS 64
static uint64_t region_total[MAX_REGIONS];
static int regions;

static void close_region(void)
{
    if (enabled) {
        uint64_t in_region = 0;
        for (int c = 0; c < C_COUNT; c++) {
            acc_count[c] += run_count[c] - base_count[c];
            acc_regs[c] += run_regs[c] - base_regs[c];
            in_region += run_count[c] - base_count[c];
        }
        if (regions < MAX_REGIONS) {
            region_total[regions++] = in_region;
        }
        enabled = 0;
    }
}

/* Userdata of a trigger: the instruction's classification and which trigger(s) it is. */
struct im_trigger {
    struct im_insn insn;
    int is_begin, is_end;
};

static void on_trigger(unsigned int vcpu, void *userdata)
{
    const struct im_trigger *t = userdata;
    (void)vcpu;
    if (t->is_end) {
        close_region();
    }
    if (t->is_begin) {
        open_region();
    }
    /* the trigger's own instruction, counted after the toggle: in for begin, out for end */
    run_count[t->insn.cls] += 1;
    run_regs[t->insn.cls] += t->insn.regs;
}

/* Userdata of a translation block: its end address and whether its last insn branches. */
struct im_tb {
    uint64_t start, end;
    int last_is_branch;
};

static void on_tb_exec(unsigned int vcpu, void *userdata)
{
    const struct im_tb *tb = userdata;
    (void)vcpu;
    if (enabled && prev_tb_branch && tb->start != prev_tb_end) {
        acc_taken++;
    }
    prev_tb_end = tb->end;
    prev_tb_branch = tb->last_is_branch;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct im_tb *info = calloc(1, sizeof *info);
    (void)id;
    if (!info) {
        return;
    }
    /* Userdata lives as long as the plugin: translation blocks may be re-executed until
       exit, and v1 of the API has no per-TB free hook. Memory grows with translations. */
    info->start = qemu_plugin_tb_vaddr(tb);
    info->end = info->start;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        struct im_insn c = classify(insn);
        info->end = va + qemu_plugin_insn_size(insn);
        info->last_is_branch = c.is_branch;
        if (va == begin_addr || va == end_addr) {
            struct im_trigger *t = calloc(1, sizeof *t);
            if (!t) {
                continue;
            }
            t->insn = c;
            t->is_begin = va == begin_addr;
            t->is_end = va == end_addr;
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_trigger, QEMU_PLUGIN_CB_NO_REGS, t);
        } else {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &run_count[c.cls], 1);
            if (c.regs) {
                qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                           &run_regs[c.cls], c.regs);
            }
        }
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, info);
}

static void im_at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    close_region();
    FILE *f = fopen(out_path, "w");
    if (!f) {
        char msg[4200];
        snprintf(msg, sizeof msg, "insn_mix: cannot write %s\n", out_path);
        qemu_plugin_outs(msg);
        return;
    }
    uint64_t total = 0;
    for (int c = 0; c < C_COUNT; c++) {
        total += acc_count[c];
    }
    fprintf(f, "# insn_mix begin=0x%llx end=0x%llx\n", (unsigned long long)begin_addr,
            (unsigned long long)end_addr);
    fprintf(f, "total %llu\n", (unsigned long long)total);
    fprintf(f, "taken_branches %llu\n", (unsigned long long)acc_taken);
    for (int r = 0; r < regions; r++) {
        fprintf(f, "region %llu\n", (unsigned long long)region_total[r]);
    }
    for (int c = 0; c < C_COUNT; c++) {
        fprintf(f, "class %s %llu\n", class_names[c], (unsigned long long)acc_count[c]);
    }
    for (int c = 0; c < C_COUNT; c++) {
        if (is_multiple((enum im_class)c)) {
            fprintf(f, "class_regs %s %llu\n", class_names[c], (unsigned long long)acc_regs[c]);
        }
    }
    for (int i = 0; i < n_unclassified; i++) {
        fprintf(f, "unclassified %s\n", unclassified[i]);
    }
    fclose(f);
}

/* ---- installation ---- */

static int parse_addr(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (end == s || *end != '\0') {
        return -1;
    }
    *out = (uint64_t)v & ~(uint64_t)1;
    return 0;
}

IM_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (strncmp(a, "begin=", 6) == 0) {
            bad = parse_addr(a + 6, &begin_addr);
        } else if (strncmp(a, "end=", 4) == 0) {
            bad = parse_addr(a + 4, &end_addr);
        } else if (strncmp(a, "out=", 4) == 0 && strlen(a + 4) < sizeof out_path) {
            snprintf(out_path, sizeof out_path, "%s", a + 4);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "insn_mix: bad argument `%s` (want begin=ADDR,end=ADDR,out=FILE)\n", a);
            return -1;
        }
    }
    if (begin_addr == UINT64_MAX || end_addr == UINT64_MAX || out_path[0] == '\0') {
        fprintf(stderr, "insn_mix: begin=, end= and out= are all required\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, im_at_exit, NULL);
    return 0;
}
