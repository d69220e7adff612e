/* Golden model of the SPS core: executes a layer program on an arena exactly as docs/arithmetic.md says.
 * build.py hands this header to cffi as it is (minus preprocessor lines): keep it to plain declarations. */
#ifndef SPS_GOLDEN_H
#define SPS_GOLDEN_H

#include <stdint.h>

typedef struct {
    int32_t rows;              /* R: filters per row group (layout of the packed weights) */
    int32_t cols;              /* C: output pixels per tile (only used for the ideal MAC-cycle statistic) */
    int32_t max_patterns;      /* largest P accepted */
    uint32_t act_buf_bytes;    /* input feature map limit (ACT_BUF_OVERFLOW); 0 = do not check */
    uint32_t weight_buf_bytes; /* row-group limit (WEIGHT_BUF_OVERFLOW); 0 = do not check */
    int32_t beat_bytes;        /* AXI data bytes: how an input lands in the activation buffer (hw/bands.py) */
    int32_t num_threads;       /* 0 = every CPU this process may run on */
    int32_t stats_enable;      /* write one 16-byte record per layer at stats_offset */
    uint64_t stats_offset;
    int32_t resume;            /* 1: the descriptor just before prog_offset ran last (a caller running a program one
                                  layer at a time: the virtual board), the layer a resident first layer must chain
                                  on (hw/residency.py); 0: the first layer has none before it */
} sps_golden_config;

typedef struct {
    int32_t error;             /* SPS_ERR_* of sps_hw.h, 0 when every layer ran */
    int32_t layer;             /* index of the failing layer, -1 if none */
    char message[256];         /* what is wrong, with the numbers */
} sps_golden_status;

/* Run `num_layers` descriptors starting at byte `prog_offset` of the arena. Each descriptor is checked just
 * before it runs (as the hardware does); the first bad one stops the run with status->error set and nothing
 * written for it. Never reads or writes outside [arena, arena + arena_size). `layer_ns` (may be NULL) receives
 * each layer's wall time in nanoseconds. Returns status->error. */
int sps_golden_run(uint8_t *arena, uint64_t arena_size, uint64_t prog_offset, uint32_t num_layers,
                   const sps_golden_config *cfg, uint64_t *layer_ns, sps_golden_status *status);

/* Prepared CONV weights (int16, reordered) kept between runs of the same program. An entry is reused only when
 * its layer's descriptor and all its weight and parameter bytes equal the arena's (checked with memcmp each
 * run), so a cache can never make a result differ from an uncached run. One cache per arena/program. */
typedef struct sps_golden_cache sps_golden_cache;
sps_golden_cache *sps_golden_cache_new(void);
void sps_golden_cache_free(sps_golden_cache *cache);
int sps_golden_run_cached(uint8_t *arena, uint64_t arena_size, uint64_t prog_offset, uint32_t num_layers,
                          const sps_golden_config *cfg, uint64_t *layer_ns, sps_golden_status *status,
                          sps_golden_cache *cache);

/* Threads a layer uses by default: the CPUs this process may run on. */
int sps_golden_threads(void);

#endif
