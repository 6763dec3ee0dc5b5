/* OpenMP queries that also compile without OpenMP (the serial build). */
#ifndef FASTMLP_OPENMP_H
#define FASTMLP_OPENMP_H
#ifdef _OPENMP
#include <omp.h>
#define FASTMLP_HAVE_OPENMP 1
#else
#define FASTMLP_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
#endif
#endif
