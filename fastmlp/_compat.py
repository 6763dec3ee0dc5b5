"""What older releases of fastmlp's dependencies need, in one place.

fastmlp supports about two years of numpy, scipy and scikit-learn (pyproject.toml gives the
minimums; .ci/oldest.txt pins the oldest set, on which CI runs the whole suite). Each shim below
names the release that needs it; when the minimum passes that release, delete the shim and
import the name from scikit-learn directly. The newest releases never take a shim's path.

What needs a newer scikit-learn and has no shim degrades instead: `sklearn.callback` (1.9) is
absent before it: fits run the same without callbacks, and `set_callbacks` raises an
AttributeError that says what is missing (_callbacks.py).
"""
import inspect

import numpy as np
import sklearn
from sklearn.utils import class_weight as _class_weight
from sklearn.utils.fixes import parse_version

SKLEARN_VERSION = parse_version(sklearn.__version__).release  # a tuple: (1, 5, 0)

try:
    from sklearn.utils.validation import validate_data
except ImportError:
    # scikit-learn < 1.6: validation is the method BaseEstimator._validate_data, and its
    # `ensure_all_finite` is called `force_all_finite`.
    def validate_data(estimator, /, X="no_validation", y="no_validation", **check_params):
        if "ensure_all_finite" in check_params:
            check_params["force_all_finite"] = check_params.pop("ensure_all_finite")
        return estimator._validate_data(X, y, **check_params)


if "sample_weight" in inspect.signature(_class_weight.compute_class_weight).parameters:
    compute_class_weight = _class_weight.compute_class_weight
else:
    # scikit-learn < 1.7: compute_class_weight takes no sample_weight. Its checks and errors,
    # then 1.7's weighted 'balanced' rule: total weight / (n_classes * each class's weight).
    def compute_class_weight(class_weight, *, classes, y, sample_weight=None):
        weight = _class_weight.compute_class_weight(class_weight, classes=classes, y=y)
        if sample_weight is None or not isinstance(class_weight, str):
            return weight
        present, y_index = np.unique(y, return_inverse=True)
        counts = np.bincount(y_index.ravel(), weights=sample_weight)
        return (counts.sum() / (len(present) * counts))[np.searchsorted(present, classes)]


class MultilabelTagsMixin:
    """scikit-learn < 1.6 reads estimator tags from `_more_tags`, not `__sklearn_tags__`: there,
    MLPClassifier's multi-label tag in that form, as scikit-learn's own MLPClassifier gives it.
    Empty on scikit-learn >= 1.6, which warns about a `_more_tags`."""

    if SKLEARN_VERSION < (1, 6):

        def _more_tags(self):
            return {"multilabel": True}
