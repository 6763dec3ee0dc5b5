"""Real data: scikit-learn's bundled handwritten digits, held out."""
import warnings

import numpy as np
import sklearn.neural_network as sk

import fastmlp

SEEDS = [0, 1, 2]


def held_out_accuracies(module, digits_split, dtype):
    X_train, X_test, y_train, y_test = digits_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    scores = []
    for seed in SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = module.MLPClassifier(random_state=seed, max_iter=300).fit(X_train, y_train)
        if module is not sk:
            assert all(c.dtype == dtype for c in clf.coefs_ + clf.intercepts_)
            assert clf.predict_proba(X_test).dtype == dtype
        scores.append(clf.score(X_test, y_test))
    return np.array(scores)


def test_digits_float64_accuracy_equals_scikit_learn(digits_split):
    ours = held_out_accuracies(fastmlp, digits_split, np.float64)
    theirs = held_out_accuracies(sk, digits_split, np.float64)
    assert ours.min() >= 0.96
    # float64 follows scikit-learn's trajectory to the last bits: the same predictions.
    np.testing.assert_array_equal(ours, theirs)


def test_digits_float32_accuracy_matches_scikit_learn(digits_split):
    ours = held_out_accuracies(fastmlp, digits_split, np.float32)
    theirs = held_out_accuracies(sk, digits_split, np.float32)
    assert ours.min() >= 0.96
    # In float32 the two differ in the last bit of exp and of some sums, and 300 epochs turn
    # that into a different (equally good) local optimum: compare the mean over seeds, within
    # one test sample of 450.
    assert ours.mean() >= theirs.mean() - 1 / 450 - 1e-12
