"""Fingerprint every fitted result of a fastmlp build, to prove that a restructuring changes none.

A restructuring (issue 11: the engine split into units, one vocabulary, modules moved) must leave
every fitted model bit for bit the same as before, on the same machine. This tool fits a broad
matrix of models -- every activation, solver, loss, target kind, dtype, memory layout, sparse
format and regulariser, fit / partial_fit / warm_start, a base case varied one or two options at
a time plus a few combinations -- and records, per case, a sha256 of the exact bytes of every
`coefs_` / `intercepts_` array, the loss curve and `gradient_norms_` (as float64), the validation
scores, predictions and probabilities on held-out rows (and on 1 and 3 rows: the path without
BLAS), with `n_iter_`, `t_`, `loss_`, `best_loss_`, `best_validation_score_` kept exactly (float
repr round-trips) and the case's parameters. A fit or prediction that raises is recorded as its error (type and
message), so a change in what fails is caught too. Two such files are then compared case by case.

Usage (each build compiled in place: `python setup.py build_ext --inplace`; put the build to
fingerprint first on PYTHONPATH -- `run` refuses a package whose compiled engine was loaded from
somewhere else, e.g. an editable install's):

    PYTHONPATH=/path/to/baseline python tools/fingerprint.py run --out base-t1.json --threads 1
    PYTHONPATH=/path/to/baseline python tools/fingerprint.py run --out base-t2.json --threads 2
    PYTHONPATH=/path/to/new python tools/fingerprint.py run --out new-t1.json --threads 1
    PYTHONPATH=/path/to/new python tools/fingerprint.py run --out new-t2.json --threads 2
    python tools/fingerprint.py compare base-t1.json new-t1.json   # exit 1 if any case differs
    python tools/fingerprint.py compare base-t2.json new-t2.json
    python tools/fingerprint.py compare base-t1.json base-t2.json  # the engine's thread promise

`--threads N` sets OMP_NUM_THREADS before numpy or fastmlp is imported (checked afterwards with
threadpoolctl); the engine promises bitwise equal results whatever the thread count, so the
1- and 2-thread files of one build compare equal as well. Run both files of a pair on the same
machine with the same numpy / scipy / scikit-learn: the header of `compare` shows both.
`--schedule-cpus N` cuts the blocks for a machine of N CPUs (FASTMLP_SCHEDULE_CPUS: 2, 4, 8,
16; by default the machine's own class): the thread promise holds within a class, so compare
the files of one class (`--threads 16 --schedule-cpus 16` against `--threads 1 --schedule-cpus
16`, for a 16-core server's blocks on any machine).

Only the public API (the estimators' parameters, fit / partial_fit / predict / predict_proba,
the fitted attributes every version has), because the restructuring moves and renames the
private parts: a tool that reached into `_engine` or the optimizer objects would break on the
very change it must judge, or would need rewriting for it -- and then it proves nothing. What a
user can observe is what must not change. The one look past the API is a guard, not a result:
the compiled extension modules of the package must sit in the package's own directory.

289 cases; one run takes 5-15 s on the 2-core machine (the largest case, a 64 MiB column-major
X read in place, ~1.5 s). The data are made here or are scikit-learn's bundled datasets (digits,
iris, diabetes), subsampled, with fixed seeds.
"""
import argparse
import hashlib
import json
import os
import sys
import time

# ----------------------------------------------------------------------------------------------
# The matrix. A case is a spec (plain JSON data); its id is derived from the spec's overrides of
# the base case of its estimator, in the order written here, so ids are stable across runs.

CLF_BASE = dict(hidden_layer_sizes=[32], max_iter=20, random_state=0)
REG_BASE = dict(hidden_layer_sizes=[32], max_iter=20, random_state=0)

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu",
               "mish", "softplus", "maxout"]


def _cases():
    cases = {}

    def add(est, data, params=None, *, dtype="float64", layout="C", mode="fit",
            sample_weight=None, tag=None):
        base = CLF_BASE if est == "clf" else REG_BASE
        params = dict(params or {})
        parts = [f"{k}={_short(v)}" for k, v in params.items()]
        if dtype != "float64":
            parts.append(dtype)
        if layout != "C":
            parts.append(layout)
        if mode != "fit":
            parts.append(mode)
        if sample_weight:
            parts.append(f"sample_weight={sample_weight}")
        if tag:
            parts.append(tag)
        case_id = f"{est}/{data}/" + (",".join(parts) or "base")
        if case_id in cases:
            raise AssertionError(f"duplicate case id {case_id}")
        cases[case_id] = dict(est=est, data=data, params={**base, **params}, dtype=dtype,
                              layout=layout, mode=mode, sample_weight=sample_weight)

    # --- classifier, digits (multiclass): the base varied one option at a time -----------------
    add("clf", "digits")
    for act in ACTIVATIONS:
        if act != "relu":
            add("clf", "digits", {"activation": act})
    add("clf", "digits", {"activation": "maxout", "maxout_pieces": 3})
    add("clf", "digits", {"activation": "leaky_relu", "negative_slope": 0.2})
    add("clf", "digits", {"activation": "elu", "elu_alpha": 0.5})
    add("clf", "digits", {"activation": "softplus", "softplus_beta": 2.0,
                          "softplus_threshold": 5.0})
    add("clf", "digits", {"hidden_layer_sizes": [16, 8]})
    add("clf", "digits", {"hidden_layer_sizes": [16, 12, 8]})
    add("clf", "digits", {"hidden_layer_sizes": [16, 12, 8], "activation": "maxout"})
    add("clf", "digits", {"hidden_layer_sizes": [16, 8], "activation": "tanh"})
    for alpha in (0.0, 0.01, 1.0):
        add("clf", "digits", {"alpha": alpha})

    # solvers
    add("clf", "digits", {"solver": "lbfgs", "max_iter": 15})
    add("clf", "digits", {"solver": "lbfgs", "max_iter": 15, "hidden_layer_sizes": [16, 8],
                          "activation": "tanh"})
    add("clf", "digits", {"solver": "lbfgs", "max_fun": 7})
    for lr in ("constant", "invscaling"):
        for momentum, nesterov in ((0.9, True), (0.9, False), (0.0, False)):
            add("clf", "digits", {"solver": "sgd", "learning_rate": lr, "momentum": momentum,
                                  "nesterovs_momentum": nesterov, "learning_rate_init": 0.05})
    add("clf", "digits", {"solver": "sgd", "learning_rate": "invscaling", "power_t": 0.25,
                          "learning_rate_init": 0.05})
    add("clf", "digits", {"solver": "sgd", "learning_rate": "adaptive", "learning_rate_init": 0.5,
                          "tol": 0.05, "n_iter_no_change": 2, "max_iter": 30})
    add("clf", "digits", {"solver": "sgd", "learning_rate": "adaptive", "nesterovs_momentum": False,
                          "learning_rate_init": 0.5, "tol": 0.05, "n_iter_no_change": 2,
                          "max_iter": 30})
    add("clf", "digits", {"solver": "adam", "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6,
                          "learning_rate_init": 0.01})
    torch_solvers = [
        {"solver": "adagrad", "learning_rate_init": 0.01},
        {"solver": "adagrad", "learning_rate_init": 0.01, "lr_decay": 0.01,
         "initial_accumulator_value": 0.1},
        {"solver": "adagrad", "learning_rate_init": 0.01, "weight_decay": 0.01, "eps": 1e-6},
        {"solver": "rmsprop", "learning_rate_init": 0.01},
        {"solver": "rmsprop", "learning_rate_init": 0.01, "centered": True},
        {"solver": "rmsprop", "learning_rate_init": 0.01, "rmsprop_momentum": 0.9},
        {"solver": "rmsprop", "learning_rate_init": 0.01, "centered": True,
         "rmsprop_momentum": 0.5, "rho": 0.9},
        {"solver": "rmsprop", "learning_rate_init": 0.01, "weight_decay": 0.01, "eps": 1e-6},
        {"solver": "adadelta", "learning_rate_init": 1.0},
        {"solver": "adadelta", "learning_rate_init": 1.0, "rho": 0.95, "eps": 1e-5,
         "weight_decay": 0.01},
        {"solver": "adamax", "learning_rate_init": 0.002},
        {"solver": "adamax", "learning_rate_init": 0.002, "weight_decay": 0.01, "beta_1": 0.8},
        {"solver": "nadam", "learning_rate_init": 0.002},
        {"solver": "nadam", "learning_rate_init": 0.002, "momentum_decay": 0.01,
         "weight_decay": 0.01},
        {"solver": "nadam", "learning_rate_init": 0.002, "weight_decay": 0.01,
         "decoupled_weight_decay": True},
        {"solver": "adamw", "learning_rate_init": 0.002},
        {"solver": "adamw", "learning_rate_init": 0.002, "amsgrad": True},
        {"solver": "adamw", "learning_rate_init": 0.002, "weight_decay": 0.1, "eps": 1e-6},
        {"solver": "adamw", "learning_rate_init": 0.002, "weight_decay": 0.0, "amsgrad": True,
         "beta_2": 0.99},
    ]
    for p in torch_solvers:
        add("clf", "digits", p)

    # losses, regularisers, stopping, batches
    add("clf", "digits", {"loss": "squared_error"})
    add("clf", "digits", {"loss": "squared_error", "solver": "lbfgs", "max_iter": 15})
    for p in ({"dropout": 0.2}, {"dropout": 0.5, "solver": "sgd", "learning_rate_init": 0.05},
              {"dropout": 0.2, "hidden_layer_sizes": [16, 8]},
              {"max_grad_norm": 0.5}, {"max_grad_norm": 0.1, "solver": "sgd",
                                       "learning_rate_init": 0.05},
              {"weight_clip": 0.1}, {"weight_clip": 0.05, "solver": "rmsprop"},
              {"weight_clip": 0.1, "solver": "lbfgs", "max_iter": 15},
              {"dropout": 0.2, "solver": "lbfgs"}, {"max_grad_norm": 1.0, "solver": "lbfgs"},
              {"early_stopping": True, "max_iter": 20},
              {"early_stopping": True, "validation_fraction": 0.25, "n_iter_no_change": 2,
               "max_iter": 30, "learning_rate_init": 0.01},
              {"early_stopping": True, "solver": "sgd", "learning_rate": "adaptive",
               "n_iter_no_change": 2, "max_iter": 30, "learning_rate_init": 0.1},
              {"tol": 0.05, "n_iter_no_change": 2, "max_iter": 40, "learning_rate_init": 0.01},
              {"tol": 0.0, "n_iter_no_change": "inf", "max_iter": 12},
              {"batch_size": 1, "max_iter": 2}, {"batch_size": 37}, {"batch_size": 5000},
              {"batch_size": 37, "shuffle": False}, {"shuffle": False},
              {"batch_size": 1, "max_iter": 2, "solver": "sgd", "learning_rate_init": 0.01},
              {"max_iter": 1}):
        add("clf", "digits", p)
    # blocks: batches of >= 512 rows and layers of >= 256 units are cut into several row and
    # weight blocks (the scheduler's determinism), and > 256 float32 (1024 float64) predicted
    # rows into several
    add("clf", "digits_large", {"hidden_layer_sizes": [300], "batch_size": 1024, "max_iter": 3})
    add("clf", "digits_large", {"hidden_layer_sizes": [300, 64], "batch_size": 600, "max_iter": 2,
                                "activation": "maxout", "dropout": 0.1}, dtype="float32")
    add("clf", "digits_large", {"hidden_layer_sizes": [260], "solver": "lbfgs", "max_iter": 5},
        layout="csr")
    # a W of >= 512 rows: more than two weight blocks under some rules (MIN_WEIGHT_ROWS)
    add("clf", "digits_large", {"hidden_layer_sizes": [640, 24], "batch_size": 512,
                                "max_iter": 2}, dtype="float32")
    # products by a W^T of >= 256 terms on row blocks of >= 64 rows, whose ReLU deltas have
    # terms zero in all of a tile's rows (csrc/rows_product.c's rp_product512_t skips them)
    for dtype in ("float32", "float64"):
        add("clf", "digits_large", {"hidden_layer_sizes": [64, 512, 300], "batch_size": 256,
                                    "max_iter": 2}, dtype=dtype)

    # sample and class weights
    for sw in ("uniform", "integers"):
        add("clf", "digits", sample_weight=sw)
        add("clf", "digits", {"solver": "lbfgs", "max_iter": 15}, sample_weight=sw)
        add("clf", "digits", {"solver": "sgd", "learning_rate_init": 0.05}, sample_weight=sw)
    add("clf", "digits", {"class_weight": "balanced"})
    add("clf", "digits", {"class_weight": {"0": 2.0, "3": 0.5}})
    add("clf", "digits", {"class_weight": "balanced"}, sample_weight="integers")
    add("clf", "digits", {"class_weight": {"1": 3.0}, "solver": "lbfgs", "max_iter": 15})

    # dtypes x layouts (F: column-major copy; colslice: a column slice of a C array, read in
    # place; csr / csc: scipy sparse)
    for dtype in ("float64", "float32"):
        for layout in ("C", "F", "colslice", "csr", "csc"):
            if (dtype, layout) != ("float64", "C"):  # the base cases above
                add("clf", "digits", dtype=dtype, layout=layout)
                add("clf", "digits", {"solver": "lbfgs", "max_iter": 15}, dtype=dtype,
                    layout=layout)
        add("clf", "digits", {"activation": "gelu", "solver": "sgd",
                              "learning_rate_init": 0.05}, dtype=dtype)
        add("clf", "digits", {"activation": "maxout"}, dtype=dtype, layout="csr")
    # few-row float32 products in column tiles (batches of 32: blocks of 16 rows)
    add("clf", "wide_features", {"hidden_layer_sizes": [256, 64], "batch_size": 32,
                                 "max_iter": 2}, dtype="float32")
    add("clf", "wide_features", {"hidden_layer_sizes": [200], "batch_size": 64, "max_iter": 2,
                                 "solver": "sgd"}, dtype="float32")
    # a column-major X of 64 MiB and more is read in place, each batch gathered by the engine
    add("clf", "big_strided", {"hidden_layer_sizes": [8], "max_iter": 1, "batch_size": 4096},
        dtype="float32", layout="F")

    # partial_fit (three calls, classes= on the first) and warm_start (fit, then fit again with
    # max_iter changed)
    add("clf", "digits", mode="partial_fit")
    add("clf", "digits", {"solver": "sgd", "learning_rate_init": 0.05}, mode="partial_fit")
    add("clf", "digits", {"solver": "rmsprop", "dropout": 0.2}, mode="partial_fit",
        dtype="float32", layout="csr")
    add("clf", "digits", mode="partial_fit", sample_weight="uniform")
    add("clf", "digits", {"class_weight": "balanced"}, mode="partial_fit")  # an error
    add("clf", "digits", {"class_weight": {"2": 2.0}}, mode="partial_fit")
    # partial_fit in its steady state (nineteen calls of 64 rows)
    for dtype in ("float64", "float32"):
        add("clf", "digits", {"batch_size": 16}, mode="partial_fit_steady", dtype=dtype)
        add("clf", "binary", {"batch_size": 16, "solver": "sgd", "learning_rate": "adaptive",
                              "n_iter_no_change": 1, "tol": 1e9}, mode="partial_fit_steady",
            dtype=dtype)
        add("clf", "digits", {"batch_size": 20, "dropout": 0.2, "solver": "nadam",
                              "max_grad_norm": 0.5}, mode="partial_fit_steady", dtype=dtype)
        add("clf", "digits", {"batch_size": 16, "batch_norm": True, "activation": "maxout"},
            mode="partial_fit_steady", dtype=dtype)
        add("clf", "digits", {"batch_size": 16, "shuffle": False, "solver": "ftrl"},
            mode="partial_fit_steady", dtype=dtype)
        add("reg", "diabetes", {"batch_size": 16, "solver": "sgd", "learning_rate":
                                "invscaling", "learning_rate_init": 0.01},
            mode="partial_fit_steady", dtype=dtype)
    add("clf", "digits", {"warm_start": True}, mode="warm_start")
    add("clf", "digits", {"warm_start": True, "solver": "lbfgs"}, mode="warm_start")
    add("clf", "digits", {"warm_start": True, "solver": "sgd", "learning_rate": "invscaling",
                          "learning_rate_init": 0.05}, mode="warm_start")
    add("clf", "digits", {"warm_start": True, "solver": "nadam", "activation": "maxout"},
        mode="warm_start")
    add("clf", "digits", {"warm_start": True, "early_stopping": True}, mode="warm_start")
    add("clf", "digits", {"warm_start": False}, mode="warm_start")

    # other targets: binary, multiclass iris, multilabel, string labels
    for data in ("binary", "iris", "multilabel", "strings"):
        add("clf", data)
        add("clf", data, {"loss": "squared_error"})
        add("clf", data, {"solver": "lbfgs", "max_iter": 15})
        add("clf", data, {"solver": "sgd", "learning_rate_init": 0.05, "batch_size": 37})
        add("clf", data, {"activation": "maxout", "dropout": 0.2}, dtype="float32")
        add("clf", data, {"early_stopping": True, "max_iter": 15})
        add("clf", data, mode="partial_fit")
        add("clf", data, {"warm_start": True}, mode="warm_start")
        add("clf", data, sample_weight="uniform", layout="csc")
        add("clf", data, {"class_weight": "balanced"})
    add("clf", "binary", {"loss": "squared_error", "solver": "lbfgs", "max_iter": 15})
    add("clf", "multilabel", {"loss": "squared_error", "solver": "lbfgs", "max_iter": 15})
    add("clf", "multilabel", {"class_weight": [{"0": 1.0, "1": 2.0}] * 4})
    add("clf", "binary", {"class_weight": {"0": 3.0}}, sample_weight="integers")

    # combinations
    add("clf", "digits", {"activation": "maxout", "dropout": 0.2}, dtype="float32",
        layout="csr")
    add("clf", "digits", {"activation": "maxout", "maxout_pieces": 3, "dropout": 0.3,
                          "hidden_layer_sizes": [16, 8]}, dtype="float32", layout="csc")
    add("clf", "digits", {"activation": "gelu", "solver": "adamw", "dropout": 0.2,
                          "max_grad_norm": 1.0, "weight_decay": 0.01,
                          "learning_rate_init": 0.002}, dtype="float32", layout="F")
    add("clf", "digits", {"activation": "elu", "solver": "rmsprop", "centered": True,
                          "weight_clip": 0.2}, layout="csc", sample_weight="uniform")
    add("clf", "digits", {"activation": "mish", "solver": "nadam", "early_stopping": True,
                          "batch_size": 37, "max_iter": 12}, dtype="float32", layout="colslice")
    add("clf", "digits", {"activation": "silu", "solver": "sgd", "learning_rate_init": 0.05,
                          "dropout": 0.1, "max_grad_norm": 0.5, "weight_clip": 0.5,
                          "hidden_layer_sizes": [16, 12, 8]}, dtype="float32")
    add("clf", "multilabel", {"activation": "softplus", "solver": "adagrad", "dropout": 0.2,
                              "learning_rate_init": 0.01}, dtype="float32", layout="csr")
    add("clf", "strings", {"activation": "maxout", "solver": "adamw", "class_weight": "balanced",
                           "batch_size": 1, "max_iter": 2}, layout="F")

    # --- regressor ------------------------------------------------------------------------------
    add("reg", "diabetes")
    for act in ACTIVATIONS:
        if act != "relu":
            add("reg", "diabetes", {"activation": act})
    add("reg", "diabetes", {"activation": "maxout", "maxout_pieces": 3})
    add("reg", "diabetes", {"hidden_layer_sizes": [16, 12, 8]})
    add("reg", "diabetes", {"solver": "lbfgs", "max_iter": 15})
    add("reg", "diabetes", {"solver": "sgd", "learning_rate_init": 0.01})
    add("reg", "diabetes", {"solver": "sgd", "learning_rate_init": 0.01,
                            "nesterovs_momentum": False, "learning_rate": "invscaling"})
    add("reg", "diabetes", {"solver": "sgd", "learning_rate_init": 0.01, "momentum": 0.0,
                            "learning_rate": "adaptive", "tol": 0.05, "n_iter_no_change": 2,
                            "max_iter": 30})
    for p in torch_solvers[::2]:
        add("reg", "diabetes", p)
    for loss in ("poisson", "absolute_error", "huber"):
        add("reg", "diabetes_pos" if loss == "poisson" else "diabetes", {"loss": loss})
        add("reg", "diabetes_pos" if loss == "poisson" else "diabetes",
            {"loss": loss, "solver": "lbfgs", "max_iter": 15})
        add("reg", "diabetes_pos" if loss == "poisson" else "diabetes",
            {"loss": loss, "solver": "sgd", "learning_rate_init": 0.01}, dtype="float32")
    add("reg", "diabetes", {"loss": "huber", "huber_delta": 0.5})
    add("reg", "diabetes", {"loss": "poisson"})  # negative targets: a nan loss, as it comes
    for p in ({"alpha": 0.0}, {"alpha": 1.0}, {"dropout": 0.2}, {"max_grad_norm": 0.5},
              {"weight_clip": 0.1}, {"weight_clip": 0.1, "solver": "lbfgs", "max_iter": 15},
              {"early_stopping": True, "max_iter": 20},
              {"early_stopping": True, "validation_fraction": 0.3, "n_iter_no_change": 2,
               "max_iter": 30, "learning_rate_init": 0.01},
              {"tol": 0.05, "n_iter_no_change": 2, "max_iter": 40, "learning_rate_init": 0.01},
              {"batch_size": 1, "max_iter": 2}, {"batch_size": 37}, {"batch_size": 5000},
              {"shuffle": False, "batch_size": 37}):
        add("reg", "diabetes", p)
    for sw in ("uniform", "integers"):
        add("reg", "diabetes", sample_weight=sw)
        add("reg", "diabetes", {"solver": "lbfgs", "max_iter": 15}, sample_weight=sw)
    for dtype in ("float64", "float32"):
        for layout in ("C", "F", "colslice", "csr", "csc"):
            if (dtype, layout) != ("float64", "C"):
                add("reg", "diabetes", dtype=dtype, layout=layout)
            add("reg", "multiout", {"solver": "lbfgs", "max_iter": 15}, dtype=dtype,
                layout=layout)
    add("reg", "diabetes", mode="partial_fit")
    add("reg", "diabetes", {"solver": "sgd", "learning_rate_init": 0.01}, mode="partial_fit",
        dtype="float32", sample_weight="uniform")
    add("reg", "diabetes", {"warm_start": True}, mode="warm_start")
    add("reg", "diabetes", {"warm_start": True, "solver": "lbfgs"}, mode="warm_start")
    # multi-output
    add("reg", "multiout")
    for loss in ("squared_error", "absolute_error", "huber"):
        add("reg", "multiout", {"loss": loss, "solver": "sgd", "learning_rate_init": 0.01})
    add("reg", "multiout_pos", {"loss": "poisson"})
    add("reg", "multiout", {"activation": "maxout", "dropout": 0.2}, dtype="float32",
        layout="csr")
    add("reg", "multiout", {"early_stopping": True, "max_iter": 15})
    add("reg", "multiout", mode="partial_fit", layout="F")
    add("reg", "multiout", {"warm_start": True, "solver": "adamax"}, mode="warm_start")
    add("reg", "multiout", sample_weight="integers", dtype="float32")
    # combinations
    add("reg", "diabetes", {"activation": "gelu", "solver": "adamw", "dropout": 0.2,
                            "max_grad_norm": 1.0, "hidden_layer_sizes": [16, 8]},
        dtype="float32", layout="csr")
    add("reg", "diabetes_pos", {"loss": "poisson", "activation": "maxout", "solver": "rmsprop",
                                "rmsprop_momentum": 0.9, "weight_clip": 0.3},
        dtype="float32", layout="F", sample_weight="uniform")
    add("reg", "multiout", {"loss": "huber", "huber_delta": 0.3, "activation": "softplus",
                            "solver": "adadelta", "learning_rate_init": 1.0, "batch_size": 37,
                            "early_stopping": True}, layout="csc")
    add("reg", "diabetes_large", {"hidden_layer_sizes": [300, 32], "batch_size": 1024,
                                  "max_iter": 3})
    # few rows against a wide first layer: its product in column tiles (fastmlp/_engine/
    # _schedule.pxd's first_tiles; 32 rows through 165 K parameters are two row blocks)
    for p in ({}, {"shuffle": False}, {"activation": "gelu", "dropout": 0.2, "solver": "sgd"}):
        for dtype in ("float64", "float32"):
            add("clf", "digits", {"hidden_layer_sizes": [2048, 16], "batch_size": 32,
                                  "max_iter": 2, **p}, dtype=dtype)
    # batch normalization: every layer kind beside it, the solvers' paths, sparse, weights
    for p in ({}, {"activation": "maxout", "maxout_pieces": 3}, {"activation": "gelu",
                                                                  "dropout": 0.2},
              {"solver": "lbfgs"}, {"solver": "sgd", "max_grad_norm": 0.5, "weight_clip": 1.0},
              {"hidden_layer_sizes": [16, 12, 8], "batch_norm_momentum": 0.3,
               "batch_norm_eps": 1e-3}, {"early_stopping": True}):
        add("clf", "digits", {"batch_norm": True, **p})
    add("clf", "digits", {"batch_norm": True, "activation": "tanh"}, dtype="float32",
        layout="csr", sample_weight="uniform")
    add("clf", "digits", {"batch_norm": True, "solver": "adamw"}, mode="partial_fit")
    add("reg", "multiout", {"batch_norm": True, "solver": "lbfgs", "activation": "maxout"},
        dtype="float32", sample_weight="uniform")
    return cases


def _short(v):
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else json.dumps(
            v, sort_keys=True, separators=(",", ":"))
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


# ----------------------------------------------------------------------------------------------
# Data: fixed subsamples, fixed seeds.

def _datasets():
    import numpy as np
    from sklearn import datasets

    rng = np.random.RandomState(0)
    data = {}

    digits = datasets.load_digits()
    X, y = digits.data / 16.0, digits.target
    order = rng.permutation(len(y))
    data["digits"] = (X[order[:500]], y[order[:500]], X[order[500:700]])
    data["digits_large"] = (X[order[:1300]], y[order[:1300]], X[order])

    iris = datasets.load_iris()
    X = (iris.data - iris.data.mean(0)) / iris.data.std(0)
    order = rng.permutation(len(iris.target))
    data["iris"] = (X[order[:110]], iris.target[order[:110]], X[order[110:]])
    names = iris.target_names[iris.target]
    data["strings"] = (X[order[:110]], names[order[:110]], X[order[110:]])

    X, y = datasets.make_classification(n_samples=400, n_features=20, n_informative=6,
                                        random_state=0)
    data["binary"] = (X[:300], y[:300], X[300:])
    X, Y = datasets.make_multilabel_classification(n_samples=400, n_features=20, n_classes=4,
                                                   random_state=0)
    X = X / X.max()
    data["multilabel"] = (X[:300], Y[:300], X[300:])

    diabetes = datasets.load_diabetes()
    X, y = diabetes.data / diabetes.data.std(0), diabetes.target
    order = rng.permutation(len(y))
    tr, te = order[:340], order[340:]
    ys = (y - y.mean()) / y.std()
    data["diabetes"] = (X[tr], ys[tr], X[te])
    data["diabetes_pos"] = (X[tr], y[tr] / 100.0, X[te])
    big = np.vstack([X, X * 0.5 + 0.1, -X])  # 1326 rows
    data["diabetes_large"] = (big[:1200], np.concatenate([ys, ys * 0.5, -ys])[:1200], big)

    X, Y = datasets.make_regression(n_samples=400, n_features=15, n_targets=3, noise=0.1,
                                    random_state=0)
    X = X / X.std(0)
    Y = Y / Y.std(0)
    data["multiout"] = (X[:300], Y[:300], X[300:])
    data["multiout_pos"] = (X[:300], np.abs(Y[:300]), X[300:])

    # 300 features: float32 products of a few rows against W of <= 256 columns are cut into
    # column tiles (_layer_dense.pxd's dense_product); 20 rows to predict take them too
    X, y = datasets.make_classification(n_samples=620, n_features=300, n_informative=30,
                                        n_classes=3, random_state=0)
    data["wide_features"] = (X[:600] / X.std(), y[:600], X[600:] / X.std())
    return data


def _big_strided():
    """A column-major float32 X of exactly 64 MiB (65536 x 256), made on first use only."""
    import numpy as np
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.standard_normal((65536, 256), dtype=np.float32))
    w = rng.standard_normal(256).astype(np.float32)
    y = (X[:, :16] @ w[:16] > 0).astype(np.int64)
    return X, y, X[:2000]


def _layout(X, dtype, layout):
    import numpy as np
    import scipy.sparse as sp
    if layout == "C":
        return np.ascontiguousarray(X, dtype=dtype)
    if layout == "F":
        return np.asfortranarray(X, dtype=dtype)
    if layout == "colslice":  # rows in place, not contiguous: strides[0] > n_features
        wide = np.zeros((X.shape[0], X.shape[1] + 3), dtype=dtype)
        wide[:, :X.shape[1]] = X
        return wide[:, :X.shape[1]]
    if layout == "csr":
        return sp.csr_matrix(np.asarray(X, dtype=dtype))
    if layout == "csc":
        return sp.csc_matrix(np.asarray(X, dtype=dtype))
    raise ValueError(layout)


def _sample_weight(kind, n):
    import numpy as np
    rng = np.random.RandomState(1)
    if kind == "uniform":
        return rng.uniform(0.5, 2.0, n)
    if kind == "integers":  # zeros included
        return rng.randint(0, 3, n).astype(np.float64)
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------------
# Fingerprints.

def _digest(value):
    """sha256 of a value's exact bytes: arrays with their dtype and shape."""
    import numpy as np
    h = hashlib.sha256()
    arr = np.asarray(value)
    if arr.dtype.kind == "O":  # labels as Python objects: their reprs
        h.update(b"O" + repr(arr.shape).encode() + repr(arr.tolist()).encode())
    else:
        arr = np.ascontiguousarray(arr)
        h.update(arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes())
    return h.hexdigest()


def _exact(x):
    """A scalar kept exactly in JSON: ints as ints, floats by repr (round-trips), None."""
    import numpy as np
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    return repr(float(x))


def _decode_params(params):
    import numpy as np
    out = {}
    for k, v in params.items():
        if k == "hidden_layer_sizes":
            v = tuple(v)
        elif k == "n_iter_no_change" and v == "inf":
            v = np.inf
        elif k == "class_weight" and isinstance(v, dict):
            v = {int(c): w for c, w in v.items()}
        elif k == "class_weight" and isinstance(v, list):
            v = [{int(c): w for c, w in d.items()} for d in v]
        out[k] = v
    return out


def _run_case(spec, data):
    import warnings

    import numpy as np

    import fastmlp

    if spec["data"] == "big_strided":
        X, y, X_test = _big_strided()
    else:
        X, y, X_test = data[spec["data"]]
    dtype = np.dtype(spec["dtype"])
    Xf = X if spec["data"] == "big_strided" else _layout(X, dtype, spec["layout"])
    Xt = X_test if spec["data"] == "big_strided" else _layout(X_test, dtype, spec["layout"])
    sw = _sample_weight(spec["sample_weight"], X.shape[0]) if spec["sample_weight"] else None
    Est = fastmlp.MLPClassifier if spec["est"] == "clf" else fastmlp.MLPRegressor
    record = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = Est(**_decode_params(spec["params"]))
            kw = {} if sw is None else {"sample_weight": sw}
            if spec["mode"] == "fit":
                model.fit(Xf, y, **kw)
            elif spec["mode"] == "warm_start":
                model.fit(Xf, y, **kw)
                record["first_fit"] = _fitted(model)
                model.set_params(max_iter=spec["params"]["max_iter"] // 2 + 3)
                model.fit(Xf, y, **kw)
            elif spec["mode"] == "partial_fit_steady":
                # The first call on the first 64 rows with classes=, then six on each of
                # three 64-row chunks in turn: a steady model's plain calls of one size,
                # which a partial_fit's compiled call (SteadyCall) takes.
                for i in range(19):
                    part = slice(0, 64) if i == 0 else slice(64 * (i % 3), 64 * (i % 3 + 1))
                    extra = {} if i or spec["est"] != "clf" else {
                        "classes": (np.arange(y.shape[1]) if y.ndim == 2 else np.unique(y))}
                    model.partial_fit(Xf[part], y[part], **extra)
            elif spec["mode"] == "partial_fit":
                n = X.shape[0]
                cuts = [0, n // 3, (2 * n) // 3, n]
                for i in range(3):
                    part = slice(cuts[i], cuts[i + 1])
                    extra = {} if sw is None else {"sample_weight": sw[part]}
                    if spec["est"] == "clf" and i == 0:
                        extra["classes"] = (np.arange(y.shape[1]) if y.ndim == 2
                                            else np.unique(y))
                    model.partial_fit(Xf[part], y[part], **extra)
        except Exception as exc:  # a failure is a result too
            record["error"] = f"{type(exc).__name__}: {exc}"
            return record, caught
        # The predictions before the weights are read through coefs_: from the second few-row
        # prediction on, they read the packed copy of W (fastmlp/_serving.py), which taking
        # coefs_ rules out.
        for name, rows in (("test", Xt), ("rows1", Xt[:1]), ("rows3", Xt[:3])):
            try:
                record[f"predict[{name}]"] = _digest(model.predict(rows))
                if spec["est"] == "clf":
                    record[f"predict_proba[{name}]"] = _digest(model.predict_proba(rows))
            except Exception as exc:
                record[f"predict[{name}]"] = f"error {type(exc).__name__}: {exc}"
        try:
            record.update(_fitted(model))
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
    return record, caught


def _fitted(model):
    import numpy as np
    rec = {}
    for i, a in enumerate(model.coefs_):
        rec[f"coefs_[{i}]"] = _digest(a)
    for i, a in enumerate(model.intercepts_):
        rec[f"intercepts_[{i}]"] = _digest(a)
    for name in ("batch_norm_weights_", "batch_norm_biases_", "batch_norm_running_means_",
                 "batch_norm_running_vars_"):
        for i, a in enumerate(getattr(model, name, [])):
            rec[f"{name}[{i}]"] = _digest(a)
    curve = getattr(model, "loss_curve_", None)
    rec["loss_curve_"] = None if curve is None else _digest(np.asarray(curve, dtype=np.float64))
    norms = getattr(model, "gradient_norms_", None)  # each step's per-layer |dLoss/dW|
    rec["gradient_norms_"] = (None if norms is None
                              else _digest(np.asarray(norms, dtype=np.float64)))
    scores = getattr(model, "validation_scores_", None)
    rec["validation_scores_"] = (None if scores is None
                                 else _digest(np.asarray(scores, dtype=np.float64)))
    for name in ("n_iter_", "t_", "loss_", "best_loss_", "best_validation_score_"):
        rec[name] = _exact(getattr(model, name, None))
    if hasattr(model, "classes_"):
        rec["classes_"] = _digest(model.classes_)
    return rec


def run(out, threads, schedule_cpus=None):
    # OpenMP (and BLAS) read the variable when they are loaded: before numpy and fastmlp.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if schedule_cpus is not None:  # the schedule class (fastmlp._runtime.schedule_cpus)
        os.environ["FASTMLP_SCHEDULE_CPUS"] = str(schedule_cpus)
    import platform

    import numpy as np
    import scipy
    import sklearn
    import threadpoolctl

    import fastmlp

    pkg_dir = os.path.dirname(os.path.abspath(fastmlp.__file__))
    # The guard: the compiled modules of the package being fingerprinted are its own (an editable
    # install's finder would otherwise hand an unbuilt tree another tree's engine).
    extensions = {name: os.path.abspath(m.__file__) for name, m in sorted(sys.modules.items())
                  if name.split(".")[0] == "fastmlp" and getattr(m, "__file__", None)
                  and m.__file__.endswith((".so", ".pyd"))}
    foreign = {n: f for n, f in extensions.items() if not f.startswith(pkg_dir + os.sep)}
    if not extensions or foreign:
        sys.exit(f"fastmlp at {pkg_dir} has no compiled engine of its own (loaded: "
                 f"{extensions or 'none'}); build it in place: python setup.py build_ext --inplace")
    openmp = [i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i.get("user_api") == "openmp"]
    if openmp and any(n != threads for n in openmp):
        sys.exit(f"OpenMP runs {openmp} threads, not the {threads} asked for")

    cases = _cases()
    data = _datasets()
    results = {}
    seconds = {}
    start = time.perf_counter()
    for case_id, spec in cases.items():
        t0 = time.perf_counter()
        record, caught = _run_case(spec, data)
        record["warnings"] = sorted({w.category.__name__ for w in caught})
        results[case_id] = {"spec": spec, "result": record}
        seconds[case_id] = time.perf_counter() - t0
    elapsed = time.perf_counter() - start

    meta = {
        "fastmlp": pkg_dir, "fastmlp_version": getattr(fastmlp, "__version__", None),
        "extensions": extensions, "threads": threads, "openmp_threads": openmp,
        "schedule_cpus": _schedule_cpus(),
        "python": platform.python_version(), "machine": platform.machine(),
        "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "seconds": round(elapsed, 1),
        "slowest": [[k, round(seconds[k], 3)]
                    for k in sorted(seconds, key=seconds.get, reverse=True)[:5]],
    }
    with open(out, "w") as f:
        json.dump({"meta": meta, "cases": results}, f, indent=1, sort_keys=True)
    errors = sum("error" in r["result"] for r in results.values())
    print(f"{len(results)} cases ({errors} recorded errors) in {elapsed:.1f} s, "
          f"{threads} thread(s), schedule class {meta['schedule_cpus']}, fastmlp from {pkg_dir} "
          f"-> {out}")


def _schedule_cpus():
    # The class the blocks were cut for (None: a fastmlp from before classes, which cut as 2).
    from fastmlp import _runtime
    return _runtime.schedule_cpus() if hasattr(_runtime, "schedule_cpus") else None


def compare(path_a, path_b):
    with open(path_a) as f:
        a = json.load(f)
    with open(path_b) as f:
        b = json.load(f)
    for key in ("fastmlp", "threads", "schedule_cpus", "numpy", "scipy", "sklearn", "python",
                "machine"):
        va, vb = a["meta"].get(key), b["meta"].get(key)
        print(f"{key}: {va}" + ("" if va == vb else f"  vs  {vb}"))
    ca, cb = a["cases"], b["cases"]
    differing = 0
    for case_id in sorted(set(ca) | set(cb)):
        if case_id not in ca or case_id not in cb:
            differing += 1
            print(f"DIFF {case_id}: only in {path_a if case_id in ca else path_b}")
            continue
        if ca[case_id]["spec"] != cb[case_id]["spec"]:
            differing += 1
            print(f"DIFF {case_id}: parameters (the files come from different tool versions)")
            continue
        ra, rb = ca[case_id]["result"], cb[case_id]["result"]
        fields = [k for k in sorted(set(ra) | set(rb)) if ra.get(k, "<absent>") !=
                  rb.get(k, "<absent>")]
        if fields:
            differing += 1
            print(f"DIFF {case_id}: {', '.join(fields)}")
            for k in fields:
                if k == "error" or k in ("n_iter_", "t_", "loss_", "best_loss_"):
                    print(f"    {k}: {ra.get(k, '<absent>')}  vs  {rb.get(k, '<absent>')}")
    n = len(set(ca) | set(cb))
    if differing:
        print(f"{differing} of {n} cases differ")
        return 1
    print(f"{n} cases, all equal")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="fit the matrix and write its fingerprints")
    p_run.add_argument("--out", required=True)
    p_run.add_argument("--threads", type=int, default=1)
    p_run.add_argument("--schedule-cpus", type=int, default=None,
                       help="the schedule class to cut the blocks for (FASTMLP_SCHEDULE_CPUS); "
                            "default: the machine's")
    p_cmp = sub.add_parser("compare", help="compare two fingerprint files; exit 1 if any differ")
    p_cmp.add_argument("a")
    p_cmp.add_argument("b")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.threads, args.schedule_cpus)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
