"""The compiled engine: forward, backward and optimizer steps over one flat parameter vector.

Design
------
What the estimators use is re-exported here; everything else is internal to the engine.

    vocabulary.pyx        names -> the C enums' codes (activations, losses, solvers), read by all
    _network.pyx/.pxd     Network: a perceptron's geometry, built from names
    _geometry.pxd         the Geometry struct; offsets of W, b and of each layer's rows (act_at,
                          delta_at) — the only place these formulas are written
    _rows.pxd             a pass's input: dense (any strides) or CSR, shuffled or in place
    _layers.pxd           a layer, whatever its kind: forward and backward dispatched by kind,
                          and what forward keeps for backward (Kept); says what a new kind needs
    _layer_dense.pxd      the affine product (BLAS GEMM) and the element-wise activations
    _layer_sparse_input.pxd   the first layer's product and weight gradient on CSR input
    _layer_maxout.pxd     maxout units (k pieces each)
    _layer_dropout.pxd    inverted dropout with counter-hash masks
    _layer_batchnorm.pxd  batch normalization: statistics over the batch, by blocks of features
    _schedule.pxd         the blocks of a mini-batch and who computes them: the determinism
    _threads.pxd          one thread or all per batch, by what each has just cost
    _stores.pxd           a two-thread batch's gathered rows through the caches or past them,
                          by what each way's gather has just cost
    _interrupt.pxd        Ctrl-C through a call that runs without the GIL
    _trainer.pyx          Trainer (epochs, full-batch gradients), predict, surely_finite, the
                          limit that holds BLAS to one thread while the engine runs, and
                          SteadyCall (a partial_fit call in its steady state, compiled),
                          SteadyPrediction (a few-row prediction in its steady state, compiled)
    _blas.pxd, _kernels.pxd, _openmp.pxd   shims: scipy's BLAS, csrc/'s kernels, OpenMP
    _testing.pyx          the kernels one by one on numpy arrays, for the tests only

A new layer kind: see _layers.pxd. A new solver (ftrl was added this way): its loop and its case
in csrc/optimizers.c (fm_optim_begin_step for its per-step scalars, fm_optim_step for the loop);
its hyper-parameters as fields of fm_optim in csrc/fastmlp_kernels.h, mirrored in _kernels.pxd
and in _trainer.pyx's OPTIM_SPEC (Cython checks the record against the struct at every epoch);
its name in vocabulary.pyx; its Python class in fastmlp/_stochastic_optimizers.py; and a test
against the written-out formula (tests/estimator/).

Only the .pyx files are compiled modules; the .pxd units are inlined into the one that uses
them (_trainer), so the hot path is one translation unit, as it was when it was one file. The
C kernels (csrc/) are one static library linked into each compiled module.

The math, per layer l with input a (rows x n_in) and output width n_out:
    forward   z = a W + b, a' = act(z)              one GEMM, then bias + activation in one pass
    output    delta = (p - y) * w                   output activation fused with its loss
    backward  dW = a^T delta, db = sum_rows delta    (the weight gradient)
              delta_prev = (delta W^T) * act'(a)      (skipped for the first layer: no input grad)
Parameters: theta holds every W^l (row-major, fan_in x fan_out, as scikit-learn's ``coefs_``)
followed by every b^l (and, with batch normalization, every hidden layer's gamma and beta); the estimator's ``coefs_``/``intercepts_`` are views into it. The
gradient and the optimizer's state vectors have the same layout, so finishing the gradient and
stepping the optimizer is one element-wise pass (csrc/optimizers.c).
"""
from fastmlp._engine._network import Network
from fastmlp._engine._trainer import (
    OPENMP_ENABLED, OPTIM_SPEC, PARALLEL_CHECK_VALUES, SMALL_PREDICT_ROWS, InputNotFinite,
    SteadyCall,
    SteadyPrediction, Trainer, blas_limit_enter, blas_limit_exit, blas_thread_calls,
    few_row_split, helper_slices, helper_yields, max_threads, predict, small_pack_copies,
    subnormals_slow, surely_finite,
)
from fastmlp._engine.vocabulary import (
    ACTIVATION_CODES, HIDDEN_ACTIVATIONS, LOSS_CODES, OTHER_LOSSES, OUTPUT_LOSSES, SOLVERS,
)

__all__ = ["ACTIVATION_CODES", "HIDDEN_ACTIVATIONS", "InputNotFinite", "LOSS_CODES", "Network",
           "OPENMP_ENABLED",
           "OPTIM_SPEC", "OTHER_LOSSES", "OUTPUT_LOSSES", "PARALLEL_CHECK_VALUES",
           "SMALL_PREDICT_ROWS", "SOLVERS",
           "SteadyCall", "SteadyPrediction", "Trainer", "blas_limit_enter", "blas_limit_exit", "blas_thread_calls",
           "few_row_split", "helper_slices", "helper_yields", "max_threads", "predict",
           "small_pack_copies", "subnormals_slow", "surely_finite"]
