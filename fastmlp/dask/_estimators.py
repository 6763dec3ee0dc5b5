"""fastmlp.dask.MLPClassifier / MLPRegressor: one model trained on a Dask cluster.

Design
------
The estimators subclass fastmlp's own, so every parameter, attribute, prediction and pickle is
theirs; only `fit` differs. It validates what dask can check without moving the data (shapes,
chunks, dtype, finiteness, the classes: small reductions computed on the workers), prepares each
row-block as the engine reads it (`map_blocks`), persists those blocks, and then drives rounds
from the client. The data never comes to the client; θ (and the optimizer's state) goes out
once per round as a task of the graph (so that a lost copy is recomputed), results come back through a fixed binary
tree of additions in partition order (fastmlp/dask/_partitions.py), as Spark MLlib's
`treeAggregate`, but with an order that does not depend on which worker finishes first.

solver='lbfgs'. scipy's L-BFGS-B on the client, with the single-machine fit's options; each
function evaluation is one round: every partition's Σ weight x loss and Σ weight x gradient
(with alpha = 0), summed; the client divides by the total weight and adds the L2 term
alpha/2 ||W||² / Σweight once, as the engine does on one machine. Same bits for any number of
workers; one partition gives the single-machine fit up to the rounding of x weight / weight.

Stochastic solvers: local SGD (model averaging). Each round, every partition takes `sync_every`
mini-batch steps of the chosen solver from the shared θ and optimizer state, over its own
rows in an order drawn from (random_state, partition, epoch); then θ is averaged, weighted by the
rows each partition used in the round, in partition order — Zinkevich et al. 2010 ("Parallelized
stochastic gradient descent") average once at the end, Lin et al. 2018 ("Don't use large
mini-batches, use local SGD") every H steps, which is `sync_every`. The optimizer's state is
averaged with θ, the same way: every solver's state vectors (momentum's velocity, Adam's first
and second moments, Adagrad's sums, ...) are running weighted sums of per-step functions of the
gradient, so their row-weighted mean is the state of the averaged trajectory to first order, as
θ's mean is (the "model and momentum averaging" of local momentum SGD, Yu, Jin & Yang 2019).
Keeping them local instead would make each partition's state live on one worker, which a lost
worker would take with it; averaged, everything between rounds is on the client, so a fit
survives any worker. The step counter (Adam's bias correction, schedules) is the longest
partition's. An epoch is every partition's rows once: ceil(max rows / batch / sync_every)
rounds; a partition whose rows are used up sits out the epoch's last rounds.

What a single-machine fit has and this one has not: early_stopping (its validation split would
have to be drawn across partitions), partial_fit (use fit with warm_start, or dask-ml's
Incremental, README "Past one machine") and batch_norm (a batch's statistics would need a round
trip between the workers in the middle of every forward and backward pass); each raises a clear
error.
"""

import copy
import inspect
import time
import warnings
from numbers import Integral

import numpy as np
import scipy.optimize
from sklearn.base import _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

import dask
import dask.array as da
from distributed import default_client, futures_of

from fastmlp import _multilayer_perceptron as _mlp
from fastmlp import _serving
from fastmlp._callbacks import FitTask
from fastmlp._runtime import batch_schedule, schedule_cpus
from fastmlp.dask import _partitions

_DASK_PARAMETERS = ("client", "sync_every")


def _with_dask_parameters(base):
    """__init__ of a subclass of `base` taking every parameter of base plus client and
    sync_every, keyword-only. scikit-learn reads parameter names from the signature of
    __init__ (get_params, clone); the signature is base's own plus ours, so it follows any
    parameter base gains."""
    base_signature = inspect.signature(base.__init__)
    extra = [inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None),
             inspect.Parameter("sync_every", inspect.Parameter.KEYWORD_ONLY, default=16)]
    signature = base_signature.replace(parameters=[*base_signature.parameters.values(), *extra])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        self.client = arguments.pop("client")
        self.sync_every = arguments.pop("sync_every")
        base.__init__(self, **arguments)

    __init__.__signature__ = signature
    return __init__


def _rows_of(X, name):
    """X as a dask array chunked by rows only (a dask DataFrame or Series is converted)."""
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(f"{name} must be a dask array or a dask DataFrame, got "
                        f"{type(X).__name__}; use fastmlp's estimators for in-memory data.")
    if X.ndim == 2 and X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def _share(client, value):
    """value on the cluster as a task of the graph, not scattered data: if the worker that
    holds it dies, the scheduler recomputes it from the task (a scattered value would be
    lost with its last holder, and a broadcast to a dead worker fails)."""
    return client.submit(_partitions.shared_value, value, pure=False)


class _DaskFit:
    """What the dask estimators add to fastmlp's: fit on a cluster, lazy predictions."""

    _parameter_constraints = {
        "client": "no_validation",
        "sync_every": [Interval(Integral, 1, None, closed="left")],
    }

    # -- pickling and prediction: a plain fastmlp estimator underneath ---------------------------

    def __getstate__(self):
        state = super().__getstate__()
        state["client"] = None  # a client is this process's connection, not part of a model
        return state

    def _plain(self):
        """A fastmlp estimator with this one's parameters and fitted state (shared arrays)."""
        plain = self._base.__new__(self._base)
        plain.__dict__.update({k: v for k, v in self.__dict__.items()
                               if k not in _DASK_PARAMETERS})
        return plain

    def _lazy(self, X, method, n_columns):
        X = _rows_of(X, "X")
        plain = self._plain()
        out_dtype = (self.classes_.dtype if method == "predict" and is_classifier(self)
                     else self._theta.dtype)
        if n_columns is None:
            return X.map_blocks(_partitions.predict_block, plain, method=method,
                                drop_axis=1, dtype=out_dtype, chunks=(X.chunks[0],))
        return X.map_blocks(_partitions.predict_block, plain, method=method, dtype=out_dtype,
                            chunks=(X.chunks[0], (n_columns,)))

    def _predict_columns(self):
        # a classifier predicts one label per row (multilabel is not fitted here)
        return None if is_classifier(self) or self.n_outputs_ == 1 else self.n_outputs_

    def predict(self, X):
        """Predictions for X: numpy in, numpy out; a dask array in, a lazy dask array out
        (computed block by block on the workers)."""
        if isinstance(X, da.Array) or hasattr(X, "to_dask_array"):
            self._check_is_fitted()
            return self._lazy(X, "predict", self._predict_columns())
        return super().predict(X)

    # -- fit ---------------------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model on the cluster to dask arrays (chunked by rows) or DataFrames.

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features), or dask DataFrame
        y : dask array or Series of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : dask array of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        if self.early_stopping:
            raise ValueError("early_stopping=True is not supported by fastmlp.dask (its "
                             "validation split would cross partitions); use "
                             "early_stopping=False.")
        if self.batch_norm:
            raise ValueError("batch_norm=True is not supported by fastmlp.dask (a batch's "
                             "statistics would cross the workers in the middle of every pass); "
                             "use batch_norm=False, or fastmlp.MLPClassifier / MLPRegressor on "
                             "one machine.")
        _serving.begin_training(self)  # (it writes the weights: see fastmlp/_serving.py)
        try:
            return self._fit_on_cluster(X, y, sample_weight)
        finally:
            _serving.end_training(self)

    def _fit_on_cluster(self, X, y, sample_weight):
        with self._unchanged_on_error():
            client = self.client if self.client is not None else default_client()
            fit_task = FitTask(self, X, y, sample_weight, task_name="fit",
                               max_subtasks=(self.max_iter + 1 if self.solver == "lbfgs"
                                             else self.max_iter))
            blocks, n_samples = self._prepare(client, X, y, sample_weight)
        try:
            theta = self._packed_parameters()
            if self.solver == "lbfgs":
                self._fit_lbfgs_rounds(client, blocks, theta, fit_task)
            else:
                self._fit_local_sgd(client, blocks, n_samples, theta, fit_task)
        finally:
            del blocks
        return self._check_finite_weights(theta, fit_task)

    def _prepare(self, client, X, y, sample_weight):
        """Validate, initialise, and persist the engine's blocks; the per-partition futures."""
        self._check_solver_options()
        columns = getattr(X, "columns", None)
        X, y = _rows_of(X, "X"), _rows_of(y, "y")
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D X, got {X.ndim} dimension(s).")
        if np.isnan(X.shape[0]) or np.isnan(sum(X.chunks[0])):
            raise ValueError("X's partition lengths are unknown; call compute_chunk_sizes().")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        y = y.rechunk({0: X.chunks[0]})
        dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        if sample_weight is not None:
            sample_weight = _rows_of(sample_weight, "sample_weight")
            if sample_weight.shape != (X.shape[0],):
                raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                                 f"{(X.shape[0],)}!")
            sample_weight = sample_weight.astype(dtype).rechunk(X.chunks[0])

        # One pass of small reductions on the workers: finiteness, classes (and their counts).
        checks = {"finite": da.isfinite(X).all()}
        if is_classifier(self):
            if y.ndim == 2 and y.shape[1] != 1:
                raise ValueError("fastmlp.dask.MLPClassifier takes one label per sample "
                                 "(multilabel y is not supported on a cluster yet).")
            y = y.reshape(-1) if y.ndim == 2 else y
            checks["classes"] = da.unique(y)
        else:
            checks["finite_y"] = da.isfinite(y).all()
        if sample_weight is not None:
            checks["weights_ok"] = (sample_weight >= 0).all() & da.isfinite(sample_weight).all()
        checks = dict(zip(checks, client.compute(list(checks.values()), sync=True)))
        if not checks["finite"] or not checks.get("finite_y", True):
            raise ValueError("Input contains NaN or infinity.")
        if not checks.get("weights_ok", True):
            raise ValueError("sample_weight must be finite and non-negative.")

        first_pass = "_coefs" not in self.__dict__ or not self.warm_start
        if is_classifier(self):
            classes = np.asarray(checks["classes"])
            if not first_pass and set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            if classes.shape[0] < 2:
                raise ValueError(f"The number of classes has to be greater than one; got "
                                 f"{classes.shape[0]} class")
            if first_pass:
                self._label_binarizer = LabelBinarizer().fit(classes)
                self.classes_ = self._label_binarizer.classes_
            Y = y.map_blocks(_partitions.binarize_block, self._label_binarizer, dtype,
                             dtype=dtype, new_axis=1,
                             chunks=(y.chunks[0], (max(1, len(self.classes_) - (len(self.classes_) == 2)),)))
            sample_weight = self._class_weights(y, sample_weight, dtype, client)
        else:
            Y = y.map_blocks(_partitions.target_block, dtype, dtype=dtype,
                             **({"new_axis": 1, "chunks": (y.chunks[0], (1,))}
                                if y.ndim == 1 else {}))
        if first_pass:
            self.n_features_in_ = X.shape[1]
            if columns is not None and all(isinstance(c, str) for c in columns):
                self.feature_names_in_ = np.asarray(list(columns), dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")

        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        layer_units = [X.shape[1]] + hidden + [Y.shape[1]]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(np.empty((0, Y.shape[1])), layer_units, dtype)
        elif layer_units != self._layer_units:
            raise ValueError(f"The network's layer sizes {layer_units} differ from the fitted "
                             f"ones {self._layer_units}; hidden_layer_sizes and the number of "
                             "outputs cannot change with warm_start.")
        self.n_outputs_ = Y.shape[1]

        Xe = X.map_blocks(_partitions.prepare_block, dtype, dtype=dtype)
        arrays = [Xe, Y] + ([sample_weight] if sample_weight is not None else [])
        persisted = client.persist(arrays)
        per_array = []
        for array in persisted:
            futures = {f.key: f for f in futures_of(array)}
            per_array.append([futures[k] for k in dask.core.flatten(array.__dask_keys__())])
        if sample_weight is None:
            per_array.append([None] * len(per_array[0]))
        blocks = list(zip(*per_array))
        return {"futures": blocks, "rows": list(X.chunks[0])}, X.shape[0]

    def _class_weights(self, y, sample_weight, dtype, client):
        return sample_weight

    def _worker_model(self, alpha=None):
        """What a worker needs to build the engine's Network: a plain estimator with the
        network's attributes (alpha replaced for the partition sums)."""
        model = self._base.__new__(self._base)
        for name in self._base._get_param_names():
            setattr(model, name, getattr(self, name))
        if alpha is not None:
            model.alpha = alpha
        model._layer_units = list(self._layer_units)
        model.out_activation_ = self.out_activation_
        model._maxout_pieces = self._maxout_pieces
        return model

    # -- rounds ----------------------------------------------------------------------------------

    @staticmethod
    def _tree(client, results):
        """The sum of the results, added pairwise in partition order (a fixed tree)."""
        while len(results) > 1:
            pairs = [client.submit(_partitions.tree_sum, results[i], results[i + 1],
                                   pure=False)
                     for i in range(0, len(results) - 1, 2)]
            results = pairs + ([results[-1]] if len(results) % 2 else [])
        return results[0].result()

    def _fit_lbfgs_rounds(self, client, blocks, theta, fit_task):
        model = _share(client, self._worker_model(alpha=0.0))
        n_coefs = sum(c.size for c in self._coefs)
        alpha = float(self.alpha)
        accepted = {"x": theta.astype(np.float64), "nit": 0}
        task_callback = fit_task.lbfgs_callback(theta)
        evaluations = [0]
        # The workers cut their blocks for the client's schedule class, so that the fit's bits
        # do not depend on which machine of a mixed cluster takes which partition.
        schedule = schedule_cpus()

        def loss_and_gradient(packed):
            start = time.perf_counter()
            theta[...] = packed
            shared = _share(client, theta.copy())
            parts = [client.submit(_partitions.loss_gradient_sums, model, shared, X, Y, w,
                                   schedule, pure=False)
                     for X, Y, w in blocks["futures"]]
            loss_sum, grad_sum, weight = self._tree(client, parts)
            coefs = theta[:n_coefs]
            loss = loss_sum / weight + 0.5 * alpha * float(np.dot(coefs, coefs)) / weight
            grad = grad_sum.astype(np.float64) / weight
            grad[:n_coefs] += alpha * coefs.astype(np.float64) / weight
            evaluations[0] += 1
            if self.verbose:
                print("Round %d, loss = %.8f (%d partitions, %.3f s)"
                      % (evaluations[0], loss, len(parts), time.perf_counter() - start))
            return loss, grad

        bounds = (None if self.weight_clip is None
                  else scipy.optimize.Bounds(-self.weight_clip, self.weight_clip))

        def callback(intermediate_result):
            accepted.update(x=intermediate_result.x.copy(), nit=accepted["nit"] + 1)
            if task_callback is not None:
                task_callback(intermediate_result)

        result = scipy.optimize.minimize(
            loss_and_gradient, accepted["x"], method="L-BFGS-B", jac=True, bounds=bounds,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            callback=callback,
        )
        fit_task.close_lbfgs()
        self.n_iter_ = (min(result.nit, self.max_iter) if fit_task.stopped
                        else _mlp._check_optimize_result(result, self.max_iter))
        self.loss_ = result.fun
        theta[...] = result.x

    def _fit_local_sgd(self, client, blocks, n_samples, theta, fit_task):
        self._optimizer = self._make_optimizer(theta.shape[0], theta.dtype)
        optimizer = self._optimizer
        rows = blocks["rows"]
        batch_size = (min(200, n_samples) if self.batch_size == "auto"
                      else int(np.clip(self.batch_size, 1, n_samples)))
        if self.batch_size != "auto" and self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped")
        # As on one machine, dropout's seed only when there is dropout; then the order's seed.
        dropout_seed = (int(self._random_state.randint(0, 2**62, dtype=np.int64))
                        if self.dropout > 0 else 0)
        order_seed = int(self._random_state.randint(0, 2**31 - 1))
        model = _share(client, self._worker_model())
        # the client's, for every worker (_fit_lbfgs_rounds: why)
        schedule = batch_schedule(batch_size, theta.shape[0])
        batches = [-(-n // batch_size) for n in rows]
        rounds_per_epoch = -(-max(batches) // self.sync_every)
        n_round = 0
        for it in range(self.max_iter):
            fit_task.begin_iteration(theta)
            loss_sum = 0.0
            for k in range(rounds_per_epoch):
                start = time.perf_counter()
                shared = _share(client, (theta.copy(), copy.deepcopy(optimizer)))
                first = k * self.sync_every
                parts = []
                for p, (X, Y, w) in enumerate(blocks["futures"]):
                    n_batches = min(self.sync_every, batches[p] - first)
                    if n_batches <= 0:
                        continue
                    trainer_args = {
                        "dropout_seed": (int(np.random.SeedSequence([dropout_seed, p])
                                             .generate_state(2, np.uint32).view(np.uint64)[0]
                                             >> 2) if self.dropout > 0 else 0),
                        "max_grad_norm": self.max_grad_norm or 0.0,
                        "weight_clip": self.weight_clip or 0.0,
                        "schedule_cpus": schedule,
                    }
                    rows_args = (order_seed, p, self.n_iter_, first, n_batches, batch_size,
                                 self.shuffle)
                    parts.append(client.submit(_partitions.local_steps, model, shared, X, Y, w,
                                               rows_args, batch_size, trainer_args,
                                               pure=False))
                total = self._tree(client, parts)
                scale = theta.dtype.type(total["rows"])
                theta[...] = total["theta"] / scale
                for mine, summed in zip(optimizer.state, total["state"]):
                    if len(mine):
                        mine[...] = summed / scale
                optimizer.t = total["t"]
                if total["mu_product"] is not None:
                    optimizer.mu_product = total["mu_product"]
                loss_sum += total["loss_sum"]
                n_round += 1
                if self.verbose:
                    print("Round %d (epoch %d), loss = %.8f (%d partitions, %.3f s)"
                          % (n_round, self.n_iter_ + 1, total["loss_sum"] / total["rows"],
                             len(parts), time.perf_counter() - start))
            self.n_iter_ += 1
            self.loss_ = loss_sum / n_samples
            self.t_ += n_samples
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            self._update_no_improvement_count(False, None, None, None)
            optimizer.iteration_ends(self.t_)
            if fit_task.end_iteration(theta):
                break
            if self._no_improvement_count > self.n_iter_no_change:
                msg = ("Training loss did not improve more than tol=%f for %d consecutive "
                       "epochs." % (self.tol, self.n_iter_no_change))
                if optimizer.trigger_stopping(msg, self.verbose):
                    break
                self._no_improvement_count = 0
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % self.max_iter,
                              ConvergenceWarning)


class MLPClassifier(_DaskFit, _mlp.MLPClassifier):
    """fastmlp's MLPClassifier, fitted on a Dask cluster.

    Every parameter of fastmlp.MLPClassifier, plus:

    client : distributed.Client, default=None
        The cluster to fit on; None uses the current client (`distributed.default_client()`).
    sync_every : int, default=16
        Stochastic solvers: the local mini-batch steps each partition takes between two
        averages of θ and the optimizer's state (local SGD). Ignored by 'lbfgs'.
    """

    _base = _mlp.MLPClassifier
    _parameter_constraints = {**_mlp.MLPClassifier._parameter_constraints,
                              **_DaskFit._parameter_constraints}
    __init__ = _with_dask_parameters(_mlp.MLPClassifier)

    def _class_weights(self, y, sample_weight, dtype, client):
        """sample_weight times class_weight's, computed per block; 'balanced' from the
        class counts (weighted by sample_weight when given) over all partitions."""
        if self.class_weight is None:
            return sample_weight
        class_weight = self.class_weight
        if isinstance(class_weight, str):  # 'balanced': n / (n_classes x count)
            codes = y.map_blocks(np.searchsorted, self.classes_, dtype=np.intp)
            counts = da.bincount(codes, weights=sample_weight,
                                 minlength=len(self.classes_)).compute()
            class_weight = dict(zip(self.classes_, counts.sum() / (len(counts) * counts)))
        weights = y.map_blocks(_class_weight_block, class_weight, dtype, dtype=dtype)
        return weights if sample_weight is None else weights * sample_weight

    def predict_proba(self, X):
        """Probability estimates; on a dask array, a lazy dask array."""
        if isinstance(X, da.Array) or hasattr(X, "to_dask_array"):
            self._check_is_fitted()
            return self._lazy(X, "predict_proba", len(self.classes_))
        return super().predict_proba(X)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Not on a cluster: use fit (with warm_start) or dask-ml's Incremental."""
        raise NotImplementedError(
            "fastmlp.dask.MLPClassifier has no partial_fit; use fit with warm_start=True, or "
            "fastmlp.MLPClassifier inside dask_ml.wrappers.Incremental.")


def _class_weight_block(y, class_weight, dtype):
    from sklearn.utils.class_weight import compute_sample_weight
    return np.ascontiguousarray(compute_sample_weight(class_weight, y), dtype=dtype)


class MLPRegressor(_DaskFit, _mlp.MLPRegressor):
    """fastmlp's MLPRegressor, fitted on a Dask cluster.

    Every parameter of fastmlp.MLPRegressor, plus `client` and `sync_every`
    (see fastmlp.dask.MLPClassifier).
    """

    _base = _mlp.MLPRegressor
    _parameter_constraints = {**_mlp.MLPRegressor._parameter_constraints,
                              **_DaskFit._parameter_constraints}
    __init__ = _with_dask_parameters(_mlp.MLPRegressor)

    def partial_fit(self, X, y, sample_weight=None):
        """Not on a cluster: use fit (with warm_start) or dask-ml's Incremental."""
        raise NotImplementedError(
            "fastmlp.dask.MLPRegressor has no partial_fit; use fit with warm_start=True, or "
            "fastmlp.MLPRegressor inside dask_ml.wrappers.Incremental.")
