/* Golden model of the SPS core (docs/arithmetic.md in executable form), structured for CPU speed.
 *
 * Integer sums do not depend on their order, so a CONV is computed the way a CPU likes it, not the way the
 * array does: per residue class r (filters o = r mod P share the pattern sequence), the class is one matrix
 * product  out[m][pixel] = sum over rows j = (i, k) of W[m][j] * X[j][pixel],  where X[j] is the input plane
 * of channel i shifted by tap k of pattern (r + i) mod P. Rows are taken two at a time as int16 pairs, so one
 * AVX2 vpmaddwd does 16 multiply-accumulates; a tile of 16 pixels x 4 filters stays in registers. Tiles are
 * shared out to the cores (pool.c). Accumulators are int32 and wrap (built with -fwrapv), as the
 * hardware's do; requantization is the int64 rule of the spec.
 *
 * Descriptor field positions come from the generated sps_hw.h, never from numbers written here.
 */
#include "golden.h"
#include "sps_hw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define TILE_PIX 16        /* pixels per tile: two vectors of 8 int32 */
#define FBLK 4             /* filters per register block */
#define DOT_MAX_PIX 17     /* below this many output pixels (FC layers, maps up to 4x4) read int8 weights directly */
#define DOT_NP 4           /* pixels per pass of the direct path: their sums stay in registers */
#define PAR_MIN_WORK (1 << 20)  /* below ~1M operations a layer runs on one thread: starting one costs more */

typedef struct {
    uint32_t op, relu, pps, share, slot_shift;
    uint32_t keep, resident, in_half, keep_skew;   /* kept maps (hw/residency.py): validation only, maps are read
                                                      from DDR */
    uint64_t in_off, out_off, w_off, p_off, in2_off;
    uint32_t in_c, in_h, in_w, out_c, out_h, out_w;
    uint32_t in_map_h, out_map_h;
    uint64_t in_cs, out_cs;        /* bytes between channel planes in DDR (a band reads in_h of in_map_h rows) */
    uint32_t kh, kw, sh, sw, pt, pl;
    uint32_t P, K;
    uint32_t mult, mult2, shift;
    uint32_t masks[SPS_MAX_PATTERNS];
    uint32_t words[SPS_DESC_WORDS];   /* the raw descriptor (the key of the prepared-weights cache) */
    /* CONV: the row groups' weights and parameter records in the plain layout (layout.py): the arena at
     * w_off / p_off, or for shared classes a copy converted by unshare() (set by run_conv). */
    const uint8_t *wsrc, *psrc;
} layer_t;

static const int mask_word[SPS_MAX_PATTERNS] = {
    SPS_D_PATTERN0_WORD, SPS_D_PATTERN1_WORD, SPS_D_PATTERN2_WORD, SPS_D_PATTERN3_WORD,
    SPS_D_PATTERN4_WORD, SPS_D_PATTERN5_WORD, SPS_D_PATTERN6_WORD, SPS_D_PATTERN7_WORD,
    SPS_D_PATTERN8_WORD, SPS_D_PATTERN9_WORD, SPS_D_PATTERN10_WORD, SPS_D_PATTERN11_WORD,
    SPS_D_PATTERN12_WORD, SPS_D_PATTERN13_WORD, SPS_D_PATTERN14_WORD, SPS_D_PATTERN15_WORD};
static const int mask_lsb[SPS_MAX_PATTERNS] = {
    SPS_D_PATTERN0_LSB, SPS_D_PATTERN1_LSB, SPS_D_PATTERN2_LSB, SPS_D_PATTERN3_LSB,
    SPS_D_PATTERN4_LSB, SPS_D_PATTERN5_LSB, SPS_D_PATTERN6_LSB, SPS_D_PATTERN7_LSB,
    SPS_D_PATTERN8_LSB, SPS_D_PATTERN9_LSB, SPS_D_PATTERN10_LSB, SPS_D_PATTERN11_LSB,
    SPS_D_PATTERN12_LSB, SPS_D_PATTERN13_LSB, SPS_D_PATTERN14_LSB, SPS_D_PATTERN15_LSB};

static uint32_t rd32(const uint8_t *p) {      /* the arena is little-endian, whatever the host is */
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void decode(const uint8_t *p, layer_t *L) {
    uint32_t w[SPS_DESC_WORDS];
    for (int j = 0; j < SPS_DESC_WORDS; j++) w[j] = rd32(p + 4 * j);
    memcpy(L->words, w, sizeof w);
    L->op = SPS_DESC_GET(w, OP);
    L->relu = SPS_DESC_GET(w, RELU);
    L->pps = SPS_DESC_GET(w, PPS);
    L->share = SPS_DESC_GET(w, SHARE);
    L->slot_shift = SPS_DESC_GET(w, SLOT_SHIFT);
    L->keep = SPS_DESC_GET(w, KEEP);
    L->resident = SPS_DESC_GET(w, RESIDENT);
    L->in_half = SPS_DESC_GET(w, IN_HALF);
    L->keep_skew = SPS_DESC_GET(w, KEEP_SKEW);
    L->in_off = SPS_DESC_GET(w, IN_OFFSET);
    L->in_c = SPS_DESC_GET(w, IN_C);
    L->in_h = SPS_DESC_GET(w, IN_H);
    L->in_w = SPS_DESC_GET(w, IN_W);
    L->out_off = SPS_DESC_GET(w, OUT_OFFSET);
    L->out_c = SPS_DESC_GET(w, OUT_C);
    L->out_h = SPS_DESC_GET(w, OUT_H);
    L->out_w = SPS_DESC_GET(w, OUT_W);
    L->kh = SPS_DESC_GET(w, KH);
    L->kw = SPS_DESC_GET(w, KW);
    L->sh = SPS_DESC_GET(w, STRIDE_H);
    L->sw = SPS_DESC_GET(w, STRIDE_W);
    L->pt = SPS_DESC_GET(w, PAD_TOP);
    L->pl = SPS_DESC_GET(w, PAD_LEFT);
    L->P = SPS_DESC_GET(w, PATTERNS);
    L->K = SPS_DESC_GET(w, NNZ);
    L->w_off = SPS_DESC_GET(w, WEIGHT_OFFSET);
    L->p_off = SPS_DESC_GET(w, PARAM_OFFSET);
    L->in2_off = SPS_DESC_GET(w, IN2_OFFSET);
    L->mult = SPS_DESC_GET(w, MULT);
    L->mult2 = SPS_DESC_GET(w, MULT2);
    L->shift = SPS_DESC_GET(w, SHIFT);
    L->in_map_h = SPS_DESC_GET(w, IN_MAP_H);
    L->out_map_h = SPS_DESC_GET(w, OUT_MAP_H);
    L->in_cs = (uint64_t)(L->in_map_h ? L->in_map_h : L->in_h) * L->in_w;
    L->out_cs = (uint64_t)(L->out_map_h ? L->out_map_h : L->out_h) * L->out_w;
    L->wsrc = L->psrc = NULL;
    for (int j = 0; j < SPS_MAX_PATTERNS; j++)
        L->masks[j] = (w[mask_word[j]] >> mask_lsb[j]) & ((1u << SPS_D_PATTERN0_WIDTH) - 1u);
}

/* ---------------------------------------------------------------- arithmetic of docs/arithmetic.md */

static inline int64_t requant(int64_t v, int64_t M, int S) {
    int64_t R = S > 0 ? (int64_t)1 << (S - 1) : 0;
    return (v * M + R) >> S;          /* gcc's >> on signed values is the arithmetic (flooring) shift */
}

static inline int8_t finish(int64_t y, int relu) {
    if (relu && y < 0) y = 0;
    if (y > 127) y = 127;
    if (y < -128) y = -128;
    return (int8_t)y;
}

static int popcount9(uint32_t m) {
    int n = 0;
    for (int t = 0; t < 9; t++) n += (m >> t) & 1;
    return n;
}

static int threads_for(const sps_golden_config *cfg, uint64_t work) {
    if (work < PAR_MIN_WORK) return 1;
    return cfg->num_threads > 0 ? cfg->num_threads : sps_cpu_count();
}

/* ---------------------------------------------------------------- checks */

typedef struct {
    const sps_golden_config *cfg;
    uint64_t size;
    sps_golden_status *st;
    int layer;
    const layer_t *prev;       /* the layer run just before (the chain rule of kept maps), NULL for the first */
} ctx_t;

static int fail(ctx_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(ctx_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->st->message, sizeof c->st->message, fmt, ap);
    va_end(ap);
    c->st->error = code;
    c->st->layer = c->layer;
    return code;
}

static const char *op_name(uint32_t op) {
    switch (op) {
    case SPS_OP_CONV: return "CONV";
    case SPS_OP_MAXPOOL: return "MAXPOOL";
    case SPS_OP_AVGPOOL: return "AVGPOOL";
    case SPS_OP_ADD: return "ADD";
    default: return "?";
    }
}

/* [off, off + n) inside the arena; aligned to SPS_BUFFER_ALIGN when `aligned` (weights, parameters, ADD maps:
 * CONV and pool maps may start anywhere, since bands of a map start at any row). */
static int check_region(ctx_t *c, const char *what, uint64_t off, uint64_t n, int aligned) {
    if (aligned && off % SPS_BUFFER_ALIGN)
        return fail(c, SPS_ERR_MISALIGNED, "%s offset %llu is not a multiple of %d", what,
                    (unsigned long long)off, SPS_BUFFER_ALIGN);
    if (off > c->size || n > c->size - off)
        return fail(c, SPS_ERR_AXI_ERROR, "%s [%llu, %llu) lies outside the arena of %llu bytes", what,
                    (unsigned long long)off, (unsigned long long)(off + n), (unsigned long long)c->size);
    return 0;
}

static uint64_t class_size(uint32_t O, uint32_t P, uint32_t r) {   /* filters o < O with o mod P == r */
    return r < O ? (O - r + P - 1) / P : 0;
}

static uint64_t num_groups(uint32_t O, uint32_t P, uint32_t R) {
    uint64_t n = 0;
    for (uint32_t r = 0; r < P; r++) n += (class_size(O, P, r) + R - 1) / R;
    return n;
}

/* S: the classes one shared row group holds (layout.share_slots). */
static uint32_t share_slots(uint32_t P, uint32_t R, uint32_t slot_shift) {
    uint32_t s = R >> slot_shift;
    if (s > P) s = P;
    return s ? s : 1;
}

/* Row groups the layer stores: with shared classes ceil(min(P, O) / S) (the groups with a filter), else
 * num_groups. */
static uint64_t layer_groups(const layer_t *L, uint32_t R) {
    const uint32_t P = L->pps ? L->P : 1;
    if (L->op == SPS_OP_CONV && L->share) {
        const uint64_t s = share_slots(P, R, L->slot_shift), used = L->out_c < P ? L->out_c : P;
        return (used + s - 1) / s;
    }
    return num_groups(L->out_c, P, R);
}

static uint64_t group_weight_bytes(uint32_t I, uint32_t K, uint32_t R) {
    uint64_t n = (uint64_t)I * K * R;
    return (n + SPS_GROUP_ALIGN - 1) / SPS_GROUP_ALIGN * SPS_GROUP_ALIGN;
}

/* Buffer bytes between the planes of a kept map in a slice (bands.kept_stride): planes of a multiple of C bytes
 * rounded up to whole beats and buffer rows, so every kept row is one buffer row. */
static uint64_t kept_stride(uint64_t plane, uint32_t cols, uint32_t beat) {
    const uint64_t align = cols > beat ? cols : beat;
    return (plane + align - 1) / align * align;
}

/* Bytes of the activation buffer the input of a CONV or pool occupies (sps_pynq/hw/bands.py act_end): a whole
 * map is one read from the beat below in_off; a band one read per channel, planes `stride` bytes apart with
 * stride >= plane + beat - 1 and stride = in_cs (mod beat). `shared` (shared classes or pool, or a resident
 * input): one read per plane as a band's, channel ch in slice ch mod ACT_LANES at lead + (ch / ACT_LANES) *
 * stride; the bytes of the fullest slice. A resident input lies as it was kept (kept_stride). */
static uint64_t act_buffer_end(const layer_t *L, uint32_t cols, uint32_t beat, int shared) {
    const uint64_t plane = (uint64_t)L->in_h * L->in_w, lead = L->in_off % beat;
    uint64_t stride = plane;
    if (L->resident) {
        stride = kept_stride(plane, cols, beat);
    } else if (L->in_cs != plane || shared) {
        stride = plane + beat - 1;
        stride += (L->in_cs % beat + beat - stride % beat) % beat;
    }
    const uint64_t planes = shared ? (L->in_c + SPS_ACT_LANES - 1) / SPS_ACT_LANES : L->in_c;
    const uint64_t end = lead + (planes - 1) * stride + plane;
    return (end + beat - 1) / beat * beat;
}

/* Why a CONV (or pool) with `share` cannot share classes (layout.share_problem, the same rules in the same
 * order), or NULL. `why` receives the message. */
static const char *share_problem(const layer_t *L, const sps_golden_config *cfg, uint32_t beat, char *why,
                                 size_t n) {
    if (L->op == SPS_OP_MAXPOOL || L->op == SPS_OP_AVGPOOL) {
        if (L->in_cs % beat)
            snprintf(why, n, "needs input channel planes a multiple of %u bytes apart (%llu)", beat,
                     (unsigned long long)L->in_cs);
        else if (!((L->sh == 1 && L->sw == 1 && L->out_w == L->in_w) || (uint64_t)L->out_h * L->out_w == 1))
            snprintf(why, n, "needs stride 1 and out_w == in_w, or one output pixel (stride %ux%u, %ux%u -> %ux%u)",
                     L->sh, L->sw, L->in_h, L->in_w, L->out_h, L->out_w);
        else
            return NULL;
        return why;
    }
    if (!L->pps || L->P < 1 || SPS_ACT_LANES % L->P) {
        if (L->pps) snprintf(why, n, "needs PPS with P dividing %d (P=%u)", SPS_ACT_LANES, L->P);
        else snprintf(why, n, "needs PPS with P dividing %d (P=dense)", SPS_ACT_LANES);
    } else if (L->in_c % SPS_ACT_LANES) {
        snprintf(why, n, "needs input channels a multiple of %d (I=%u)", SPS_ACT_LANES, L->in_c);
    } else if (L->sh != 1 || L->sw != 1 || L->out_w != L->in_w) {
        snprintf(why, n, "needs stride 1 and out_w == in_w (stride %ux%u, width %u -> %u)", L->sh, L->sw,
                 L->in_w, L->out_w);
    } else if (L->in_cs % beat) {
        snprintf(why, n, "needs input channel planes a multiple of %u bytes apart (%llu)", beat,
                 (unsigned long long)L->in_cs);
    } else {
        const uint64_t slot = (uint64_t)1 << L->slot_shift, cls = (L->out_c + (uint64_t)L->P - 1) / L->P;
        if (slot > (uint64_t)cfg->rows || cls > slot)
            snprintf(why, n, "slot of %llu rows cannot hold a class of %llu filters on %d rows",
                     (unsigned long long)slot, (unsigned long long)cls, cfg->rows);
        else
            return NULL;
    }
    return why;
}

/* Why L cannot keep its output in the activation buffer (hw/residency.py `keep_problem`), or NULL. act_buf_bytes
 * 0 (buffer checks off) skips the two half-slice sizes, as it skips the other buffer limits. */
static const char *keep_problem(const layer_t *L, const sps_golden_config *cfg, uint32_t beat, char *why, size_t n) {
    const uint64_t half = cfg->act_buf_bytes / SPS_ACT_LANES / 2;
    const uint64_t plane = (uint64_t)L->out_h * L->out_w;
    /* kept in the shared layout: channel c in slice c mod 8, planes kept_stride apart */
    const uint64_t kept_end = ((L->out_c + SPS_ACT_LANES - 1) / SPS_ACT_LANES - 1)
                              * kept_stride(plane, (uint32_t)cfg->cols, beat) + plane;
    /* an input that is loaded (not resident) lands in half 0 and must leave the other half to the kept map */
    const uint64_t used = L->in_half || L->resident ? 0
                        : L->op == SPS_OP_ADD ? (uint64_t)L->in_c * L->in_h * L->in_w
                        : act_buffer_end(L, (uint32_t)cfg->cols, beat, 1);
    if (!((L->op == SPS_OP_CONV && L->share) || L->op == SPS_OP_ADD))
        snprintf(why, n, "keep: only a CONV with shared classes or an ADD can keep its output");
    else if (L->out_map_h)
        snprintf(why, n, "keep: keeps only a whole output map (out_map_h %u: a band)", L->out_map_h);
    else if (plane % (uint32_t)cfg->cols || L->out_off % beat)
        snprintf(why, n, "keep: needs output planes a multiple of C=%d bytes (%ux%u) at an offset a multiple of %u "
                 "(%llu)", cfg->cols, L->out_h, L->out_w, beat, (unsigned long long)L->out_off);
    else if (cfg->act_buf_bytes && kept_end > half)
        snprintf(why, n, "keep: kept map takes %llu bytes of each slice, more than half a slice (%llu)",
                 (unsigned long long)kept_end, (unsigned long long)half);
    else if (cfg->act_buf_bytes && used > half)
        snprintf(why, n, "keep: its own input takes %llu bytes of half 0, more than half a slice (%llu)",
                 (unsigned long long)used, (unsigned long long)half);
    else
        return NULL;
    return why;
}

/* Why resident L cannot read what `prev` (the layer run just before, NULL: none) kept (hw/residency.py
 * `resident_problem`, then `chain_problem`), or NULL. */
static const char *resident_problem(const layer_t *prev, const layer_t *L, char *why, size_t n) {
    const int shared = L->share && (L->op == SPS_OP_CONV || L->op == SPS_OP_MAXPOOL || L->op == SPS_OP_AVGPOOL);
    const int skewed = L->op != SPS_OP_ADD && L->sw % 2 == 0;   /* bands.act_skew */
    if (!shared && L->op != SPS_OP_ADD && L->op != SPS_OP_CONV)
        snprintf(why, n, "resident: only a CONV, a shared pool or an ADD can read a kept input");
    else if (L->in_map_h)
        snprintf(why, n, "resident: reads only a whole kept map (in_map_h %u: a band)", L->in_map_h);
    else if (!prev || !prev->keep)
        snprintf(why, n, "resident: the layer before does not keep its output");
    else if (prev->out_off != L->in_off || prev->out_c != L->in_c || prev->out_h != L->in_h ||
             prev->out_w != L->in_w)
        snprintf(why, n, "resident: the layer before kept %ux%ux%u at offset %llu, this one reads %ux%ux%u at %llu",
                 prev->out_c, prev->out_h, prev->out_w, (unsigned long long)prev->out_off, L->in_c, L->in_h,
                 L->in_w, (unsigned long long)L->in_off);
    else if (L->in_half == (prev->in_half && prev->resident))   /* prev kept into the half its input is not in */
        snprintf(why, n, "resident: in_half %u is not the half the layer before kept into", L->in_half);
    else if ((int)prev->keep_skew != skewed)
        snprintf(why, n, "resident: the layer before kept the map %s, this one reads it %s (stride_w %u)",
                 prev->keep_skew ? "skewed" : "unskewed", skewed ? "skewed" : "unskewed", L->sw);
    else
        return NULL;
    return why;
}

/* Why L, run after `prev`, breaks the rules of kept maps (hw/residency.py `problem`: the same rules in the same
 * order, the same messages), or NULL. Maps are still read from DDR here: when the rules hold, a kept map in the
 * buffer equals the map in DDR, so only the rules need modelling. */
static const char *residency_problem(const layer_t *prev, const layer_t *L, const sps_golden_config *cfg,
                                     uint32_t beat, char *why, size_t n) {
    if (L->in_half && !L->resident) {
        snprintf(why, n, "in_half without resident");
        return why;
    }
    if (L->keep_skew && !L->keep) {
        snprintf(why, n, "keep_skew without keep");
        return why;
    }
    if (L->keep && keep_problem(L, cfg, beat, why, n)) return why;
    if (L->resident && resident_problem(prev, L, why, n)) return why;
    return NULL;
}

static int check_layer(ctx_t *c, const layer_t *L) {
    const sps_golden_config *cfg = c->cfg;
    const char *name = op_name(L->op);
    if (L->op > SPS_OP_ADD) return fail(c, SPS_ERR_BAD_OP, "unknown op %u", L->op);
    if (!L->in_c || !L->in_h || !L->in_w || !L->out_c || !L->out_h || !L->out_w)
        return fail(c, SPS_ERR_BAD_SHAPE, "%s with a zero dimension: in %ux%ux%u, out %ux%ux%u", name,
                    L->in_c, L->in_h, L->in_w, L->out_c, L->out_h, L->out_w);
    const uint32_t beat = cfg->beat_bytes > 0 ? (uint32_t)cfg->beat_bytes : 16;
    {
        char why[200];
        if (residency_problem(c->prev, L, cfg, beat, why, sizeof why))
            return fail(c, SPS_ERR_BAD_SHAPE, "%s %s (kept maps, hw/residency.py)", name, why);
    }
    uint64_t in_bytes = (uint64_t)L->in_c * L->in_h * L->in_w;
    uint64_t out_bytes = (uint64_t)L->out_c * L->out_h * L->out_w;
    if (L->op == SPS_OP_ADD) {
        if (L->in_c != L->out_c || L->in_h != L->out_h || L->in_w != L->out_w)
            return fail(c, SPS_ERR_BAD_SHAPE, "ADD input %ux%ux%u and output %ux%ux%u differ", L->in_c, L->in_h,
                        L->in_w, L->out_c, L->out_h, L->out_w);
        if (L->shift > 63 || L->mult >= 0x80000000u || L->mult2 >= 0x80000000u)
            return fail(c, SPS_ERR_BAD_SHAPE, "ADD mult %u / mult2 %u / shift %u out of range", L->mult,
                        L->mult2, L->shift);
        if (L->in_map_h || L->out_map_h)
            return fail(c, SPS_ERR_BAD_SHAPE, "ADD with in_map_h %u / out_map_h %u (ADD reads and writes whole "
                        "maps: both must be 0)", L->in_map_h, L->out_map_h);
        int e;
        if ((e = check_region(c, "ADD input 1", L->in_off, in_bytes, 1))) return e;
        if ((e = check_region(c, "ADD input 2", L->in2_off, in_bytes, 1))) return e;
        return check_region(c, "ADD output", L->out_off, out_bytes, 1);
    }
    /* window ops */
    if (!L->kh || !L->kw || !L->sh || !L->sw)
        return fail(c, SPS_ERR_BAD_SHAPE, "%s with kernel %ux%u, stride %ux%u", name, L->kh, L->kw, L->sh, L->sw);
    if (L->pt >= L->kh || L->pl >= L->kw ||
        (uint64_t)(L->out_h - 1) * L->sh >= (uint64_t)L->in_h + L->pt ||
        (uint64_t)(L->out_w - 1) * L->sw >= (uint64_t)L->in_w + L->pl)
        return fail(c, SPS_ERR_BAD_SHAPE, "%s output %ux%u from input %ux%u with kernel %ux%u, stride %ux%u, "
                    "pad %u/%u has windows entirely in the padding", name, L->out_h, L->out_w, L->in_h, L->in_w,
                    L->kh, L->kw, L->sh, L->sw, L->pt, L->pl);
    if ((L->in_map_h && L->in_map_h < L->in_h) || (L->out_map_h && L->out_map_h < L->out_h))
        return fail(c, SPS_ERR_BAD_SHAPE, "%s band of %u input / %u output rows in maps of %u / %u rows (a band "
                    "cannot be higher than its map)", name, L->in_h, L->out_h, L->in_map_h, L->out_map_h);
    const int shared = L->share && (L->op == SPS_OP_CONV || L->op == SPS_OP_MAXPOOL || L->op == SPS_OP_AVGPOOL);
    if (shared) {
        char why[200];
        if (share_problem(L, cfg, beat, why, sizeof why))
            return fail(c, SPS_ERR_BAD_SHAPE, "%s with shared classes (slot_shift %u) %s", name, L->slot_shift, why);
    }
    if (shared || L->resident) {      /* channel c in slice c mod 8 (bands.in_lanes): loaded so, or kept so */
        const uint64_t slice = cfg->act_buf_bytes / SPS_ACT_LANES;
        const uint64_t end = act_buffer_end(L, (uint32_t)cfg->cols, beat, 1);
        if (cfg->act_buf_bytes && end > slice)
            return fail(c, SPS_ERR_ACT_BUF_OVERFLOW, "%s in the buffer's slices: input %ux%ux%u (planes %llu bytes "
                        "apart) takes %llu bytes of each activation-buffer slice of %llu bytes (%d slices)", name,
                        L->in_c, L->in_h, L->in_w, (unsigned long long)L->in_cs, (unsigned long long)end,
                        (unsigned long long)slice, SPS_ACT_LANES);
    } else {
        uint64_t act_end = act_buffer_end(L, (uint32_t)cfg->cols, beat, 0);
        if (cfg->act_buf_bytes && act_end > cfg->act_buf_bytes)
            return fail(c, SPS_ERR_ACT_BUF_OVERFLOW, "%s input %ux%ux%u (planes %llu bytes apart) takes %llu bytes "
                        "of the activation buffer of %u bytes", name, L->in_c, L->in_h, L->in_w,
                        (unsigned long long)L->in_cs, (unsigned long long)act_end, cfg->act_buf_bytes);
    }
    int e;
    if ((e = check_region(c, "input", L->in_off, (uint64_t)(L->in_c - 1) * L->in_cs + (uint64_t)L->in_h * L->in_w,
                          0))) return e;
    if ((e = check_region(c, "output", L->out_off,
                          (uint64_t)(L->out_c - 1) * L->out_cs + (uint64_t)L->out_h * L->out_w, 0))) return e;
    if (L->op == SPS_OP_MAXPOOL || L->op == SPS_OP_AVGPOOL) {
        if (L->in_c != L->out_c)
            return fail(c, SPS_ERR_BAD_SHAPE, "%s input has %u channels, output %u", name, L->in_c, L->out_c);
        if (L->op == SPS_OP_AVGPOOL && (L->shift > 63 || L->mult >= 0x80000000u))
            return fail(c, SPS_ERR_BAD_SHAPE, "AVGPOOL mult %u / shift %u out of range", L->mult, L->shift);
        return 0;
    }
    /* CONV */
    if (L->pps) {
        if (L->kh != 3 || L->kw != 3)
            return fail(c, SPS_ERR_BAD_SHAPE, "PPS CONV with a %ux%u kernel (needs 3x3)", L->kh, L->kw);
        if (L->P < 1 || L->P > (uint32_t)cfg->max_patterns || L->P > SPS_MAX_PATTERNS || L->K < 1 || L->K > 9)
            return fail(c, SPS_ERR_BAD_SHAPE, "PPS CONV with P=%u, K=%u (needs 1<=P<=%d, 1<=K<=9)", L->P, L->K,
                        cfg->max_patterns);
        for (uint32_t j = 0; j < L->P; j++)
            if ((uint32_t)popcount9(L->masks[j]) != L->K)
                return fail(c, SPS_ERR_BAD_SHAPE, "pattern %u (mask 0x%03x) has %d taps, K=%u", j, L->masks[j],
                            popcount9(L->masks[j]), L->K);
    } else if (L->P != 1 || L->K != L->kh * L->kw) {
        return fail(c, SPS_ERR_BAD_SHAPE, "dense CONV %ux%u with P=%u, K=%u (needs P=1, K=kh*kw=%u)", L->kh,
                    L->kw, L->P, L->K, L->kh * L->kw);
    }
    uint32_t R = (uint32_t)cfg->rows;
    if (cfg->weight_buf_bytes && (uint64_t)L->in_c * L->K * R > cfg->weight_buf_bytes)
        return fail(c, SPS_ERR_WEIGHT_BUF_OVERFLOW, "CONV row group of %u x %u x %u = %llu bytes exceeds the weight "
                    "buffer of %u bytes", L->in_c, L->K, R, (unsigned long long)L->in_c * L->K * R,
                    cfg->weight_buf_bytes);
    uint64_t groups = layer_groups(L, R);
    if ((e = check_region(c, "weights", L->w_off, groups * group_weight_bytes(L->in_c, L->K, R), 1))) return e;
    if ((e = check_region(c, "params", L->p_off, groups * R * SPS_PARAM_RECORD_BYTES, 1))) return e;
    return 0;
}

/* ---------------------------------------------------------------- CONV */

typedef struct {
    int32_t bias, mult, shift, o;   /* o = -1 for the padding filters of the last block */
} filt_t;

typedef struct {
    uint32_t members;      /* filters in the class: o = r + P * m, m < members (layout.py order) */
    uint32_t mpad;         /* members rounded up to FBLK */
    int16_t *wt;           /* tile path: [JP][mpad][2] weight pairs (rows 2jp, 2jp+1), ready to broadcast */
    filt_t *f;             /* [mpad] */
    int64_t *src;          /* [JP*2]: offset of row j = (i, k) in the padded input, -1 for the padding row */
} class_t;

typedef struct {
    const layer_t *L;
    const class_t *cls;
    const int8_t *xpad;
    const uint64_t *pixoff;    /* gather path: offset of output pixel p in a padded plane */
    int8_t *out;
    uint64_t pix, JP, Wp;
    uint32_t P;
    int virt;                  /* stride 1: tiles run over a virtual grid of out_h x Wp pixels (see run_conv) */
    uint64_t vpix;             /* pixels the tiles cover: out_h * Wp (virtual) or out_h * out_w */
    uint64_t ntiles;
    volatile int oom;
} conv_job_t;

/* acc[b][q] = sum over pairs jp of w[jp][b][0] * z[jp][q][0] + w[jp][b][1] * z[jp][q][1], for 4 filters b and
 * 16 pixels q; w advances by `wstride` int16 per pair. */
static void kernel_4x16(const int16_t *z, const int16_t *w, uint64_t wstride, uint64_t JP,
                        int32_t acc[FBLK][TILE_PIX]) {
#if defined(__AVX2__)
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00;
    __m256i a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (uint64_t jp = 0; jp < JP; jp++, z += 2 * TILE_PIX, w += wstride) {
        const __m256i z0 = _mm256_loadu_si256((const __m256i *)z);
        const __m256i z1 = _mm256_loadu_si256((const __m256i *)(z + 16));
        int32_t wp[FBLK];
        memcpy(wp, w, sizeof wp);
        __m256i b = _mm256_set1_epi32(wp[0]);
        a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(z0, b));
        a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(z1, b));
        b = _mm256_set1_epi32(wp[1]);
        a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(z0, b));
        a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(z1, b));
        b = _mm256_set1_epi32(wp[2]);
        a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(z0, b));
        a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(z1, b));
        b = _mm256_set1_epi32(wp[3]);
        a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(z0, b));
        a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(z1, b));
    }
    _mm256_storeu_si256((__m256i *)&acc[0][0], a00); _mm256_storeu_si256((__m256i *)&acc[0][8], a01);
    _mm256_storeu_si256((__m256i *)&acc[1][0], a10); _mm256_storeu_si256((__m256i *)&acc[1][8], a11);
    _mm256_storeu_si256((__m256i *)&acc[2][0], a20); _mm256_storeu_si256((__m256i *)&acc[2][8], a21);
    _mm256_storeu_si256((__m256i *)&acc[3][0], a30); _mm256_storeu_si256((__m256i *)&acc[3][8], a31);
#else
    /* Portable version (e.g. the board's aarch64): the same sums, left to the auto-vectorizer. */
    for (int b = 0; b < FBLK; b++)
        for (int q = 0; q < TILE_PIX; q++) acc[b][q] = 0;
    for (uint64_t jp = 0; jp < JP; jp++, z += 2 * TILE_PIX, w += wstride)
        for (int b = 0; b < FBLK; b++) {
            const int32_t w0 = w[2 * b], w1 = w[2 * b + 1];
            for (int q = 0; q < TILE_PIX; q++) acc[b][q] += w0 * z[2 * q] + w1 * z[2 * q + 1];
        }
#endif
}

/* Z[jp][q][0..1] = (row 2jp, row 2jp+1) at 16 consecutive positions of the padded input, as int16 pairs. */
static void gather_contiguous(int16_t *z, const int8_t *base, const int64_t *src, uint64_t JP) {
    for (uint64_t jp = 0; jp < JP; jp++, z += 2 * TILE_PIX) {
        const int8_t *a = base + src[2 * jp];
        const int64_t s1 = src[2 * jp + 1];
#if defined(__AVX2__)
        const __m128i va = _mm_loadu_si128((const __m128i *)a);
        const __m128i vb = s1 >= 0 ? _mm_loadu_si128((const __m128i *)(base + s1)) : _mm_setzero_si128();
        _mm256_storeu_si256((__m256i *)z, _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(va, vb)));
        _mm256_storeu_si256((__m256i *)(z + 16), _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(va, vb)));
#else
        for (int q = 0; q < TILE_PIX; q++) {
            z[2 * q] = a[q];
            z[2 * q + 1] = s1 >= 0 ? base[s1 + q] : 0;
        }
#endif
    }
}

#if defined(__AVX2__)
/* (x >> S), ReLU and saturation of int64 lanes e (elements 0, 2, 4, 6) and o (1, 3, 5, 7), exactly as requant()
 * and finish() do, as 8 int32. AVX2 has no 64-bit arithmetic shift: x >> S == ((x ^ 2^63) >>> S) - (2^63 >>> S). */
static inline __m256i shift_sat8(__m256i e, __m256i o, __m128i cnt, __m256i lo, __m256i hi) {
    const __m256i sb = _mm256_set1_epi64x(INT64_MIN);
    const __m256i corr = _mm256_srl_epi64(sb, cnt);
    e = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_xor_si256(e, sb), cnt), corr);
    o = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_xor_si256(o, sb), cnt), corr);
    e = _mm256_blendv_epi8(e, hi, _mm256_cmpgt_epi64(e, hi));
    e = _mm256_blendv_epi8(e, lo, _mm256_cmpgt_epi64(lo, e));
    o = _mm256_blendv_epi8(o, hi, _mm256_cmpgt_epi64(o, hi));
    o = _mm256_blendv_epi8(o, lo, _mm256_cmpgt_epi64(lo, o));
    return _mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA);
}

/* requant + ReLU + saturation of 8 int32 lanes v (multiplier m in every 64-bit lane). */
static inline __m256i requant8(__m256i v, __m256i m, __m256i rnd, __m128i cnt, __m256i lo, __m256i hi) {
    const __m256i e = _mm256_add_epi64(_mm256_mul_epi32(v, m), rnd);
    const __m256i o = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), m), rnd);
    return shift_sat8(e, o, cnt, lo, hi);
}
#endif

/* y[q] = finish(requant(acc[q] + bias, mult, shift), relu) for the 16 lanes of a tile. */
static void requant_tile(const int32_t *acc, const filt_t *f, int relu, int32_t *y) {
#if defined(__AVX2__)
    const __m256i bias = _mm256_set1_epi32(f->bias);
    const __m256i m = _mm256_set1_epi64x(f->mult);
    const __m256i rnd = _mm256_set1_epi64x(f->shift > 0 ? (int64_t)1 << (f->shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(f->shift);
    const __m256i lo = _mm256_set1_epi64x(relu ? 0 : -128), hi = _mm256_set1_epi64x(127);
    for (int q = 0; q < TILE_PIX; q += 8) {
        const __m256i v = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(acc + q)), bias);
        _mm256_storeu_si256((__m256i *)(y + q), requant8(v, m, rnd, cnt, lo, hi));
    }
#else
    for (int q = 0; q < TILE_PIX; q++) y[q] = finish(requant((int32_t)(acc[q] + f->bias), f->mult, f->shift), relu);
#endif
}

/* One (class, tile of 16 pixels): build the tile's rows Z[JP][16][2] once, then every 4-filter block of the
 * class multiplies it, and the real pixels of the tile are requantized and written to channel o. */
static void conv_tile_item(void *arg, int64_t it, void **scratch) {
    conv_job_t *jb = arg;
    const layer_t *L = jb->L;
    const uint32_t r = (uint32_t)(it / jb->ntiles);
    const uint64_t v0 = (uint64_t)(it % jb->ntiles) * TILE_PIX, JP = jb->JP;
    const class_t *C = &jb->cls[r];
    if (!C->members) return;
    if (!*scratch) *scratch = malloc(JP * TILE_PIX * 2 * sizeof(int16_t));
    int16_t *z = *scratch;
    if (!z) { jb->oom = 1; return; }
    int64_t dst[TILE_PIX];            /* output pixel of each lane, -1 for lanes outside the map */
    if (jb->virt) {
        gather_contiguous(z, jb->xpad + v0, C->src, JP);
        for (int q = 0; q < TILE_PIX; q++) {
            const uint64_t v = v0 + q, y = v / jb->Wp, x = v % jb->Wp;
            dst[q] = (v < jb->vpix && x < L->out_w) ? (int64_t)(y * L->out_w + x) : -1;
        }
    } else {
        const int n = jb->pix - v0 < TILE_PIX ? (int)(jb->pix - v0) : TILE_PIX;
        const uint64_t *po = jb->pixoff + v0;
        for (uint64_t jp = 0; jp < JP; jp++) {
            const int64_t s0 = C->src[2 * jp], s1 = C->src[2 * jp + 1];
            int16_t *zz = z + jp * TILE_PIX * 2;
            for (int q = 0; q < TILE_PIX; q++) {
                zz[2 * q] = q < n ? jb->xpad[s0 + po[q]] : 0;
                zz[2 * q + 1] = (q < n && s1 >= 0) ? jb->xpad[s1 + po[q]] : 0;
            }
        }
        for (int q = 0; q < TILE_PIX; q++) dst[q] = q < n ? (int64_t)(v0 + q) : -1;
    }
    int32_t acc[FBLK][TILE_PIX];
    for (uint32_t b0 = 0; b0 < C->mpad; b0 += FBLK) {
        kernel_4x16(z, C->wt + (uint64_t)b0 * 2, (uint64_t)C->mpad * 2, JP, acc);
        for (int b = 0; b < FBLK; b++) {
            const filt_t *f = &C->f[b0 + b];
            if (f->o < 0) continue;
            int8_t *o = jb->out + (uint64_t)f->o * L->out_cs;
            int32_t y[TILE_PIX];
            requant_tile(acc[b], f, L->relu, y);
            for (int q = 0; q < TILE_PIX; q++)
                if (dst[q] >= 0) o[dst[q]] = (int8_t)y[q];
        }
    }
}

typedef struct {
    uint64_t Hp, Wp, plane, pix, J, JP;
    int dot;
} conv_geom_t;

static conv_geom_t conv_geometry(const layer_t *L) {
    conv_geom_t g;
    const uint64_t rows_needed = (uint64_t)(L->out_h - 1) * L->sh + L->kh;
    const uint64_t cols_needed = (uint64_t)(L->out_w - 1) * L->sw + L->kw;
    g.Hp = rows_needed > L->pt + L->in_h ? rows_needed : L->pt + L->in_h;
    g.Wp = cols_needed > L->pl + L->in_w ? cols_needed : L->pl + L->in_w;
    g.plane = g.Hp * g.Wp;
    g.pix = (uint64_t)L->out_h * L->out_w;
    g.J = (uint64_t)L->in_c * L->K;
    g.JP = (g.J + 1) / 2;
    g.dot = g.pix < DOT_MAX_PIX;
    return g;
}

/* tap[p][k]: the k-th set bit of pattern p's mask (PPS), or k itself (dense, p = 0). */
typedef struct {
    uint8_t tap[SPS_MAX_PATTERNS][256];
} taps_t;

static void tap_table(const layer_t *L, taps_t *T) {
    if (!L->pps) {
        for (uint32_t k = 0; k < L->K; k++) T->tap[0][k] = (uint8_t)k;
        return;
    }
    for (uint32_t p = 0; p < L->P; p++)
        for (uint32_t t = 0, k = 0; t < 9; t++)
            if (L->masks[p] >> t & 1) T->tap[p][k++] = (uint8_t)t;
}

/* src[j] for j = (i, k) < J: offset in the padded input of channel i shifted by tap k of pattern (r + i) mod P
 * (dense: tap k). Nested loops, no division per row: this runs for every row of every class. */
static void row_offsets(const layer_t *L, const conv_geom_t *g, const taps_t *T, uint32_t r, int64_t *src) {
    int64_t toff[SPS_MAX_PATTERNS][256];
    const uint32_t np = L->pps ? L->P : 1;
    for (uint32_t p = 0; p < np; p++)
        for (uint32_t k = 0; k < L->K; k++) {
            const uint32_t t = T->tap[p][k];
            toff[p][k] = (int64_t)((t / L->kw) * g->Wp + t % L->kw);
        }
    uint32_t pat = r % np;
    for (uint32_t i = 0; i < L->in_c; i++, src += L->K) {
        const int64_t base = (int64_t)(i * g->plane);
        for (uint32_t k = 0; k < L->K; k++) src[k] = base + toff[pat][k];
        if (++pat == np) pat = 0;
    }
}

/* Small maps and FC layers (fewer than DOT_MAX_PIX output pixels): every weight is used for only a few pixels,
 * so the weights are read straight from the arena's row groups (int8, (j, row) order: R filters side by side, a
 * vector) with no preparation and no cache, DOT_NP pixels per pass over a group's weights. */
typedef struct {
    const layer_t *L;
    const uint8_t *arena;
    uint32_t R, P;
    uint64_t J, n, pix, gw;
    const int16_t *zv;           /* [P][pix][n]: the rows j of each class at each pixel, int16, zero-padded */
    const uint32_t *grp;         /* [groups][3]: class r, first member m0, rows */
} dot_job_t;

#if defined(__AVX2__)
/* acc[p][0..15] = sum over rows j < J (pairs; returns the first row left) of the 16 int8 weights of row j
 * times z[p * n + j], for NP pixels. */
static inline __attribute__((always_inline)) uint64_t dot16_rows(const int8_t *wg, const int16_t *z, uint64_t n,
                                                                 uint64_t J, const int NP, int32_t acc[][256]) {
    __m256i lo[DOT_NP], hi[DOT_NP];
    for (int p = 0; p < NP; p++) lo[p] = hi[p] = _mm256_setzero_si256();
    uint64_t j = 0;
    for (; j + 1 < J; j += 2) {           /* rows j, j+1 as int16 pairs for filters 0-7 and 8-15 */
        const __m128i w0 = _mm_loadu_si128((const __m128i *)(wg + j * 16));
        const __m128i w1 = _mm_loadu_si128((const __m128i *)(wg + (j + 1) * 16));
        const __m256i wl = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(w0, w1));
        const __m256i wh = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(w0, w1));
        for (int p = 0; p < NP; p++) {
            int32_t pair;
            memcpy(&pair, z + p * n + j, sizeof pair);
            const __m256i zz = _mm256_set1_epi32(pair);
            lo[p] = _mm256_add_epi32(lo[p], _mm256_madd_epi16(wl, zz));
            hi[p] = _mm256_add_epi32(hi[p], _mm256_madd_epi16(wh, zz));
        }
    }
    for (int p = 0; p < NP; p++) {
        _mm256_storeu_si256((__m256i *)&acc[p][0], lo[p]);
        _mm256_storeu_si256((__m256i *)&acc[p][8], hi[p]);
    }
    return j;
}
#endif

static void dot_group_item(void *arg, int64_t g, void **scratch) {
    const dot_job_t *jb = arg;
    const layer_t *L = jb->L;
    (void)scratch;
    const uint32_t r = jb->grp[3 * g], m0 = jb->grp[3 * g + 1], nrows = jb->grp[3 * g + 2], R = jb->R;
    const int8_t *wg = (const int8_t *)L->wsrc + (uint64_t)g * jb->gw;
    const uint8_t *pg = L->psrc + (uint64_t)g * R * SPS_PARAM_RECORD_BYTES;
    const int16_t *z = jb->zv + (uint64_t)r * jb->pix * jb->n;
    const uint64_t J = jb->J, n = jb->n;
    const int npix = (int)jb->pix;
    int32_t acc[DOT_MAX_PIX][256];          /* R <= 255 */
    uint64_t j = 0;
#if defined(__AVX2__)
    if (R == 16) {
        for (int p0 = 0; p0 < npix; p0 += DOT_NP) {
            const uint64_t zo = (uint64_t)p0 * n;
            switch (npix - p0) {      /* a constant pixel count lets the compiler keep every sum in a register */
            case 1: j = dot16_rows(wg, z + zo, n, J, 1, acc + p0); break;
            case 2: j = dot16_rows(wg, z + zo, n, J, 2, acc + p0); break;
            case 3: j = dot16_rows(wg, z + zo, n, J, 3, acc + p0); break;
            default: j = dot16_rows(wg, z + zo, n, J, DOT_NP, acc + p0); break;
            }
        }
    } else
#endif
        for (int p = 0; p < npix; p++)
            for (uint32_t row = 0; row < R; row++) acc[p][row] = 0;
    for (; j < J; j++)                      /* what the vector loop left (all of it when R != 16) */
        for (int p = 0; p < npix; p++) {
            const int32_t x = z[p * n + j];
            for (uint32_t row = 0; row < R; row++) acc[p][row] += wg[j * R + row] * x;
        }
    for (uint32_t row = 0; row < nrows; row++) {
        const uint8_t *rec = pg + row * SPS_PARAM_RECORD_BYTES;
        const int32_t bias = (int32_t)rd32(rec), mult = (int32_t)rd32(rec + 4), shift = (int32_t)rd32(rec + 8);
        const uint64_t o = r + (uint64_t)jb->P * (m0 + row);
        for (int p = 0; p < npix; p++)
            ((int8_t *)jb->arena)[L->out_off + o * L->out_cs + p] =
                finish(requant((int32_t)(acc[p][row] + bias), mult, shift), L->relu);
    }
}

static int run_conv_direct(ctx_t *c, uint8_t *arena, const layer_t *L) {
    const uint32_t R = (uint32_t)c->cfg->rows, P = L->pps ? L->P : 1, O = L->out_c;
    const conv_geom_t g = conv_geometry(L);
    const uint64_t n = (g.J + 15) / 16 * 16, groups = num_groups(O, P, R);
    int8_t *xpad = calloc(L->in_c * g.plane + 1, 1);
    int16_t *zv = calloc((size_t)P * g.pix * n + 1, sizeof(int16_t));
    uint32_t *grp = malloc((groups * 3 + 1) * sizeof(uint32_t));
    int64_t *src = malloc((g.J + 1) * sizeof(int64_t));
    int err = 0;
    if (!xpad || !zv || !grp || !src) { err = 1; goto done; }
    for (uint32_t i = 0; i < L->in_c; i++)
        for (uint32_t y = 0; y < L->in_h; y++)
            memcpy(xpad + i * g.plane + (y + L->pt) * g.Wp + L->pl,
                   arena + L->in_off + (uint64_t)i * L->in_cs + (uint64_t)y * L->in_w, L->in_w);
    taps_t T;
    tap_table(L, &T);
    uint64_t poff[DOT_MAX_PIX];
    for (uint64_t p = 0; p < g.pix; p++) poff[p] = (p / L->out_w) * L->sh * g.Wp + (p % L->out_w) * L->sw;
    for (uint32_t r = 0; r < P; r++) {
        row_offsets(L, &g, &T, r, src);
        for (uint64_t p = 0; p < g.pix; p++) {
            int16_t *zr = zv + (r * g.pix + p) * n;
            const int8_t *xp = xpad + poff[p];
            for (uint64_t j = 0; j < g.J; j++) zr[j] = xp[src[j]];
        }
    }
    uint64_t gi = 0;
    for (uint32_t r = 0; r < P; r++) {
        const uint32_t members = (uint32_t)class_size(O, P, r);
        for (uint32_t m0 = 0; m0 < members; m0 += R, gi++) {
            const uint32_t nrows = members - m0 < R ? members - m0 : R;
            grp[3 * gi] = r; grp[3 * gi + 1] = m0; grp[3 * gi + 2] = nrows;
            for (uint32_t row = 0; row < nrows; row++) {     /* parameter records checked before any write */
                const uint8_t *rec = L->psrc + (gi * R + row) * SPS_PARAM_RECORD_BYTES;
                const int32_t mult = (int32_t)rd32(rec + 4), shift = (int32_t)rd32(rec + 8);
                if (mult < 0 || shift < 0 || shift > 63) {
                    fail(c, SPS_ERR_BAD_SHAPE, "CONV filter %u has multiplier %d, shift %d (needs 0..2^31-1, "
                         "0..63)", r + P * (m0 + row), mult, shift);
                    err = 2;
                    goto done;
                }
            }
        }
    }
    dot_job_t job = {L, arena, R, P, g.J, n, g.pix, group_weight_bytes(L->in_c, L->K, R), zv, grp};
    sps_parallel_for((int64_t)groups, threads_for(c->cfg, (uint64_t)O * g.J * g.pix), dot_group_item, &job);
done:
    free(src);
    free(grp);
    free(zv);
    free(xpad);
    if (err == 1) return fail(c, SPS_ERR_BAD_SHAPE, "CONV %ux%ux%u -> %ux%ux%u: out of host memory", L->in_c,
                              L->in_h, L->in_w, L->out_c, L->out_h, L->out_w);
    return err ? c->st->error : 0;
}

/* What a CONV needs besides the input: per class its filters, params, weights as int16 and row sources.
 * Built from the arena's weight and parameter bytes; reused across runs through sps_golden_cache. */
typedef struct {
    uint32_t P;
    class_t *cls;
} conv_prep_t;

static void free_prep(conv_prep_t *pr) {
    if (pr->cls)
        for (uint32_t r = 0; r < pr->P; r++) {
            free(pr->cls[r].wt); free(pr->cls[r].f); free(pr->cls[r].src);
        }
    free(pr->cls);
    pr->cls = NULL;
}

/* Returns 0, 1 (out of memory) or 2 (bad parameter record, status set). */
static int prepare_conv(ctx_t *c, const layer_t *L, conv_prep_t *pr) {
    const uint32_t R = (uint32_t)c->cfg->rows, P = L->pps ? L->P : 1, K = L->K, O = L->out_c;
    const conv_geom_t g = conv_geometry(L);
    const uint64_t J = g.J, JP = g.JP;
    pr->P = P;
    pr->cls = calloc(P, sizeof *pr->cls);
    taps_t *T = malloc(sizeof *T);
    if (!pr->cls || !T) { free(T); return 1; }
    tap_table(L, T);
    const uint64_t gw = group_weight_bytes(L->in_c, K, R);
    uint64_t gidx = 0;
    for (uint32_t r = 0; r < P; r++) {
        class_t *C = &pr->cls[r];
        C->members = (uint32_t)class_size(O, P, r);
        C->mpad = (C->members + FBLK - 1) / FBLK * FBLK;
        C->f = calloc((size_t)C->mpad + 1, sizeof(filt_t));
        C->src = malloc((JP * 2) * sizeof(int64_t));
        C->wt = calloc((size_t)JP * C->mpad * 2 + 1, sizeof(int16_t));
        if (!C->f || !C->src || !C->wt) { free(T); return 1; }
        row_offsets(L, &g, T, r, C->src);
        if (J < JP * 2) C->src[J] = -1;
        for (uint32_t b = 0; b < C->mpad; b++) C->f[b].o = -1;
        for (uint32_t m0 = 0; m0 < C->members; m0 += R, gidx++) {
            const int8_t *wg = (const int8_t *)L->wsrc + gidx * gw;
            const uint8_t *pg = L->psrc + gidx * R * SPS_PARAM_RECORD_BYTES;
            const uint32_t nrows = C->members - m0 < R ? C->members - m0 : R;
            for (uint32_t row = 0; row < nrows; row++) {
                const uint8_t *rec = pg + row * SPS_PARAM_RECORD_BYTES;
                filt_t *f = &C->f[m0 + row];
                f->o = (int32_t)(r + P * (m0 + row));
                f->bias = (int32_t)rd32(rec);
                f->mult = (int32_t)rd32(rec + 4);
                f->shift = (int32_t)rd32(rec + 8);
                if (f->mult < 0 || f->shift < 0 || f->shift > 63) {
                    fail(c, SPS_ERR_BAD_SHAPE, "CONV filter %d has multiplier %d, shift %d (needs 0..2^31-1, "
                         "0..63)", f->o, f->mult, f->shift);
                    free(T);
                    return 2;
                }
            }
            /* The group's block is (i, k, row) = (j, row): R weights per row j. */
            for (uint64_t j = 0; j < J; j++) {
                const int8_t *s = wg + j * R;
                int16_t *d = C->wt + (j / 2) * C->mpad * 2 + (j % 2) + (uint64_t)m0 * 2;
                for (uint32_t row = 0; row < nrows; row++) d[2 * row] = s[row];
            }
        }
    }
    free(T);
    return 0;
}

static int execute_conv(ctx_t *c, uint8_t *arena, const layer_t *L, const conv_prep_t *pr) {
    const uint32_t P = pr->P, I = L->in_c;
    const conv_geom_t g = conv_geometry(L);
    const uint64_t pix = g.pix, JP = g.JP, Wp = g.Wp, plane = g.plane;
    const class_t *cls = pr->cls;
    /* Stride 1: output pixel (y, x) reads plane offset y * Wp + x + tap offset. Numbering pixels over a grid
     * Wp wide (the columns x >= out_w are computed and thrown away) makes a tile's 16 reads contiguous. The
     * last tile may read up to 15 + kw bytes past the last plane: the allocation has slack for it. Small maps
     * (where the thrown-away columns would be many) gather pixel by pixel instead. */
    const uint64_t vtiles = ((uint64_t)L->out_h * Wp + TILE_PIX - 1) / TILE_PIX, rtiles = (pix + TILE_PIX - 1) / TILE_PIX;
    const int virt = L->sh == 1 && L->sw == 1 && vtiles * 4 <= rtiles * 5;   /* <= 25% more lanes */
    const int8_t *in = (const int8_t *)arena + L->in_off;
    int8_t *out = (int8_t *)arena + L->out_off;
    int8_t *xpad = calloc(I * plane + Wp + 2 * TILE_PIX + 64, 1);   /* the input padded with zeros */
    uint64_t *pixoff = malloc((pix + TILE_PIX) * sizeof *pixoff);
    conv_job_t job;
    memset(&job, 0, sizeof job);
    int err = 0;
    if (!xpad || !pixoff) { err = 1; goto done; }
    for (uint32_t i = 0; i < I; i++)
        for (uint32_t y = 0; y < L->in_h; y++)
            memcpy(xpad + i * plane + (y + L->pt) * Wp + L->pl, in + (uint64_t)i * L->in_cs + (uint64_t)y * L->in_w,
                   L->in_w);
    for (uint64_t p = 0; p < pix + TILE_PIX; p++) {
        const uint64_t y = p / L->out_w, x = p % L->out_w;
        pixoff[p] = p < pix ? y * L->sh * Wp + x * L->sw : 0;
    }
    job.L = L; job.cls = cls; job.xpad = xpad; job.pixoff = pixoff; job.out = out;
    job.pix = pix; job.JP = JP; job.Wp = Wp; job.P = P; job.virt = virt;
    job.vpix = virt ? (uint64_t)L->out_h * Wp : pix;
    job.ntiles = (job.vpix + TILE_PIX - 1) / TILE_PIX;
    const int threads = threads_for(c->cfg, (uint64_t)L->out_c * g.J * pix);
    sps_parallel_for((int64_t)(P * job.ntiles), threads, conv_tile_item, &job);
    if (job.oom) err = 1;
done:
    free(pixoff);
    free(xpad);
    return err;
}

/* ---------------------------------------------------------------- the prepared-weights cache */

typedef struct {
    int valid;
    uint32_t words[SPS_DESC_WORDS];
    int32_t rows;
    uint64_t w_len, p_len;
    uint8_t *raw;            /* copy of the weight and parameter bytes the preparation was made from */
    conv_prep_t prep;
} cache_entry_t;

struct sps_golden_cache {
    uint32_t n;
    cache_entry_t *e;
};

sps_golden_cache *sps_golden_cache_new(void) {
    return calloc(1, sizeof(sps_golden_cache));
}

void sps_golden_cache_free(sps_golden_cache *cache) {
    if (!cache) return;
    for (uint32_t j = 0; j < cache->n; j++) {
        free(cache->e[j].raw);
        free_prep(&cache->e[j].prep);
    }
    free(cache->e);
    free(cache);
}

static int run_conv_plain(ctx_t *c, uint8_t *arena, const layer_t *L, sps_golden_cache *cache) {
    if (conv_geometry(L).dot) return run_conv_direct(c, arena, L);
    const uint32_t R = (uint32_t)c->cfg->rows, P = L->pps ? L->P : 1;
    const uint64_t groups = num_groups(L->out_c, P, R);
    const uint64_t w_len = groups * group_weight_bytes(L->in_c, L->K, R);
    const uint64_t p_len = groups * R * SPS_PARAM_RECORD_BYTES;
    cache_entry_t *ce = NULL;
    int err;
    if (cache && c->layer >= 0) {
        if ((uint32_t)c->layer >= cache->n) {
            uint32_t n = (uint32_t)c->layer + 16;
            cache_entry_t *e = realloc(cache->e, n * sizeof *e);
            if (e) {
                memset(e + cache->n, 0, (n - cache->n) * sizeof *e);
                cache->e = e;
                cache->n = n;
            }
        }
        if ((uint32_t)c->layer < cache->n) ce = &cache->e[c->layer];
    }
    /* A cached preparation is used only if the descriptor and every weight/param byte are unchanged. */
    if (ce && ce->valid && ce->rows == (int32_t)R && ce->w_len == w_len && ce->p_len == p_len &&
        !memcmp(ce->words, L->words, sizeof ce->words) && !memcmp(ce->raw, L->wsrc, w_len) &&
        !memcmp(ce->raw + w_len, L->psrc, p_len)) {
        err = execute_conv(c, arena, L, &ce->prep);
    } else {
        conv_prep_t prep = {0, NULL};
        err = prepare_conv(c, L, &prep);
        if (!err) err = execute_conv(c, arena, L, &prep);
        if (ce) {
            free(ce->raw);
            free_prep(&ce->prep);
            ce->valid = 0;
            ce->raw = err ? NULL : malloc(w_len + p_len + 1);
            if (ce->raw) {
                memcpy(ce->raw, L->wsrc, w_len);
                memcpy(ce->raw + w_len, L->psrc, p_len);
                memcpy(ce->words, L->words, sizeof ce->words);
                ce->rows = (int32_t)R;
                ce->w_len = w_len;
                ce->p_len = p_len;
                ce->prep = prep;
                ce->valid = 1;
                prep.cls = NULL;          /* now owned by the cache */
            }
        }
        free_prep(&prep);
    }
    if (err == 1) return fail(c, SPS_ERR_BAD_SHAPE, "CONV %ux%ux%u -> %ux%ux%u: out of host memory", L->in_c,
                              L->in_h, L->in_w, L->out_c, L->out_h, L->out_w);
    return err ? c->st->error : 0;
}

/* Shared classes (layout.py): the same products as the plain layout, only stored differently. Row d * n + j of
 * shared group g is filter o = g * S + d + P * j, whose weight at step (i, k) is tap k of kernel (o, c_d(i)); the
 * plain layout holds class r = g * S + d (one group: it has at most n <= R filters) with its weight for channel
 * c at (c, k). Converting the weights and parameter records once and running the plain path gives the bytes
 * the core computes (int32 sums do not depend on their order). Returns 0 or 1 (out of host memory). */
static int unshare(const uint8_t *arena, const layer_t *L, uint32_t R, uint8_t **wout, uint8_t **pout) {
    const uint32_t P = L->P, O = L->out_c, K = L->K, I = L->in_c, n = 1u << L->slot_shift;
    const uint32_t S = share_slots(P, R, L->slot_shift);
    const uint64_t gw = group_weight_bytes(I, K, R), groups = num_groups(O, P, R);
    uint8_t *w = calloc(groups * gw + 1, 1), *pp = calloc(groups * R * SPS_PARAM_RECORD_BYTES + 1, 1);
    *wout = w;
    *pout = pp;
    if (!w || !pp) return 1;
    uint64_t gi = 0;
    for (uint32_t r = 0; r < P; r++) {
        const uint32_t members = (uint32_t)class_size(O, P, r), g = r / S, d = r % S;
        if (!members) continue;
        const uint8_t *sw = arena + L->w_off + (uint64_t)g * gw;
        const uint8_t *sp = arena + L->p_off + (uint64_t)g * R * SPS_PARAM_RECORD_BYTES;
        uint8_t *dw = w + gi * gw;
        for (uint32_t i = 0; i < I; i++) {
            const uint32_t ch = SPS_ACT_LANES * (i / SPS_ACT_LANES) +
                                (i % SPS_ACT_LANES + SPS_ACT_LANES - d % SPS_ACT_LANES) % SPS_ACT_LANES;
            for (uint32_t k = 0; k < K; k++)
                memcpy(dw + ((uint64_t)ch * K + k) * R, sw + ((uint64_t)i * K + k) * R + (uint64_t)d * n, members);
        }
        memcpy(pp + gi * R * SPS_PARAM_RECORD_BYTES, sp + (uint64_t)d * n * SPS_PARAM_RECORD_BYTES,
               (uint64_t)members * SPS_PARAM_RECORD_BYTES);
        gi++;
    }
    return 0;
}

static int run_conv(ctx_t *c, uint8_t *arena, const layer_t *L0, sps_golden_cache *cache) {
    layer_t L = *L0;
    L.wsrc = arena + L.w_off;
    L.psrc = arena + L.p_off;
    if (!L.share) return run_conv_plain(c, arena, &L, cache);
    uint8_t *w, *pp;
    int err = unshare(arena, &L, (uint32_t)c->cfg->rows, &w, &pp);
    if (!err) {
        L.wsrc = w;
        L.psrc = pp;
        err = run_conv_plain(c, arena, &L, cache);
    } else {
        err = fail(c, SPS_ERR_BAD_SHAPE, "CONV %ux%ux%u -> %ux%ux%u: out of host memory", L.in_c, L.in_h, L.in_w,
                   L.out_c, L.out_h, L.out_w);
    }
    free(w);
    free(pp);
    return err;
}

/* ---------------------------------------------------------------- pools and ADD */

typedef struct {
    const layer_t *L;
    const int8_t *in, *in2;
    int8_t *out;
} elem_job_t;

static void pool_item(void *arg, int64_t ch, void **scratch) {
    const elem_job_t *jb = arg;
    const layer_t *L = jb->L;
    (void)scratch;
    const int is_max = L->op == SPS_OP_MAXPOOL;
    const int8_t *x = jb->in + (uint64_t)ch * L->in_cs;
    int8_t *o = jb->out + (uint64_t)ch * L->out_cs;
    if (is_max && L->kh == 2 && L->kw == 2 && L->sh == 2 && L->sw == 2 && L->pt == 0 && L->pl == 0 &&
        2 * L->out_h <= L->in_h && 2 * L->out_w <= L->in_w) {
        /* the common 2x2 / stride 2 pool with every window inside the map: no bounds to clip */
        const int8_t floor_ = L->relu ? 0 : -128;
        for (uint32_t y = 0; y < L->out_h; y++) {
            const int8_t *r0 = x + (uint64_t)2 * y * L->in_w, *r1 = r0 + L->in_w;
            int8_t *dst = o + (uint64_t)y * L->out_w;
            for (uint32_t xo = 0; xo < L->out_w; xo++) {
                int8_t a = r0[2 * xo] > r0[2 * xo + 1] ? r0[2 * xo] : r0[2 * xo + 1];
                const int8_t b = r1[2 * xo] > r1[2 * xo + 1] ? r1[2 * xo] : r1[2 * xo + 1];
                a = a > b ? a : b;
                dst[xo] = a > floor_ ? a : floor_;
            }
        }
        return;
    }
    for (uint32_t y = 0; y < L->out_h; y++) {
        int64_t y0 = (int64_t)y * L->sh - L->pt, y1 = y0 + L->kh;
        if (y0 < 0) y0 = 0;
        if (y1 > L->in_h) y1 = L->in_h;
        for (uint32_t xo = 0; xo < L->out_w; xo++) {
            int64_t x0 = (int64_t)xo * L->sw - L->pl, x1 = x0 + L->kw;
            if (x0 < 0) x0 = 0;
            if (x1 > L->in_w) x1 = L->in_w;
            int32_t m = -128;
            uint32_t sum = 0;          /* an int32 register: wraps like the hardware's */
            for (int64_t iy = y0; iy < y1; iy++)
                for (int64_t ix = x0; ix < x1; ix++) {
                    int32_t v = x[iy * L->in_w + ix];
                    if (v > m) m = v;
                    sum += (uint32_t)v;
                }
            o[(uint64_t)y * L->out_w + xo] =
                is_max ? finish(m, L->relu) : finish(requant((int32_t)sum, L->mult, (int)L->shift), L->relu);
        }
    }
}

static void run_pool(ctx_t *c, uint8_t *arena, const layer_t *L) {
    elem_job_t jb = {L, (const int8_t *)arena + L->in_off, NULL, (int8_t *)arena + L->out_off};
    uint64_t work = (uint64_t)L->out_c * L->out_h * L->out_w * L->kh * L->kw;
    sps_parallel_for(L->in_c, threads_for(c->cfg, work), pool_item, &jb);
}

#define ADD_CHUNK 65536

static void add_item(void *arg, int64_t chunk, void **scratch) {
    const elem_job_t *jb = arg;
    const layer_t *L = jb->L;
    (void)scratch;
    const int64_t n = (int64_t)L->in_c * L->in_h * L->in_w, M = L->mult, M2 = L->mult2;
    const int S = (int)L->shift;
    const int64_t R = S > 0 ? (int64_t)1 << (S - 1) : 0;
    const int64_t e0 = chunk * ADD_CHUNK, e1 = e0 + ADD_CHUNK < n ? e0 + ADD_CHUNK : n;
    /* Reading both inputs before writing each group of elements: the output may be one of the inputs. */
    int64_t e = e0;
#if defined(__AVX2__)
    const __m256i m = _mm256_set1_epi64x(M), m2 = _mm256_set1_epi64x(M2), rnd = _mm256_set1_epi64x(R);
    const __m128i cnt = _mm_cvtsi32_si128(S);
    const __m256i lo = _mm256_set1_epi64x(L->relu ? 0 : -128), hi = _mm256_set1_epi64x(127);
    for (; e + 8 <= e1; e += 8) {
        int64_t a8, b8;
        memcpy(&a8, jb->in + e, 8);
        memcpy(&b8, jb->in2 + e, 8);
        const __m256i a = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(a8)), b = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(b8));
        const __m256i ev = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(a, m), _mm256_mul_epi32(b, m2)), rnd);
        const __m256i od = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), m),
                                                             _mm256_mul_epi32(_mm256_srli_epi64(b, 32), m2)), rnd);
        const __m256i y = shift_sat8(ev, od, cnt, lo, hi);             /* 8 int32 in -128..127 */
        const __m128i y16 = _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
        const int64_t y8 = _mm_cvtsi128_si64(_mm_packs_epi16(y16, y16));
        memcpy(jb->out + e, &y8, 8);
    }
#endif
    for (; e < e1; e++) jb->out[e] = finish((jb->in[e] * M + jb->in2[e] * M2 + R) >> S, L->relu);
}

static void run_add(ctx_t *c, uint8_t *arena, const layer_t *L) {
    elem_job_t jb = {L, (const int8_t *)arena + L->in_off, (const int8_t *)arena + L->in2_off,
                     (int8_t *)arena + L->out_off};
    const int64_t n = (int64_t)L->in_c * L->in_h * L->in_w;
    sps_parallel_for((n + ADD_CHUNK - 1) / ADD_CHUNK, threads_for(c->cfg, (uint64_t)n * 4), add_item, &jb);
}

/* ---------------------------------------------------------------- program */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int sps_golden_threads(void) {
    return sps_cpu_count();
}

/* Ideal MAC-active cycles of the array for a CONV: per row group, per tile of C pixels, I*K steps. */
static uint64_t ideal_mac_cycles(const layer_t *L, const sps_golden_config *cfg) {
    if (L->op != SPS_OP_CONV) return 0;
    uint64_t pix = (uint64_t)L->out_h * L->out_w, tiles = (pix + cfg->cols - 1) / cfg->cols;
    return layer_groups(L, (uint32_t)cfg->rows) * tiles * L->in_c * L->K;
}

int sps_golden_run(uint8_t *arena, uint64_t arena_size, uint64_t prog_offset, uint32_t num_layers,
                   const sps_golden_config *cfg, uint64_t *layer_ns, sps_golden_status *status) {
    return sps_golden_run_cached(arena, arena_size, prog_offset, num_layers, cfg, layer_ns, status, NULL);
}

int sps_golden_run_cached(uint8_t *arena, uint64_t arena_size, uint64_t prog_offset, uint32_t num_layers,
                          const sps_golden_config *cfg, uint64_t *layer_ns, sps_golden_status *status,
                          sps_golden_cache *cache) {
    ctx_t c = {cfg, arena_size, status, -1, NULL};
    status->error = 0;
    status->layer = -1;
    status->message[0] = 0;
    if (cfg->rows < 1 || cfg->cols < 1)
        return fail(&c, SPS_ERR_BAD_SHAPE, "hardware configuration with %d rows, %d cols", cfg->rows, cfg->cols);
    if (cfg->stats_enable && (cfg->stats_offset > arena_size ||
                              (uint64_t)num_layers * SPS_STATS_RECORD_BYTES > arena_size - cfg->stats_offset))
        return fail(&c, SPS_ERR_AXI_ERROR, "statistics of %u layers at offset %llu lie outside the arena of %llu "
                    "bytes", num_layers, (unsigned long long)cfg->stats_offset, (unsigned long long)arena_size);
    layer_t prev;                     /* the layer that ran last: a resident layer reads what it kept */
    if (cfg->resume) {
        if (prog_offset < SPS_DESC_BYTES || prog_offset > arena_size)
            return fail(&c, SPS_ERR_AXI_ERROR, "resumed run: the descriptor before offset %llu lies outside the "
                        "arena of %llu bytes", (unsigned long long)prog_offset, (unsigned long long)arena_size);
        decode(arena + prog_offset - SPS_DESC_BYTES, &prev);
        c.prev = &prev;
    }
    for (uint32_t j = 0; j < num_layers; j++) {
        c.layer = (int)j;
        uint64_t off = prog_offset + (uint64_t)j * SPS_DESC_BYTES;
        if (prog_offset > arena_size || (uint64_t)(j + 1) * SPS_DESC_BYTES > arena_size - prog_offset)
            return fail(&c, SPS_ERR_AXI_ERROR, "descriptor at offset %llu lies outside the arena of %llu bytes",
                        (unsigned long long)off, (unsigned long long)arena_size);
        layer_t L;
        decode(arena + off, &L);
        uint64_t t0 = now_ns();
        int e = check_layer(&c, &L);
        if (e) return e;
        if (L.op == SPS_OP_CONV) {
            if ((e = run_conv(&c, arena, &L, cache))) return e;
        } else if (L.op == SPS_OP_ADD) {
            run_add(&c, arena, &L);
        } else {
            run_pool(&c, arena, &L);
        }
        uint64_t dt = now_ns() - t0;
        prev = L;
        c.prev = &prev;
        if (layer_ns) layer_ns[j] = dt;
        if (cfg->stats_enable) {
            uint8_t *rec = arena + cfg->stats_offset + (uint64_t)j * SPS_STATS_RECORD_BYTES;
            uint64_t mc = ideal_mac_cycles(&L, cfg);
            memset(rec, 0, SPS_STATS_RECORD_BYTES);
            wr32(rec + 4 * SPS_STATS_CYCLES_WORD, dt > 0xffffffffull ? 0xffffffffu : (uint32_t)dt);  /* ns */
            wr32(rec + 4 * SPS_STATS_MAC_CYCLES_WORD, mc > 0xffffffffull ? 0xffffffffu : (uint32_t)mc);
        }
    }
    c.layer = -1;
    return 0;
}
