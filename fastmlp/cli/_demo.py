"""`fastmlp demo`: the README's first command."""

import time
import warnings


def demo(args):
    """Train on scikit-learn's bundled digits; print accuracy and fit time beside scikit-learn's."""
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
    params = dict(hidden_layer_sizes=tuple(args.hidden),
                  max_iter=args.epochs, random_state=args.seed)
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
