# Threading helpers from csrc/fm_openmp.h: OpenMP's queries (stubs in a serial build), the flag
# the threads share to abandon a batch, the caller's floating-point modes that a worker takes
# for its jobs, and the worker placement of csrc/placement.c.
cdef extern from "fm_openmp.h" nogil:
    int omp_get_max_threads()
    double omp_get_wtime()
    int fm_load_flag(const int *flag)
    void fm_store_flag(int *flag, int value)
    int fm_current_cpu()
    void fm_leave_cpu(int cpu)
    unsigned int fm_fp_modes()
    unsigned int fm_fp_take(unsigned int modes)
    void fm_fp_give_back(unsigned int own, unsigned int modes)
    double fm_spare_seconds()
    int fm_take_next(int *counter)
    void fm_count_done(int *count)
    int fm_wait_count(const int *count, int target, const int *stop)
    int FASTMLP_HAVE_OPENMP
    int FM_POOL_MAX_JOBS
    void fm_publish_jobs(long long *word, unsigned int generation, int jobs)
    int fm_claim(long long *word, unsigned int generation)
    int fm_claim_last(long long *word, unsigned int generation)
    int fm_wait_call(int *value, int seen, int *sleepers, const int *away, int keep)
    void fm_call(int *value, int set, int *sleepers)
    void fm_wait_done(int *done, int target, int *sleepers)
    void fm_done(int *done, int *sleepers)
    ctypedef struct fm_slice:
        double wall, cpu, start, job, tick
    double FM_SLICE_GAP, FM_SLICE_END, FM_SLICE_LONG
    int fm_helper_slices, fm_helper_yields
    int fm_slice_look(fm_slice *s, double wall, double cpu, int ran)
    void fm_helper_slice(int ran)
    int fm_split_mode
    int fm_split_begin(double now)
    void fm_split_end(double began, double now, double wait)
    ctypedef void (*fm_split_part_fn)(void *part) noexcept nogil
    double fm_split_run(fm_split_part_fn fn, void *mine, void *theirs)
    void fm_split_helper_stall(int stall)
