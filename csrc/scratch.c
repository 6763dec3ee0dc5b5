/* Scratch that a thread keeps between kernel calls, so that nothing is allocated inside an epoch.
 *
 * Design
 * ------
 * The project's rule (DESIGN.md, STYLE.md): the engine allocates per fit, never inside the epoch.
 * Two kernels need working memory whose size only they know, per call: csrc/rows_product.c's
 * AVX-512 product (a's rows in strips, a group of W's packed panels, a copy of crowded rows, the
 * live rows and panel offsets of the products that skip dead terms) and csrc/optimizers.c's
 * streamed step (the new parameters, written there before they are streamed over W). Each took
 * it from malloc and gave it back on every call: four blocks a product, several products and
 * steps a mini-batch on every thread.
 *
 * Passing buffers down from the engine would put every product's sizing rules (its blocks, its
 * groups, its crowding test) into the callers of ~40 entry points. Instead each thread keeps one
 * block per slot (one for the products, one for the steps: a thread never runs one inside the
 * other, but with a slot each neither could overwrite the other's block if it did) and grows it
 * when a call needs more: once a thread's blocks have grown to the largest call it runs (within
 * its first epoch on one thread), an epoch allocates nothing, as OpenBLAS's buffer pool serves
 * its kernels (driver/others/memory.c) without a malloc per call. A block lives as long as its
 * thread (the OpenMP workers: the process's life), and is freed at the thread's exit by a pthread
 * key's destructor: a user's own threads that predict leave nothing behind. It holds what the
 * largest call of the thread needed, the order of the per-thread activation buffers the engine
 * keeps for the fit (`wide`'s 1024-unit layers: 784 KB for the products, traced with gdb; a
 * streamed step's, the weight job's block of W).
 *
 * Bits: the same values go through the same buffers, only from another address; the blocks are
 * aligned to 64 bytes as the products' were. Each compiled module links its own copy of csrc/
 * (setup.py), so each module's threads keep their own blocks. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "fastmlp_kernels.h"
#include "fm_openmp.h"

enum { SCRATCH_GRAIN = 1 << 16 };  /* blocks grow by whole 64 KB: fewer regrowths */

/* Built with AddressSanitizer (tools/sanitize.sh), every call gets a block of exactly its size,
 * as from malloc before: a kept block larger than the call would hide an overrun into its rest.
 * (A product's parts share its one block, so ASan sees an overrun past the last part only; one
 * of a part into the next changes the values the tests compare.) */
#if defined(__SANITIZE_ADDRESS__)
#define SCRATCH_EXACT 1
#else
#define SCRATCH_EXACT 0
#endif

typedef struct {
    void *block[FM_SCRATCH_SLOTS];
    size_t bytes[FM_SCRATCH_SLOTS];
} scratch_set;

static __thread scratch_set *mine;  /* this thread's blocks (NULL until its first call) */
static pthread_key_t scratch_key;   /* frees a thread's blocks when it exits */
static pthread_once_t scratch_key_once = PTHREAD_ONCE_INIT;
static int scratch_key_made;
static long long scratch_allocations;  /* blocks allocated, by every thread (tests) */
static long long scratch_sets;         /* threads that hold blocks now (tests) */
static int scratch_poison;             /* tests: every block handed out filled with NaNs */

static void scratch_release(void *held)  /* (run by the exiting thread itself) */
{
    scratch_set *set = (scratch_set *) held;
    for (int slot = 0; slot < FM_SCRATCH_SLOTS; slot++)
        free(set->block[slot]);
    free(set);
    mine = NULL;  /* (a later call in the thread's exit would start afresh) */
    __atomic_sub_fetch(&scratch_sets, 1, __ATOMIC_RELAXED);
}

static void scratch_make_key(void)
{
    scratch_key_made = pthread_key_create(&scratch_key, scratch_release) == 0;
}

void *fm_scratch(int slot, size_t bytes)
{
    scratch_set *set = mine;
    if (slot < 0 || slot >= FM_SCRATCH_SLOTS)
        return NULL;
    if (bytes == 0)
        bytes = 1;
    if (set == NULL) {
        pthread_once(&scratch_key_once, scratch_make_key);
        if (!scratch_key_made || (set = calloc(1, sizeof *set)) == NULL)
            return NULL;
        if (pthread_setspecific(scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
        mine = set;
        __atomic_add_fetch(&scratch_sets, 1, __ATOMIC_RELAXED);
    }
    if (set->bytes[slot] < bytes || set->block[slot] == NULL
        || (SCRATCH_EXACT && set->bytes[slot] != bytes)) {
        const size_t grown = SCRATCH_EXACT ? bytes
            : (bytes + SCRATCH_GRAIN - 1) / SCRATCH_GRAIN * SCRATCH_GRAIN;
        void *block = NULL;
        if (grown < bytes || posix_memalign(&block, 64, grown) != 0)
            return NULL;  /* (the old block stays for calls that fit it) */
        free(set->block[slot]);
        set->block[slot] = block;
        set->bytes[slot] = grown;
        __atomic_add_fetch(&scratch_allocations, 1, __ATOMIC_RELAXED);
    }
    if (fm_load_flag(&scratch_poison))
        memset(set->block[slot], 0xff, bytes);  /* all ones: a NaN in float32 and float64 */
    return set->block[slot];
}

/* Tests: whether every block handed out from now on is first filled with NaNs, so that a kernel
 * that read a part of its scratch it had not written in the same call (what a fresh malloc's
 * zeroed pages hid, and a kept block's last call's values would not) would give NaNs. */
void fm_scratch_set_poison(int on)
{
    fm_store_flag(&scratch_poison, on != 0);
}

long long fm_scratch_allocations(void)
{
    return __atomic_load_n(&scratch_allocations, __ATOMIC_RELAXED);
}

long long fm_scratch_threads(void)
{
    return __atomic_load_n(&scratch_sets, __ATOMIC_RELAXED);
}

int fm_scratch_kept(void)
{
    return !SCRATCH_EXACT;
}
