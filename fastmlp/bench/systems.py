"""The in-process systems: fastmlp, scikit-learn's MLPClassifier and a plain PyTorch CPU loop
(the compiled peers, each in a child process of its own, are in peers.py).

Design
------
Each system is a small runner with one interface — `fit_epoch(X, y)` trains one epoch,
`predict_proba(X)`, `set_threads(n)` — so the timing code never asks which system it holds.
All train the same network with the same batch size, optimizer (Adam, learning rate 1e-3) and
L2 penalty (scikit-learn's alpha=1e-4), and report the last epoch's mean loss (`final_loss`):
for the two estimators an epoch is one `partial_fit` call (the first, with `classes=`, is the
warm-up epoch the caller does not time); for PyTorch, one pass of the training loop. PyTorch is
imported only when asked for and is a peer only when installed (`torch_available`).
"""
import warnings

import numpy as np

from .workloads import N_CLASSES

IN_PROCESS = ("fastmlp", "sklearn", "torch")
ALPHA = 1e-4  # scikit-learn's default L2 penalty; the PyTorch loops and the peers add the same


class EstimatorSystem:
    """fastmlp's or scikit-learn's MLPClassifier; an epoch is one partial_fit call."""

    def __init__(self, name, workload, seed=0):
        if name == "fastmlp":
            from .._multilayer_perceptron import MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier
        self.name = name
        self.model = MLPClassifier(hidden_layer_sizes=workload.hidden,
                                   batch_size=workload.batch_size, random_state=seed)
        self.started = False

    def fit_epoch(self, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.started:
                self.model.partial_fit(X, y)
            else:
                self.model.partial_fit(X, y, classes=np.arange(N_CLASSES))
                self.started = True

    @property
    def final_loss(self):
        return float(self.model.loss_)  # the last epoch's mean, L2 penalty included

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def set_threads(self, n):
        pass  # OpenMP and BLAS limits are set by the caller through threadpoolctl

    def thread_batches(self):
        """fastmlp's full batches so far as (run on one thread, on more): where more are
        allowed, its run-time choice, or a batch too small to share, may still give one. None
        for scikit-learn, and before the first epoch."""
        if self.name != "fastmlp" or not self.started:
            return None
        counts = self.model._network().thread_batches.values()
        return sum(one for one, _ in counts), sum(more for _, more in counts)


class TorchSystem:
    """The plain PyTorch CPU loop: Linear/ReLU layers, cross-entropy plus scikit-learn's L2
    penalty (0.5 x alpha x sum of squared weights / batch rows), Adam(lr=1e-3), shuffled
    mini-batches by torch.randperm indexing (no DataLoader), in the workload's dtype.
    compile=True: the model and the optimizer's step compiled by torch.compile (inductor).
    The weights start Glorot-uniform and the biases at zero, as the JAX and Keras peers' do
    (scikit-learn's bound for relu, sqrt(6 / (fan_in + fan_out))): with torch's own default
    (bounds of 1 / sqrt(fan_in)) the L2 term, which is most of the loss on these separable
    blobs, read 0.4x the others' (`wide`: 7.9e-05 against 1.96e-04), as if another problem."""

    def __init__(self, workload, seed=0, compile=False):
        import torch
        self.torch = torch
        torch.manual_seed(seed)
        dtype = torch.float64 if workload.dtype == "float64" else torch.float32
        widths = (workload.n_features, *workload.hidden, N_CLASSES)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(fan_in, fan_out, dtype=dtype))
            torch.nn.init.xavier_uniform_(layers[-1].weight)
            torch.nn.init.zeros_(layers[-1].bias)
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        self.name = "torch-compile" if compile else "torch"
        self.model = torch.nn.Sequential(*layers)
        self.weights = [m.weight for m in layers if isinstance(m, torch.nn.Linear)]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch_size = workload.batch_size
        self.final_loss = float("nan")
        self._tensors = (None, None, None)
        self.forward, self.step = self.model, self.optimizer.step
        if compile:
            # torch's recipe for a compiled optimizer: the step in a function of no arguments
            self.forward = torch.compile(self.model)
            self.step = torch.compile(lambda: self.optimizer.step())

    def _as_tensors(self, X, y):
        # Converted once per dataset, outside the timed epoch: torch.from_numpy shares X's memory.
        if self._tensors[0] is not X:
            self._tensors = (X, self.torch.from_numpy(X),
                             self.torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
        return self._tensors[1], self._tensors[2]

    def fit_epoch(self, X, y):
        torch = self.torch
        Xt, yt = self._as_tensors(X, y)
        self.model.train()
        order = torch.randperm(Xt.shape[0])
        total = 0.0
        for start in range(0, Xt.shape[0], self.batch_size):
            index = order[start:start + self.batch_size]
            penalty = sum(W.square().sum() for W in self.weights) * (0.5 * ALPHA / len(index))
            loss = self.loss(self.forward(Xt[index]), yt[index]) + penalty
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.step()
            total = total + loss.detach() * len(index)
        self.final_loss = float(total) / Xt.shape[0]

    def predict_proba(self, X):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.forward(torch.from_numpy(X)), dim=1).numpy()

    def set_threads(self, n):
        self.torch.set_num_threads(n)


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_system(name, workload, threads, seed=0):
    if name == "torch":
        system = TorchSystem(workload, seed)
        system.set_threads(threads)
        return system
    return EstimatorSystem(name, workload, seed)
