"""The lectures' vanishing gradient, on the digits: a deep network of logistic units barely
trains its first layers, and the cures put the gradient back.

    python examples/vanishing_gradients.py [--layers 8] [--epochs 30] [--plot FILE.png]

Each layer of backpropagation multiplies the delta by W^T and by σ'(z); the logistic's σ' is at
most 1/4, so after eight layers the first layer's gradient is orders of magnitude smaller than
the last's (`gradient_norms_` records each layer's |dLoss/dW| per epoch). ReLU's derivative is 1
where a unit is active, so the product does not shrink layer after layer. Batch normalization
(batch_norm=True) keeps every layer's z at mean 0 and variance 1 over the batch, where the
logistic's slope is near its 1/4 peak, not out in its flat tails. Clipping the gradient's
norm (max_grad_norm) is the cure for the opposite problem, exploding gradients: it is run here to
show that it does not help a vanishing one. `fastmlp demo --vanishing` runs the same experiment
(fastmlp/cli/_demo.py); this file is the script a user would write, kept standalone.
"""
import argparse
import os
import sys
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastmlp import MLPClassifier, plot_gradient_norms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8, help="hidden layers (default 8)")
    parser.add_argument("--units", type=int, default=32, help="units per hidden layer")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--plot", metavar="FILE", help="write the gradient norms' plot here "
                        "(a new file: an existing one is never overwritten)")
    args = parser.parse_args(argv)
    if args.plot and os.path.exists(args.plot):
        sys.exit(f"error: {args.plot} exists; name a new file for the plot")

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0,
                                                        stratify=y)
    hidden = (args.units,) * args.layers
    runs = {  # the lectures' cures, each beside the problem
        "logistic": dict(activation="logistic"),
        "logistic, 2 layers": dict(activation="logistic", hidden_layer_sizes=hidden[:2]),
        "logistic + max_grad_norm=1": dict(activation="logistic", max_grad_norm=1.0),
        "logistic + batch_norm": dict(activation="logistic", batch_norm=True),
        "tanh": dict(activation="tanh"),
        "relu": dict(activation="relu"),
        "silu (swish)": dict(activation="silu"),
        "mish": dict(activation="mish"),
    }
    print(f"{args.layers} hidden layers of {args.units} units (unless said), SGD (momentum 0.9), "
          f"{args.epochs} epochs, digits (1,347 training / 450 held-out images)")
    print(f"{'network':<28} {'held-out accuracy':>17} {'first/last layer |grad|':>24}")
    fitted = {}
    for name, params in runs.items():
        params = {"hidden_layer_sizes": hidden, **params}
        clf = MLPClassifier(solver="sgd", learning_rate_init=0.05, max_iter=args.epochs,
                            random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train)
        norms = clf.gradient_norms_.mean(axis=0)  # each layer's mean over the epochs
        print(f"{name:<28} {clf.score(X_test, y_test):>17.3f} {norms[0] / norms[-1]:>24.2e}")
        fitted[name] = clf

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(2, 4, figsize=(20, 8), sharey=True)
        for ax, (name, clf) in zip(axes.ravel(), fitted.items()):
            plot_gradient_norms(clf, ax=ax)
            ax.set_title(name)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
