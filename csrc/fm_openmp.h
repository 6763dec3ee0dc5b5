/* OpenMP queries that also compile without OpenMP (the serial build), and the flag the engine's
 * threads share to abandon a mini-batch on Ctrl-C (written by one thread, read by all). */
#ifndef FASTMLP_OPENMP_H
#define FASTMLP_OPENMP_H
#ifdef _OPENMP
#include <omp.h>
#define FASTMLP_HAVE_OPENMP 1
#else
#include <time.h>
#define FASTMLP_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
/* Serial build: processor time, which runs as wall time does while the one thread computes. */
static inline double omp_get_wtime(void) { return (double)clock() / CLOCKS_PER_SEC; }
#endif

/* csrc/placement.c: the CPU the calling thread runs on (-1 where unknown), and a worker's move
 * off the caller's CPU when the kernel put both on one. */
int fm_current_cpu(void);
void fm_leave_cpu(int cpu);

#if defined(__GNUC__) || defined(__clang__)
static inline int fm_load_flag(const int *flag) { return __atomic_load_n(flag, __ATOMIC_RELAXED); }
static inline void fm_store_flag(int *flag, int value)
{
    __atomic_store_n(flag, value, __ATOMIC_RELAXED);
}
#else
static inline int fm_load_flag(const int *flag) { return *(const volatile int *)flag; }
static inline void fm_store_flag(int *flag, int value) { *(volatile int *)flag = value; }
#endif
#endif
