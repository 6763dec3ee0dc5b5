"""A model of the engine's mini-batch schedule on many cores (issue 12): how many independent
jobs each pass offers, how long the longest one is, and what that allows on P = 1..64 cores.

Design
------
The engine (fastmlp/_engine/_schedule.pxd) runs a mini-batch as two passes with a barrier after
each: row blocks (forward through every layer, the output delta, every hidden delta) under
OpenMP's schedule='static', then weight jobs (a block of one W's rows: its gradient GEMM over
the whole batch, then the element-wise finish and optimizer step; or one bias) under
schedule='dynamic', in job order. Block boundaries depend on the shapes only, never on the
thread count -- that is what makes fits bitwise equal on any number of threads -- so a schedule
that offers two row blocks leaves fourteen of sixteen cores idle in the row pass, whatever the
machine. This 2-core machine cannot run sixteen threads at speed, so the passes are simulated:

- Rules. The block rules (n_blocks, block_start, MIN_ROWS, MIN_WEIGHT_ROWS, MIN_SPLIT,
  MAX_BLOCKS, the weight jobs that Trainer.__init__ builds) are mirrored here; the engine exposes
  only the weight jobs (Trainer(...).jobs) and keeps the constants in a .pxd, so
  benchmarks/tests/test_schedule_model.py pins this mirror to both: a change in the engine that
  is not made here fails that test. A candidate schedule is the same rules with other constants,
  plus an optional cut of every weight job over W's columns too (``weight_cols``), of every
  layer's output into column tiles (``row_cols``), or a per-layer rule (``tile_pieces``: a
  product cut by its own m, n, k, ``--layers`` searches them): every boundary stays a function
  of the shapes. ``class_rules(C)`` is the engine's own rule on a machine of C CPUs (its
  schedule class, fastmlp._runtime.schedule_cpus): C row blocks and C blocks of each W where
  the shapes allow; the table after the verdict shows each class on P = C cores.
- Costs. Each job is a list of GEMMs (m, n, k, which of the engine's three products, and the
  size of the product a tile is cut from) and element-wise sweeps (how many elements, which
  kind). A Calibration turns them into seconds: every distinct GEMM shape is timed on this
  machine through scipy's OpenBLAS (the library the engine calls; through ctypes, as
  scipy.linalg.blas would copy a strided operand), one BLAS thread, with the operands transposed
  and the leading dimensions the engine passes; the element-wise kinds are timed through the
  engine's own kernels (fastmlp._engine._testing). A smaller block is therefore charged what it
  really costs here (each GEMM packs its other operand again; under OpenBLAS's small-matrix
  threshold, M N K <= 1e6, it packs nothing but reads its operands at their stride), not its
  share of the flops. (Timed as contiguous matrices, tiles looked 9-25% cheaper than whole
  products on 2 cores; at their real stride they are 8-200% dearer: a 16 x 64 x 784 tile of a
  1024-wide W ran at 49 GFLOP/s, a contiguous one at 158.) ``FlopCalibration`` (a fixed
  rate) is the flops-only model, for the tests and for ``--flops``.
- Simulation. The row pass: libgomp's static schedule (P contiguous chunks, the first n % P one
  job longer). The weight pass: dynamic with chunk 1, jobs in order, each to the thread that
  frees up first. With tiles, the row pass runs whole row block by row block while there are
  no more threads than row blocks, else phase by phase (row_phases: a layer cut into columns
  is a phase of its own, consecutive layers that are not share one), a dynamic pass over every
  row block's tiles each, a barrier between phases. Plus a barrier per pass, charged
  BARRIER_US x log2(P) (an assumption: a tree barrier of a few microseconds; it cannot be
  measured at 16 threads on 2 cores). T(1) is the
  sum of every job; speed-up T(1)/T(P); busy = work / (P x T(P)); the critical path is the
  longest row job plus the longest weight job (a batch can never be shorter).
- Not modelled: memory bandwidth shared by many cores, the OS taking a core away, the last
  partial batch of an epoch, the serial sum of the rows' losses (n additions).

Usage: python benchmarks/schedule_model.py [--search] [--layers] [--flops] [--long]
           [--workloads mnist,wide] [--json out.json] [--calibration saved.json];
       OMP_NUM_THREADS=1 python benchmarks/schedule_model.py --engine
"""
import argparse
import heapq
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp.bench.workloads import FIT_WORKLOADS, N_CLASSES

CORES = (1, 2, 4, 8, 16, 32, 64)
BARRIER_US = 1.0  # x log2(P) per pass: an assumed tree barrier, see Design


# ---------------------------------------------------------------------------------------------
# The engine's block rules, mirrored (fastmlp/_engine/_schedule.pxd; the weight jobs as
# fastmlp/_engine/_trainer.pyx's Trainer.__init__ builds them).

MB = 1_000_000
MAX_PIECES = 64  # the most tiles one product (of one row block, or one W) is cut into
SMALL_MNK = 1_000_000  # OpenBLAS's small-matrix path (no packing) takes M N K <= this (SkylakeX)


def _pow2_pieces(width, least):
    """Powers of two p (1, 2, 4, ...) while width // p >= least (at most MAX_PIECES)."""
    p = 1
    while p <= MAX_PIECES and (p == 1 or width // p >= least):
        yield p
        p *= 2


def packed_pieces(m, n, k, floor, min_cols, min_rows, want):
    """`want` tiles or fewer (row pieces x column pieces, powers of two, rows >= min_rows,
    columns >= min_cols) that each keep M N K > floor (OpenBLAS's packed path): halving the
    longer side of the tile each time, as square as they come."""
    r = c = 1
    while r * c < want:
        wider = (r, 2 * c) if n // (2 * c) >= min_cols else None
        taller = (2 * r, c) if m // (2 * r) >= min_rows else None
        options = [o for o in ((wider, taller) if n // c >= m // r else (taller, wider))
                   if o and (m // o[0]) * (n // o[1]) * k > floor]
        if not options:
            break
        r, c = options[0]
    return r, c


def tile_pieces(m, n, k, mnk, min_cols, min_rows, big=0, big_cols=128, cols=True):
    """A per-layer rule: the product m x n x k (out = m x n) cut into (row pieces, column
    pieces), shapes only. Whole if m n k <= mnk (0: never cut). From m n k >= `big` up (0:
    never), column tiles of >= big_cols, at most 16 (a large product is efficient in large
    tiles). Else the fewest tiles (row pieces of >= min_rows rows times column tiles of >=
    min_cols, each a power of two; cols False: no column tiles) that bring a tile to <= mnk,
    the widest of those: under OpenBLAS's small-matrix threshold a contiguous tile skipped
    packing and ran at 140-200 GFLOP/s here (a strided one: see Design)."""
    if not mnk or m * n * k <= mnk:
        return 1, 1
    if big and m * n * k >= big:
        c = 1
        while c < 16 and n // (2 * c) >= big_cols:
            c *= 2
        return 1, c
    fits = [(r, c) for r in _pow2_pieces(m, min_rows)
            for c in (_pow2_pieces(n, min_cols) if cols else (1,))
            if -(-m // r) * -(-n // c) * k <= mnk]
    if fits:  # the fewest tiles; of those, the widest (OpenBLAS's M is the engine's columns)
        return min(fits, key=lambda rc: (rc[0] * rc[1], rc[1]))
    r = max(_pow2_pieces(m, min_rows))  # none fits: the finest allowed
    return r, (max(_pow2_pieces(n, min_cols)) if cols else 1)


@dataclass(frozen=True)
class Rules:
    """A schedule's constants. weight_cols > 0 also cuts each W's columns into
    n_blocks(cols, weight_cols) blocks; row_cols > 0 cuts each layer's output in a row block
    into column tiles the same way (the engine does neither: 0). Tiles are run whole row block
    by whole row block (today's rows_job, no more barriers) while there are no more threads than
    row blocks, else stage by stage (each layer a dynamic pass over its tiles, a barrier after
    each): the tiles, so every BLAS call, are the same either way.

    Per-layer rules (tile_mnk > 0 for the row pass, weight_mnk > 0 for the weight pass) replace
    row_cols and weight_cols: each product is cut by tile_pieces (row blocks of >= tile_rows,
    column tiles of >= tile_cols; W's rows in blocks of >= min_weight_rows, columns of >=
    weight_tile_cols, or none if 0), so a small layer stays whole and a large one is cut, by
    its m, n, k only.

    packed_tiles: NOT shapes-only. The row pass runs today's whole row blocks while there are
    no more threads than row blocks, else about two tiles per thread (packed_pieces), each
    keeping M N K > tile_mnk
    (OpenBLAS's packed path, whose sums over k do not depend on how M and N are cut: see
    RESULTS.md) -- the same bits only as long as OpenBLAS blocks k the same way whatever M and
    N, which is its behaviour, not its contract."""
    name: str
    min_rows: int = 256
    min_weight_rows: int = 256
    min_split: int = 16
    max_blocks: int = 16
    weight_cols: int = 0
    row_cols: int = 0
    tile_mnk: int = 0
    weight_mnk: int = 0
    big_mnk: int = 0
    tile_cols: int = 32
    tile_rows: int = 16
    weight_tile_cols: int = 32
    packed_tiles: bool = False
    cpus: int = 2  # the machine's schedule class (the engine's schedule_cpus): see class_rules


TODAY = Rules("today")  # the engine's constants, as of this file (the test pins them)
WEIGHT_SPLIT = 64  # _schedule.pxd: the fewest of W's rows in a block cut for the class


def class_rules(cpus):
    """The engine's own rules on a machine of `cpus` CPUs (its schedule class, 1-16): at least
    `cpus` row blocks of >= MIN_SPLIT rows and `cpus` blocks of each W's rows of >= WEIGHT_SPLIT,
    where the shapes allow, never fewer than TODAY's constants give. (A batch that no machine
    gives two threads, `small`'s or partial_fit's, is one block whatever the class: the engine's
    class 1, fastmlp._runtime.batch_schedule; the rows of `small` model rules it never runs.)"""
    return TODAY if cpus == 2 else Rules(f"class {cpus}", cpus=cpus)


def n_blocks(n, min_rows, rules=TODAY, split=None):
    """How many blocks n rows are cut into: _schedule.pxd's n_blocks (want: rules.cpus; split:
    the fewest rows of a block cut for them, MIN_SPLIT unless given; class 1: one block)."""
    if rules.cpus == 1:
        return 1
    k = n // min_rows
    if k < rules.cpus:
        k = min(rules.cpus, n // (rules.min_split if split is None else split))
    k = min(k, rules.max_blocks)
    if k < 2:
        return 2 if n >= rules.min_split else 1
    return k - (k % 2)


def block_start(n, blocks, b):
    return (n * b) // blocks


def row_blocks(batch, rules=TODAY):
    """The row pass's blocks of a batch of `batch` rows: (r0, r1) each."""
    blocks = n_blocks(batch, rules.min_rows, rules)
    return [(block_start(batch, blocks, b), block_start(batch, blocks, b + 1))
            for b in range(blocks)]


def weight_jobs(units, rules=TODAY, batch=0):
    """The weight pass's jobs in order: (layer, lo, hi, c0, c1), W's rows lo..hi and columns
    c0..c1 (hi = -1: the layer's bias). With weight_cols = 0, (l, lo, hi) are Trainer.jobs.
    A per-layer rule (weight_mnk) needs the batch's size: the GEMM's k."""
    jobs = []
    for l in range(len(units) - 1):
        n_in, n_out = units[l], units[l + 1]
        blocks = n_blocks(n_in, rules.min_weight_rows, rules, WEIGHT_SPLIT)
        col_blocks = n_blocks(n_out, rules.weight_cols, rules) if rules.weight_cols else 1
        if rules.weight_mnk:
            blocks, col_blocks = tile_pieces(n_in, n_out, batch, rules.weight_mnk,
                                             rules.weight_tile_cols, rules.min_weight_rows,
                                             rules.big_mnk, cols=rules.weight_tile_cols > 0)
        for b in range(blocks):
            for c in range(col_blocks):
                jobs.append((l, block_start(n_in, blocks, b), block_start(n_in, blocks, b + 1),
                             block_start(n_out, col_blocks, c),
                             block_start(n_out, col_blocks, c + 1)))
        jobs.append((l, 0, -1, 0, n_out))
    return jobs


# ---------------------------------------------------------------------------------------------
# What each job does: GEMMs ("gemm", product, m, n, k, full_m, full_n: a tile of a product whose
# operands are full_m rows and full_n columns wide, which sets the leading dimensions the engine
# passes) and element-wise sweeps ("elem", kind,
# count). Products as the engine names them (row-major): forward out(m x n) = a(m x k) W(k x n);
# backward_input d_in(m x n) = delta(m x k) W^T; backward_weights dW(m x n) = a^T(m x k)
# delta(k x n), k being the batch.

def row_stages(units, m, rules):
    """What rows_job does for a block of m rows, stage by stage (each layer forward, then each
    hidden delta), each stage cut into column tiles (rules.row_cols; 0: one tile, today's)."""
    L = len(units) - 1

    def cut(width):
        blocks = n_blocks(width, rules.row_cols, rules) if rules.row_cols else 1
        return [block_start(width, blocks, c + 1) - block_start(width, blocks, c)
                for c in range(blocks)]
    stages = []
    for l in range(L):
        tiles = []
        for w in cut(units[l + 1]):
            tile = [("elem", "row", m * units[0] * w / units[1])] if l == 0 else []  # gather
            tile += [("gemm", "forward", m, w, units[l], m, units[l + 1]),
                     ("elem", "row", m * w)]  # bias + activation (softmax + loss)
            tiles.append(tile)
        stages.append(tiles)
    for l in range(L - 1, 0, -1):
        stages.append([[("gemm", "backward_input", m, w, units[l + 1], m, units[l]),
                        ("elem", "row", m * w)]  # times the activation's derivative
                       for w in cut(units[l])])
    return stages


def _cuts(n, pieces):
    return [block_start(n, pieces, p + 1) - block_start(n, pieces, p) for p in range(pieces)]


def layer_stages(units, m, rules, want=0):
    """The per-layer rule's stages for a block of m rows: (row pieces, column pieces, kind,
    layer) per stage in order: the gather of X's rows (a stage of its own only where the first
    layer is cut into columns: every column tile reads every input feature), each layer
    forward (the output layer never cut into columns: softmax and the loss need whole rows),
    then each hidden delta (layer l's delta times W^l^T)."""
    L = len(units) - 1

    def cut(m, n, k):
        if rules.packed_tiles:
            return packed_pieces(m, n, k, rules.tile_mnk, rules.tile_cols, rules.tile_rows,
                                 want)
        return tile_pieces(m, n, k, rules.tile_mnk, rules.tile_cols, rules.tile_rows,
                           rules.big_mnk)
    stages = []
    for l in range(L):
        r, c = cut(m, units[l + 1], units[l])
        if l == L - 1:  # whole rows only: as many row pieces as the rule wanted pieces
            r, c = r * c, 1
            while r > 1 and m // r < rules.tile_rows:
                r //= 2
        if l == 0 and c > 1:
            stages.append((r * c if m // (r * c) >= rules.tile_rows else r, 1, "gather", 0))
        stages.append((r, c, "forward", l))
    for l in range(L - 1, 0, -1):
        r, c = cut(m, units[l], units[l + 1])
        stages.append((r, c, "backward", l))
    return stages


def row_phases(units, m, rules, want=0):
    """The row pass for a block of m rows as phases (a barrier between two, when run stage by
    stage), each a list of tiles, each tile a list of pieces. Consecutive stages not cut into
    columns share a phase (rows flow through them, no barrier), cut into the most row pieces
    of any of them; a stage cut into columns is a phase of its own. Today: one phase, one tile."""
    if not rules.tile_mnk:
        return row_stages(units, m, rules)

    def pieces(kind, l, rows, c, cols):
        if kind == "gather":
            return [("elem", "row", rows * units[0])]
        if kind == "forward":
            out = [] if l or c > 1 else [("elem", "row", rows * units[0])]  # gather, in place
            return out + [("gemm", "forward", rows, cols, units[l], rows, units[l + 1]),
                          ("elem", "row", rows * cols)]
        return [("gemm", "backward_input", rows, cols, units[l + 1], rows, units[l]),
                ("elem", "row", rows * cols)]
    groups = []
    for stage in layer_stages(units, m, rules, want):
        if stage[1] == 1 and groups and groups[-1][-1][1] == 1:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    phases = []
    for group in groups:
        if len(group) == 1:
            r, c, kind, l = group[0]
            n = units[l + 1] if kind == "forward" else units[l] if kind == "backward" else 1
            phases.append([pieces(kind, l, rows, c, cols) for rows in _cuts(m, r)
                           for cols in (_cuts(n, c) if kind != "gather" else [0])])
            continue
        r = max(s[0] for s in group)
        phases.append([[p for _, _, kind, l in group
                        for p in pieces(kind, l, rows, 1,
                                        units[l + 1] if kind == "forward" else units[l])]
                       for rows in _cuts(m, r)])
    return phases


def weight_job_pieces(units, batch, job):
    l, lo, hi, c0, c1 = job
    if hi < 0:  # the bias: the sum of the batch's deltas, then the step
        return [("elem", "row", batch * units[l + 1]), ("elem", "step", units[l + 1])]
    return [("gemm", "backward_weights", hi - lo, c1 - c0, batch, units[l], units[l + 1]),
            ("elem", "step", (hi - lo) * (c1 - c0))]


def gemm_flops(m, n, k):
    return 2 * m * n * k


# ---------------------------------------------------------------------------------------------
# Costs in seconds.

class FlopCalibration:
    """Every GEMM at one rate, every element at one cost: the flops-only model."""
    def __init__(self, gflops=50.0, ns_per_element=0.5):
        self.gflops, self.ns_per_element = gflops, ns_per_element

    def cost(self, piece, dtype):
        if piece[0] == "gemm":
            return gemm_flops(*piece[2:5]) / (self.gflops * 1e9)
        return piece[2] * self.ns_per_element * 1e-9

    def refine(self, rounds):
        pass


def _openblas():
    """scipy's OpenBLAS, the library the engine calls through scipy.linalg.cython_blas."""
    import ctypes
    import glob

    import scipy
    libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs",
                                  "libscipy_openblas*.so*"))
    if not libs:
        raise RuntimeError("scipy's bundled OpenBLAS not found (scipy.libs/libscipy_openblas)")
    return ctypes.CDLL(libs[0])


def _best_seconds(call, min_seconds=5e-3, samples=3):
    """The least over `samples` of the mean CPU time of one call, each sample >= min_seconds.
    The calling thread's CPU time, not the wall clock, and the least, not the median: this is a
    cost model's constant, what the shape costs on a core of its own, and the five other
    sessions on this machine only ever add to the wall clock (BLAS runs on this thread)."""
    call()
    repeat = 1
    while True:
        t0 = time.thread_time()
        for _ in range(repeat):
            call()
        t = time.thread_time() - t0
        if t >= min_seconds:
            break
        repeat *= 2
    best = t / repeat
    for _ in range(samples - 1):
        t0 = time.thread_time()
        for _ in range(repeat):
            call()
        best = min(best, (time.thread_time() - t0) / repeat)
    return best


class MeasuredCalibration:
    """Each distinct GEMM shape timed through scipy's BLAS on one thread (the column-major call
    the engine's row-major product becomes), less the cost of a Python call; the element-wise
    kinds timed through the engine's kernels. Call it inside threadpool_limits(1). Shapes are
    timed when first asked for; refine() times them all again, round after round, keeping the
    least, so that a burst of load on the machine cannot favour the shapes timed after it."""

    def __init__(self):
        self.gemm_seconds, self.elem_ns = {}, {}
        self._overhead = {}

    @classmethod
    def load(cls, path):
        """The timings a run saved with --json (shapes it did not time are timed when asked)."""
        with open(path) as f:
            saved = json.load(f)
        self = cls()
        for key, v in saved["gemm_seconds"].items():
            product, *dims, dtype = key.split("|")
            if len(dims) == 5:  # (an older run saved m, n, k only: timed again)
                self.gemm_seconds[(product, *map(int, dims), dtype)] = v
        self.elem_ns = {tuple(k.split("|")): v for k, v in saved.get("elem_ns", {}).items()}
        self._overhead = dict(saved.get("overhead", {}))
        return self

    def _gemm_call(self, product, m, n, k, dtype, full_m=None, full_n=None):
        """One call of the engine's product as it issues it: the column-major Fortran gemm of
        scipy's OpenBLAS (through ctypes: scipy.linalg.blas would copy a strided operand), on
        a tile at offset 0 of operands full_m x full_n wide (the leading dimensions a tile of a
        larger product has: its rows of W or of the gradient are far apart)."""
        import ctypes
        full_m, full_n = full_m or m, full_n or n
        lib = _openblas()
        gemm = lib.scipy_sgemm_ if dtype == "float32" else lib.scipy_dgemm_
        ctype = ctypes.c_float if dtype == "float32" else ctypes.c_double
        rng = np.random.default_rng(0)
        keep = []

        def buf(size):
            a = rng.standard_normal(size).astype(dtype)
            keep.append(a)
            return a.ctypes.data_as(ctypes.c_void_p)
        # _blas.pxd: row-major C(m x n) = op(A) op(B) is gemm(tb, ta, n, m, k, B, ldb, A, lda).
        if product == "forward":  # a (m x k, ld k) W (k x full_n): gemm(N, N, n, m, k)
            ta, tb, A, lda = b"N", b"N", buf(k * full_n), full_n
            B, ldb = buf(m * k), k
        elif product == "backward_input":  # delta (m x k) W[c0:c1]^T (rows of k): gemm(T, N)
            ta, tb, A, lda = b"T", b"N", buf(full_n * k), k
            B, ldb = buf(m * k), k
        else:  # backward_weights: a[:, lo:hi]^T (ld full_m) delta[:, c0:c1] (ld full_n)
            ta, tb, A, lda = b"N", b"T", buf(k * full_n), full_n
            B, ldb = buf(k * full_m), full_m
        C, ldc = buf(full_m * full_n if product == "backward_weights" else m * full_n), full_n
        ints = [ctypes.c_int(v) for v in (n, m, k, lda, ldb, ldc)]
        one, zero = ctype(1.0), ctype(0.0)
        args = (ctypes.c_char_p(ta), ctypes.c_char_p(tb), *(ctypes.byref(v) for v in ints[:3]),
                ctypes.byref(one), A, ctypes.byref(ints[3]), B, ctypes.byref(ints[4]),
                ctypes.byref(zero), C, ctypes.byref(ints[5]))
        return lambda: gemm(*args)

    def _python_overhead(self, dtype):
        if dtype not in self._overhead:
            self._overhead[dtype] = _best_seconds(self._gemm_call("forward", 1, 1, 1, dtype))
        return self._overhead[dtype]

    def _elem(self, kind, dtype):
        if (kind, dtype) not in self.elem_ns:
            from fastmlp._engine import _testing, vocabulary
            rows, cols = 256, 1024
            count = rows * cols
            if kind == "row":
                a = np.ones((rows, cols), dtype=dtype)
                bias = np.zeros(cols, dtype=dtype)
                relu = vocabulary.HIDDEN_ACTIVATIONS["relu"]
                seconds = _best_seconds(lambda: _testing.kernel_bias_activation(a, bias, relu))
            else:  # the gradient finished ((g + alpha W) / batch), then Adam's step
                p, g, m1, m2 = (np.full(count, 0.5, dtype=dtype) for _ in range(4))

                def step():
                    _testing.kernel_finalize_gradient(g, p, 1e-4, 256.0)
                    _testing.kernel_adam_step(p, g, m1, m2, 1e-3, 0.9, 0.999, 1e-8)
                seconds = _best_seconds(step)
            self.elem_ns[kind, dtype] = seconds / count * 1e9
        return self.elem_ns[kind, dtype]

    def _time_gemm(self, key):
        product, m, n, k, full_m, full_n, dtype = key
        seconds = _best_seconds(self._gemm_call(product, m, n, k, dtype, full_m, full_n))
        # Never faster than the shape's flops at 200 GFLOP/s (the overhead is noisy).
        return max(seconds - self._python_overhead(dtype), gemm_flops(m, n, k) / 200e9)

    def cost(self, piece, dtype):
        if piece[0] == "elem":
            return piece[2] * self._elem(piece[1], dtype) * 1e-9
        key = (piece[1], *piece[2:], dtype) if len(piece) == 7 else (
            piece[1], *piece[2:5], *piece[2:4], dtype)
        if key not in self.gemm_seconds:
            self.gemm_seconds[key] = self._time_gemm(key)
        return self.gemm_seconds[key]

    def refine(self, rounds):
        for _ in range(rounds):
            for dtype in list(self._overhead):
                self._overhead[dtype] = min(self._overhead[dtype], _best_seconds(
                    self._gemm_call("forward", 1, 1, 1, dtype)))
            for key in self.gemm_seconds:
                self.gemm_seconds[key] = min(self.gemm_seconds[key], self._time_gemm(key))


# ---------------------------------------------------------------------------------------------
# The simulation.

def static_pass(costs, P):
    """libgomp's schedule(static): thread t takes a contiguous chunk of n // P jobs, the first
    n % P threads one more. Returns the slowest thread's time."""
    n, start, longest = len(costs), 0, 0.0
    for t in range(P):
        size = n // P + (1 if t < n % P else 0)
        longest = max(longest, sum(costs[start:start + size]))
        start += size
    return longest


def dynamic_pass(costs, P):
    """schedule(dynamic) with chunk 1: jobs in order, each to the first thread to free up."""
    free = [(0.0, t) for t in range(P)]
    for c in costs:
        at, t = heapq.heappop(free)
        heapq.heappush(free, (at + c, t))
    return max(at for at, _ in free)


def barrier_seconds(P):
    return BARRIER_US * 1e-6 * math.log2(P) if P > 1 else 0.0


def job_costs(workload, rules, calibration, P=16):
    """The row pass's tile costs [row block][stage][tile] and the weight jobs' costs, seconds.
    packed_tiles: (today's whole blocks, the tiles for P threads) -- two tiles per thread."""
    units = (workload.n_features, *workload.hidden, N_CLASSES)
    batch, dtype = workload.batch_size, workload.dtype

    def cost(pieces):
        return sum(calibration.cost(p, dtype) for p in pieces)
    blocks = row_blocks(batch, rules)
    want = -(-2 * P // len(blocks))
    rows = [[[cost(tile) for tile in stage] for stage in row_phases(units, r1 - r0, rules, want)]
            for r0, r1 in blocks]
    weights = [cost(weight_job_pieces(units, batch, job))
               for job in weight_jobs(units, rules, batch)]
    if rules.packed_tiles:  # with few threads, today's whole row blocks
        whole = [[[cost(tile) for tile in stage] for stage in row_stages(units, r1 - r0, TODAY)]
                 for r0, r1 in row_blocks(batch, rules)]
        return (whole, rows), weights
    return rows, weights


def row_pass(rows, rules, P):
    """The row pass's time on P threads, and whether it ran stage by stage."""
    if rules.packed_tiles:
        whole, rows = rows
        if P <= len(rows):
            return static_pass([sum(map(sum, block)) for block in whole], P), False
    if P > len(rows) and (len(rows[0]) > 1 or len(rows[0][0]) > 1):
        stages = list(zip(*rows))  # stage s: every row block's tiles, block after block
        return (sum(dynamic_pass([c for tiles in stage for c in tiles], P) for stage in stages)
                + (len(stages) - 1) * barrier_seconds(P)), True
    return static_pass([sum(map(sum, block)) for block in rows], P), False


def simulate(workload, rules, calibration, cores=CORES):
    """Per P: the batch's simulated time, speed-up over P = 1, busy fraction, and the jobs."""
    both, weights = job_costs(workload, rules, calibration, max(cores))
    rows = both[1] if rules.packed_tiles else both
    # the work: one core's batch (with packed_tiles, today's whole blocks: tiles are overhead)
    work = sum(sum(map(sum, block)) for block in (both[0] if rules.packed_tiles else rows))
    work += sum(weights)
    if rules.row_cols or rules.tile_mnk:  # enough threads: each stage's longest tile in turn
        row_critical = sum(max(max(tiles) for tiles in stage) for stage in zip(*rows))
        row_jobs = max(sum(len(tiles) for tiles in stage) for stage in zip(*rows))
    else:
        row_critical = max(sum(map(sum, block)) for block in rows)
        row_jobs = len(rows)
    out = []
    for P in cores:
        if rules.packed_tiles:  # the tiles for P threads (their bits do not depend on P)
            both = job_costs(workload, rules, calibration, P)[0]
        t_rows, staged = row_pass(both, rules, P)
        t = t_rows + dynamic_pass(weights, P) + 2 * barrier_seconds(P)
        out.append(dict(P=P, row_jobs=row_jobs, weight_jobs=len(weights), staged=staged,
                        phases=len(rows[0]),
                        critical_us=(row_critical + max(weights)) * 1e6, batch_us=t * 1e6,
                        speedup=work / t, busy=work / (P * t)))
    return out


# Candidates: every boundary still a function of the shapes only.
CANDIDATES = (
    TODAY,
    Rules("rows-64", min_rows=64, min_weight_rows=128),  # more row blocks, nothing else
    Rules("rows-16/w-32", min_rows=16, min_weight_rows=32),  # the finest row blocks
    Rules("t128x64/w-64x128", min_rows=128, row_cols=64, min_weight_rows=64, weight_cols=128),
    # The grid's picks (--search): cheapest on 2 cores for mnist and wide together; for each alone.
    Rules("r256c16/w64c32", row_cols=16, min_weight_rows=64, weight_cols=32),
    Rules("r16c64/w64c32", min_rows=16, row_cols=64, min_weight_rows=64, weight_cols=32),
    Rules("r256c128/w128c128", row_cols=128, min_weight_rows=128, weight_cols=128),
    # Per-layer rules (--layers): every product over OpenBLAS's small-matrix threshold cut into
    # the fewest tiles under it (rows >= 16, columns >= 32), the row pass's and W's alike.
    Rules("tiles<=1M", tile_mnk=SMALL_MNK, tile_cols=32, tile_rows=16, weight_mnk=SMALL_MNK,
          min_weight_rows=16, weight_tile_cols=32),
    # The --layers search's cheapest that keeps mnist and wide >= 80% busy at 16 cores (two runs):
    # the same, but products of >= 64 million m n k in column tiles of >= 128 (wide's), W's rows
    # in blocks of >= 32.
    Rules("tiles<=1M/big>=64M", tile_mnk=SMALL_MNK, big_mnk=64 * MB, tile_cols=32, tile_rows=16,
          weight_mnk=SMALL_MNK, min_weight_rows=32, weight_tile_cols=32),
    # Not shapes-only (packed_tiles): whole row blocks on few threads, packed-path tiles on many;
    # W as tiles<=1M/big>=64M (that part models 0 to -2% on 2 cores but mnist-f64's +2%).
    Rules("packed>1M|few:whole", tile_mnk=SMALL_MNK, tile_cols=32, tile_rows=16,
          packed_tiles=True, big_mnk=64 * MB, weight_mnk=SMALL_MNK, min_weight_rows=32,
          weight_tile_cols=32),
    # The engine's own rules on a machine of 4, 8 and 16 CPUs (class_rules; today is class 2).
    class_rules(4), class_rules(8), class_rules(16),
)


def format_classes(results):
    """The engine's schedule classes, each on the machine it is cut for: its jobs, its batch
    on P = class threads against today's rules on as many (the speed-up the class brings), its
    busy fraction there, and the cost of its smaller blocks to a process that runs it on one
    thread (a grid search of one-thread fits on that machine) or two."""
    lines = [f"{'workload':<10} {'class':>5} {'jobs r+w':>8}  {'T(class) vs today':>17} "
             f"{'busy':>5}  {'1 thread vs today':>17}  {'2 threads vs today':>18}"]
    for name, by_rules in results.items():
        today = {r["P"]: r["batch_us"] for r in by_rules["today"]}
        for cpus in (4, 8, 16):
            runs = {r["P"]: r for r in by_rules.get(f"class {cpus}", ())}
            if cpus not in runs:
                continue
            lines.append(
                f"{name:<10} {cpus:>5} {runs[1]['row_jobs']:>3}+{runs[1]['weight_jobs']:<4}  "
                f"{today[cpus] / runs[cpus]['batch_us']:>14.2f}x  "
                f"{100 * runs[cpus]['busy']:>4.0f}%  "
                f"{100 * (runs[1]['batch_us'] / today[1] - 1):>+16.0f}%  "
                f"{100 * (runs[2]['batch_us'] / today[2] - 1):>+17.0f}%")
    return "\n".join(lines)


def search(calibration, cores=16, sizes=(16, 32, 64, 128, 256)):
    """Every Rules on a grid of block sizes (rows, row tiles' columns, W's rows, W's columns;
    0: not cut) on mnist and wide: (rules, [(busy at `cores`, T(2) / today's T(2) - 1) for
    mnist, wide])."""
    workloads = [FIT_WORKLOADS["mnist"], FIT_WORKLOADS["wide"]]
    today = [simulate(w, TODAY, calibration, (2,))[0]["batch_us"] for w in workloads]
    found = []
    for min_rows in sizes:
        for row_cols in (0, *sizes):
            for min_weight_rows in sizes:
                for weight_cols in (0, *sizes):
                    rules = Rules(f"r{min_rows}c{row_cols}/w{min_weight_rows}c{weight_cols}",
                                  min_rows=min_rows, row_cols=row_cols,
                                  min_weight_rows=min_weight_rows, weight_cols=weight_cols)
                    runs = [simulate(w, rules, calibration, (2, cores)) for w in workloads]
                    found.append((rules, [(run[1]["busy"], run[0]["batch_us"] / t - 1)
                                          for run, t in zip(runs, today)]))
    return found


def search_layers(calibration, cores=16, names=tuple(FIT_WORKLOADS),
                  row_blocks_rows=(256,), tile_mnk=(0, SMALL_MNK // 2, SMALL_MNK),
                  big_mnk=(0, 16 * MB, 64 * MB), tile_cols=(16, 32, 64), tile_rows=(8, 16),
                  weight_mnk=(0, SMALL_MNK // 2, SMALL_MNK), min_weight_rows=(16, 32),
                  weight_tile_cols=(0, 32, 64)):
    """Per-layer rules (tile_pieces) on a grid, on every workload: (rules, {name: (busy at
    `cores`, T(2) / today's T(2) - 1)})."""
    workloads = {n: FIT_WORKLOADS[n] for n in names}
    today = {n: simulate(w, TODAY, calibration, (2,))[0]["batch_us"] for n, w in workloads.items()}
    found = []
    for rb in row_blocks_rows:
        for big in big_mnk:
            for tm in tile_mnk:
                for tc in (tile_cols if tm else (32,)):
                    for tr in (tile_rows if tm else (16,)):
                        for wm in weight_mnk:
                            for wr in (min_weight_rows if wm else (128,)):
                                for wc in (weight_tile_cols if wm else (32,)):
                                    if not tm and not wm and big:
                                        continue
                                    rules = Rules(
                                        f"r{rb}b{big // MB}t{tm / MB:g}c{tc}r{tr}/"
                                        f"w{wm / MB:g}r{wr}c{wc}", min_rows=rb, big_mnk=big,
                                        tile_mnk=tm, tile_cols=tc, tile_rows=tr, weight_mnk=wm,
                                        min_weight_rows=wr, weight_tile_cols=wc)
                                    scores = {}
                                    for n, w in workloads.items():
                                        run = simulate(w, rules, calibration, (2, cores))
                                        scores[n] = (run[1]["busy"],
                                                     run[0]["batch_us"] / today[n] - 1)
                                    found.append((rules, scores))
    return found


def format_search(found, busy=0.8):
    """The cheapest rule sets on 2 cores that keep >= busy at 16 cores: on mnist and wide
    together, and on each alone."""
    def line(rules, scores):
        return (f"  {rules.name:<20} busy at 16: mnist {100 * scores[0][0]:.0f}%, wide "
                f"{100 * scores[1][0]:.0f}%; 2 cores vs today: mnist {100 * scores[0][1]:+.1f}%, "
                f"wide {100 * scores[1][1]:+.1f}%")
    both = sorted((f for f in found if all(b >= busy for b, _ in f[1])),
                  key=lambda f: max(c for _, c in f[1]))
    lines = [f"search: {len(found)} rule sets (rN: MIN_ROWS, cN: column tiles or blocks, 0 = "
             f"none; wN: MIN_WEIGHT_ROWS); {len(both)} keep >= {100 * busy:.0f}% busy at 16 "
             f"cores on mnist and wide. The cheapest on 2 cores:"]
    lines += [line(*f) for f in both[:5]]
    for i, name in enumerate(("mnist", "wide")):
        alone = sorted((f for f in found if f[1][i][0] >= busy), key=lambda f: f[1][i][1])
        lines.append(f"{name} alone ({len(alone)} keep >= {100 * busy:.0f}%), the cheapest:")
        lines += [line(*f) for f in alone[:3]]
    return "\n".join(lines)


def format_search_layers(found, busy=0.8, need=("mnist", "wide"), top=8):
    """The per-layer rules that keep `need` >= busy at 16 cores, cheapest on 2 cores first (by
    their worst T(2) against today's over every workload searched)."""
    ok = sorted((f for f in found if all(f[1][n][0] >= busy for n in need)),
                key=lambda f: max(c for _, c in f[1].values()))
    names = list(found[0][1])
    lines = [f"per-layer search: {len(found)} rule sets (rN: MIN_ROWS; bB: products of >= B "
             f"million m n k in column tiles of >= 128, 0: none; tT: row-pass tiles of <= T "
             f"million m n k, cN: columns >= N, rN: rows >= N; wT: weight jobs of <= T million "
             f"m n k, rN: W's rows >= N, cN: columns >= N; 0: not cut); {len(ok)} keep >= "
             f"{100 * busy:.0f}% "
             f"busy at 16 cores on {' and '.join(need)}. The cheapest on 2 cores (busy at 16; "
             f"T(2) vs today):"]
    for rules, scores in ok[:top]:
        lines.append(f"  {rules.name:<24} " + ", ".join(
            f"{n} {100 * scores[n][0]:.0f}% {100 * scores[n][1]:+.1f}%" for n in names))
    return "\n".join(lines), [rules for rules, _ in ok[:top]]


def engine_batch_seconds(workload, batches=40):
    """The engine's CPU seconds per batch on one thread (run with OMP_NUM_THREADS=1): a fit of
    4 epochs less a fit of 1, over 3 x `batches` batches, the least of 3 tries."""
    import warnings

    from fastmlp import MLPClassifier
    from fastmlp.bench.workloads import make_blobs
    X, y = make_blobs(workload.batch_size * batches, workload.n_features, workload.dtype)

    def fit(epochs):
        model = MLPClassifier(hidden_layer_sizes=workload.hidden, batch_size=workload.batch_size,
                              max_iter=epochs, random_state=0, tol=0, n_iter_no_change=epochs)
        t0 = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # not converged: on purpose
            model.fit(X, y)
        return time.process_time() - t0
    return min((fit(4) - fit(1)) / (3 * batches) for _ in range(3))


def host():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(results, long=False):
    """One line per workload and schedule: jobs per pass, critical path, T(1), then speed-up and
    busy fraction per P (T(P)/T(1) is 1 / speed-up), and T(2) against today's T(2). long: one
    line per P."""
    if long:
        lines = ["workload    schedule             P  jobs r+w  crit us  batch us  T(P)/T1  "
                 "speed-up  busy"]
        for name, by_rules in results.items():
            for rules_name, rows in by_rules.items():
                lines += [f"{name:<11} {rules_name:<19.19} {r['P']:>2}  {r['row_jobs']:>3}+"
                          f"{r['weight_jobs']:<4} {r['critical_us']:>8.1f} {r['batch_us']:>9.1f}"
                          f"  {r['batch_us'] / rows[0]['batch_us']:>7.3f}  {r['speedup']:>8.2f}"
                          f"  {100 * r['busy']:>3.0f}%" for r in rows]
        return "\n".join(lines)
    cores = [r["P"] for r in next(iter(next(iter(results.values())).values()))]
    lines = [f"{'workload':<10} {'schedule':<24} {'jobs r+w':>8} {'crit us':>8} {'T1 us':>8}  "
             + " ".join(f"{'P=' + str(P):>10}" for P in cores[1:]) + "  T2/today"]
    for name, by_rules in results.items():
        today_2 = next(r for r in by_rules["today"] if r["P"] == 2)["batch_us"]
        for rules_name, rows in by_rules.items():
            r1 = rows[0]
            two = next(r for r in rows if r["P"] == 2)["batch_us"]
            lines.append(
                f"{name:<10} {rules_name:<24.24} {r1['row_jobs']:>3}+{r1['weight_jobs']:<4} "
                f"{r1['critical_us']:>8.0f} {r1['batch_us']:>8.0f}  "
                + " ".join(f"{r['speedup']:>5.1f} {100 * r['busy']:>3.0f}%" for r in rows[1:])
                + f"  {100 * (two / today_2 - 1):+7.1f}%")
    return "\n".join(lines)


def verdict(results, cores=16, busy=0.8):
    """Which candidates keep >= busy at `cores` on mnist and wide, and their 2-core cost."""
    lines = []
    for rules_name in results.get("mnist", {}):
        ok = all(rules_name in results.get(w, {}) for w in ("mnist", "wide"))
        if not ok:
            continue
        at = {w: next(r for r in results[w][rules_name] if r["P"] == cores)
              for w in ("mnist", "wide")}
        two = {w: (next(r for r in results[w][rules_name] if r["P"] == 2)["batch_us"]
                   / next(r for r in results[w]["today"] if r["P"] == 2)["batch_us"] - 1)
               for w in ("mnist", "wide")}
        passed = all(a["busy"] >= busy for a in at.values())
        lines.append(f"{rules_name:<19.19} busy at {cores}: "
                     f"mnist {100 * at['mnist']['busy']:.0f}%, "
                     f"wide {100 * at['wide']['busy']:.0f}% -> {'PASS' if passed else 'fail'}; "
                     f"2 cores vs today: mnist {100 * two['mnist']:+.1f}%, "
                     f"wide {100 * two['wide']:+.1f}%")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default=",".join(FIT_WORKLOADS))
    parser.add_argument("--flops", action="store_true",
                        help="cost by flops at a fixed rate instead of timing this machine")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time every GEMM shape again this many times, keeping the least")
    parser.add_argument("--calibration",
                        help="start from the timings a run saved with --json (and skip refining)")
    parser.add_argument("--engine", action="store_true",
                        help="also time the engine's own batch on one core, for comparison")
    parser.add_argument("--long", action="store_true", help="one line per P")
    parser.add_argument("--layers", action="store_true",
                        help="also search per-layer tile rules (tile_pieces) on every workload "
                             "and add the cheapest that keeps mnist and wide >= 80%% busy at 16 "
                             "cores to the table")
    parser.add_argument("--search", action="store_true",
                        help="also search a grid of block sizes for the cheapest that keeps "
                             "16 cores >= 80%% busy on mnist and wide")
    args = parser.parse_args(argv)
    names = [w for w in args.workloads.split(",") if w]
    for w in names:
        if w not in FIT_WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {', '.join(FIT_WORKLOADS)}")
    if args.flops:
        calibration = FlopCalibration()
    elif args.calibration:
        calibration = MeasuredCalibration.load(args.calibration)
        args.rounds = 0
    else:
        calibration = MeasuredCalibration()
    layered = []

    def run():
        results = {name: {rules.name: simulate(FIT_WORKLOADS[name], rules, calibration)
                          for rules in CANDIDATES + tuple(layered)} for name in names}
        return results, (search(calibration) if args.search else None)
    with threadpool_limits(1):
        if args.layers:
            search_layers(calibration)  # times every shape once
            calibration.refine(args.rounds)
            text, best = format_search_layers(search_layers(calibration))
            layered.extend(best[:3])
        run()  # times every shape once
        calibration.refine(args.rounds)
        results, found = run()
    print(f"host: {host()}, {os.cpu_count()} CPUs; cost: "
          f"{'flops at 50 GFLOP/s' if args.flops else 'GEMMs and kernels timed here, 1 thread'}; "
          f"barrier {BARRIER_US} us x log2(P) per pass")
    print("jobs r+w: row jobs (with column tiles: the most tiles of one stage) + weight jobs per "
          "batch; crit: the longest chain of jobs (row pass + weight pass); T1: the batch on one "
          "core; P=n: speed-up T(1)/T(P) and busy fraction work/(P T(P)); T2/today: T(2) against "
          "today's T(2)")
    print(format_table(results, args.long))
    if "mnist" in results and "wide" in results:
        print()
        print(verdict(results))
    print("\nthe engine's classes (fastmlp._runtime.schedule_cpus), each on P = its CPUs; "
          "today is class 2:")
    print(format_classes(results))
    if args.engine:
        print("\nthe engine's own batch on one core (CPU time; OMP_NUM_THREADS=1) against the "
              "model's T1:")
        for name in names:
            measured = engine_batch_seconds(FIT_WORKLOADS[name]) * 1e6
            model = results[name]["today"][0]["batch_us"]
            print(f"  {name:<10} engine {measured:9.0f} us, model {model:9.0f} us "
                  f"({100 * (model / measured - 1):+.0f}%)")
    if found is not None:
        print()
        print(format_search(found))
    if args.layers:
        print()
        print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(host=host(), results=results,
                           gemm_seconds={"|".join(map(str, k)): v for k, v in
                                         getattr(calibration, "gemm_seconds", {}).items()},
                           elem_ns={"|".join(k): v for k, v in
                                    getattr(calibration, "elem_ns", {}).items()},
                           overhead=getattr(calibration, "_overhead", {})),
                      f, indent=1)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
