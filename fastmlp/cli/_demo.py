"""`fastmlp demo`: the README's first command; `fastmlp demo --vanishing`: the lectures'
vanishing gradient (the same experiment as examples/vanishing_gradients.py, which is written as a
user's script: keep the two alike)."""

import os
import time
import warnings


def demo(args):
    """Train on scikit-learn's bundled digits; print accuracy and fit time beside scikit-learn's.
    With --vanishing: a deep logistic network's vanishing gradient, and the lectures' cures."""
    if args.vanishing:
        return vanishing(args)
    import numpy as np
    import sklearn
    import sklearn.neural_network as sk
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from fastmlp._multilayer_perceptron import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.dtype(args.dtype))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    params = dict(hidden_layer_sizes=tuple(args.hidden or (100,)),
                  max_iter=args.epochs or 200, random_state=args.seed)
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} held-out images of "
          f"{X.shape[1]} pixels, {args.dtype}; MLPClassifier({params})")
    results = {}
    for name, Classifier in (("fastmlp", MLPClassifier),
                             (f"scikit-learn {sklearn.__version__}", sk.MLPClassifier)):
        clf = Classifier(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clf.fit(X_train, y_train)
            seconds = time.perf_counter() - start
        results[name] = seconds
        print(f"  {name:22s} accuracy {clf.score(X_test, y_test):.4f}   fit {seconds:7.3f} s   "
              f"({clf.n_iter_} epochs)")
    ours, theirs = results.values()
    print(f"  fastmlp fits {theirs / ours:.1f}x faster")
    return 0


# The lectures' cures, each beside the problem: (name, parameters over the deep network's).
VANISHING_RUNS = (
    ("logistic", {"activation": "logistic"}),
    ("logistic, 2 layers", {"activation": "logistic", "layers": 2}),
    ("logistic + max_grad_norm=1", {"activation": "logistic", "max_grad_norm": 1.0}),
    ("logistic + batch_norm", {"activation": "logistic", "batch_norm": True}),
    ("tanh", {"activation": "tanh"}),
    ("relu", {"activation": "relu"}),
    ("silu (swish)", {"activation": "silu"}),
    ("mish", {"activation": "mish"}),
)


def vanishing(args):
    """Deep networks on the digits: held-out accuracy and the first / last layer's gradient norm
    (gradient_norms_) per activation; --plot FILE draws every run's norms per layer."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from fastmlp._multilayer_perceptron import MLPClassifier
    from fastmlp.cli._messages import UsageError

    hidden, epochs = args.hidden or (32,) * 8, args.epochs or 30
    layers, units = len(hidden), hidden[0]
    if args.plot and os.path.exists(args.plot):
        raise UsageError(f"{args.plot}: exists; name a new file for the plot")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=args.seed,
                                                        stratify=y)
    print(f"{layers} hidden layers of {units} units (unless said), SGD (momentum 0.9), "
          f"{epochs} epochs, digits ({X_train.shape[0]} training / {X_test.shape[0]} "
          "held-out images)")
    print(f"{'network':<28} {'held-out accuracy':>17} {'first/last layer |grad|':>24}")
    fitted = []
    for name, params in VANISHING_RUNS:
        params = dict(params)
        hidden = (units,) * params.pop("layers", layers)
        clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.05,
                            max_iter=epochs, random_state=args.seed, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X_train, y_train)
        norms = clf.gradient_norms_.mean(axis=0)
        print(f"{name:<28} {clf.score(X_test, y_test):>17.3f} {norms[0] / norms[-1]:>24.2e}")
        fitted.append((name, clf))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from fastmlp._plot import plot_gradient_norms
        fig, axes = plt.subplots(2, 4, figsize=(20, 8), sharey=True)
        for ax, (name, clf) in zip(axes.ravel(), fitted):
            plot_gradient_norms(clf, ax=ax)
            ax.set_title(name)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}")
    return 0
