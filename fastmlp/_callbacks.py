"""scikit-learn's callback API (`sklearn.callback`) on fastmlp's fits; a plain-text progress line.

Design
------
scikit-learn >= 1.9 defines callbacks for estimators (`set_callbacks`, `ProgressBar`,
`ScoringMonitor`); its own MLP does not take part, fastmlp's estimators do. They follow the
pattern of the scikit-learn estimators that support callbacks (LogisticRegression,
StandardScaler): each call to `fit` or `partial_fit` is a root task, opened after validation and
closed at the end; each epoch of 'sgd'/'adam' and each iteration of 'lbfgs' is a sub-task
(`task_name` "epoch" / "lbfgs-iter"). `_fit_context` already wraps `fit` and `partial_fit` in
scikit-learn's `callback_management_context`, which tears the callbacks down however fit ends.

A callback's `on_fit_task_end` returning True stops the iterations after that epoch or
iteration, the way scikit-learn's API defines it: the fit then ends normally (best weights
restored under early_stopping, no ConvergenceWarning, `n_iter_` the iterations done).

Hooks get X, y and sample_weight as the caller passed them to fit (so a scorer sees the labels
and feature names a user would), and, only if a hook's signature asks for `fitted_estimator`,
a copy of the estimator holding a copy of the weights at that point. The hooks never touch the
random state or the weights: a fit with callbacks is bitwise the fit without.

Where the installed scikit-learn has no `sklearn.callback`, the mixin below has no
`set_callbacks` (asking for it says why) and every hook is a no-op, so fitting works the same.
"""

import sys
import time

import sklearn

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9: no callback API

    class CallbackSupportMixin:
        """Stand-in for scikit-learn's mixin where scikit-learn has no callback API."""

        @property
        def set_callbacks(self):
            # An AttributeError, so that hasattr(estimator, "set_callbacks") stays False (the
            # command line asks so before it shows progress), with the reason in it.
            raise AttributeError(
                "set_callbacks needs scikit-learn's callback API (sklearn.callback, scikit-learn "
                f">= 1.9); the installed scikit-learn is {sklearn.__version__}"
            )


class FitTask:
    """The callbacks' view of one call to fit or partial_fit: the root task and its iterations.

    Parameters
    ----------
    estimator : BaseMultilayerPerceptron
        Read through its public fitted attributes (`loss_`, `validation_scores_`) and one
        method, `_reconstruction_attributes(theta)`, which gives a copy of it the weights of an
        iteration: only the estimator knows how its flat weight vector is laid out.
    X, y, sample_weight : as passed to fit by the caller
    task_name : str
        "fit" or "partial_fit".
    max_subtasks : int
        The most iterations this task can run (scikit-learn's contexts check it).
    """

    def __init__(self, estimator, X, y, sample_weight, *, task_name, max_subtasks):
        self._estimator = estimator
        self._hook_args = dict(
            X=X, y=y, metadata=None if sample_weight is None else {"sample_weight": sample_weight}
        )
        self._iteration = None
        self.stopped = False
        # An estimator with no callbacks of its own and none from a meta-estimator gets no
        # context: nobody could see it, and making one (a uuid, a timestamp, the callbacks'
        # bookkeeping) costs ~15 us of a small partial_fit.
        init = (getattr(estimator, "_init_callback_context", None)
                if hasattr(estimator, "_skl_callbacks")
                or hasattr(estimator, "_parent_callback_ctx") else None)
        self._context = (None if init is None
                         else init(task_name=task_name, max_subtasks=max_subtasks))
        if self._context is not None:
            self._context.call_on_fit_task_begin(estimator=estimator, **self._hook_args)

    def begin_iteration(self, theta, task_name="epoch"):
        if self._context is None:
            return
        self._iteration = self._context.subcontext(task_name=task_name)
        self._iteration.call_on_fit_task_begin(
            estimator=self._estimator, **self._hook_args,
            reconstruction_attributes=lambda: self._estimator._reconstruction_attributes(theta),
        )

    def end_iteration(self, theta):
        """Close the current iteration's task; True when a callback asks to stop."""
        if self._context is None or self._iteration is None:
            return False
        iteration, self._iteration = self._iteration, None
        self.stopped = bool(iteration.call_on_fit_task_end(
            estimator=self._estimator, **self._hook_args,
            reconstruction_attributes=lambda: self._estimator._reconstruction_attributes(theta),
        ))
        return self.stopped

    def lbfgs_callback(self, theta):
        """A callback for scipy's L-BFGS-B (None without callback support): each of scipy's
        iterations is a sub-task; a stop request raises StopIteration, which ends scipy's run."""
        if self._context is None:
            return None
        self.begin_iteration(theta, "lbfgs-iter")

        def callback(intermediate_result):
            # The loss at this iterate, so callbacks (and the progress line) can show it;
            # fit sets loss_ to the final one after the run.
            self._estimator.loss_ = float(intermediate_result.fun)
            if self.end_iteration(intermediate_result.x):
                raise StopIteration
            self.begin_iteration(intermediate_result.x, "lbfgs-iter")

        return callback

    def close_lbfgs(self):
        """scipy's last callback opened an iteration that never ran: close it as an empty
        task (as scikit-learn's LogisticRegression does)."""
        if self._iteration is not None:
            self._iteration.call_on_fit_task_end(estimator=self._estimator)
            self._iteration = None

    def end(self):
        if self._context is not None:
            self._context.call_on_fit_task_end(
                estimator=self._estimator, **self._hook_args, reconstruction_attributes={}
            )


class _NoCallbacks:
    """The FitTask of a call that no callback can see: a partial_fit's steady path, taken only
    by a model with no callbacks of its own and none from a meta-estimator (for which FitTask
    makes no context either, and does nothing). Making a FitTask cost ~1.5 us of such a call."""

    stopped = False

    def begin_iteration(self, theta, task_name="epoch"):
        pass

    def end_iteration(self, theta):
        return False

    def end(self):
        pass


NO_CALLBACKS = _NoCallbacks()


class TrainingProgress:
    """A callback that shows one line of progress per epoch: epochs done, loss, validation
    score (with ``early_stopping=True``), time spent and an estimate of the time left.

    It needs no other package (scikit-learn's `sklearn.callback.ProgressBar` needs rich). On a
    terminal the line is redrawn in place; otherwise (a file, a pipe, a CI log) a line is
    written at most every `interval` seconds, and always for the last epoch.

    Parameters
    ----------
    file : file-like, default=None
        Where to write; None means ``sys.stderr`` at the time of the fit.
    interval : float, default=1.0
        Least time in seconds between two lines when `file` is not a terminal.

    Examples
    --------
    >>> from fastmlp import MLPClassifier, TrainingProgress
    >>> clf = MLPClassifier().set_callbacks(TrainingProgress())  # doctest: +SKIP
    """

    def __init__(self, file=None, interval=1.0):
        self.file = file
        self.interval = interval

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def _out(self):
        return self.file if self.file is not None else sys.stderr

    def on_fit_task_begin(self, estimator, context):
        if context.max_subtasks != 0:  # the fit (or partial_fit) itself
            self._start = time.perf_counter()
            self._total = min(context.max_subtasks, getattr(estimator, "max_iter", 0)) or None
            self._last_line = ""
            self._last_written = None
            self._pending = False
            out = self._out()
            self._tty = bool(getattr(out, "isatty", lambda: False)())

    def on_fit_task_end(self, estimator, context, *, X=None):
        if not hasattr(self, "_start"):
            return False
        if context.max_subtasks == 0 and context.parent is not None:  # an iteration
            if X is None:
                return False  # the empty task that closes an L-BFGS run
            self._last_line = self._line(estimator, context.task_id + 1, context.task_name)
            now = time.perf_counter()
            if self._tty or self._last_written is None or now - self._last_written >= self.interval:
                self._write(self._last_line)
                self._last_written, self._pending = now, False
            else:
                self._pending = True
        elif context.max_subtasks != 0:  # the end of the fit
            if self._pending:
                self._write(self._last_line)
            if self._tty and self._last_line:
                self._out().write("\n")
            self._out().flush()
            del self._start
        return False

    def _line(self, estimator, done, task_name):
        elapsed = time.perf_counter() - self._start
        word = "epoch" if task_name == "epoch" else "iteration"
        if self._total:
            width = len(str(self._total))
            filled = int(20 * done / self._total)
            text = f"{word} {done:>{width}}/{self._total} [{'#' * filled}{'.' * (20 - filled)}]"
        else:
            text = f"{word} {done}"
        text += f"  loss {estimator.loss_:.6f}"
        scores = getattr(estimator, "validation_scores_", None)
        if scores:
            text += f"  validation {scores[-1]:.4f}"
        text += f"  {_duration(elapsed)}"
        if self._total and done < self._total:
            text += f", at most {_duration(elapsed / done * (self._total - done))} left"
        return text

    def _write(self, line):
        out = self._out()
        if self._tty:
            out.write("\r" + line + "\x1b[K")
        else:
            out.write(line + "\n")
        out.flush()


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d} h"
