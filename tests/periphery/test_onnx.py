"""ONNX export: after register_onnx_converters(), skl2onnx.to_onnx (and `fastmlp export`) converts
fastmlp's estimators with every activation of the engine's vocabulary and every output, and
onnxruntime predicts what fastmlp predicts: values to a few rounding errors, labels exactly.

Tolerances. The graph computes what the engine computes, formula for formula (fastmlp/_onnx.py),
so what differs is the order in which MatMul sums its products and the last bits of exp, log
and tanh: a few ulps per layer. Measured on these 3-layer networks: at most 4 ulps of 1 in
float32 (5e-7) and 6 ulps of 1 in float64 (7e-16), absolute, outputs being of order 1. The
bounds below leave a factor of about 10 (float32: rtol 1e-5, atol 1e-6) and 100 (float64:
rtol 1e-12, atol 1e-13) for other BLAS builds and CPUs.

Labels. A label is a comparison of two values that each carry that rounding, so a label may
differ only where fastmlp's own values tie to within it: where the best class beats the next by
more than twice the tolerance (or a logistic output is that far from 0.5), the labels must be
equal; at a closer tie, onnxruntime's label must be one of the tied classes (`assert_same_labels`).
"""
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, MLPRegressor, register_onnx_converters
from fastmlp._engine import ACTIVATION_CODES, HIDDEN_ACTIVATIONS

skl2onnx = pytest.importorskip("skl2onnx")
rt = pytest.importorskip("onnxruntime")

from fastmlp import _onnx  # noqa: E402  (after the skips: it is only tested with skl2onnx)

RNG = np.random.RandomState(0)
N = 80
TARGETS = {
    "multiclass": (MLPClassifier, {}, RNG.randint(0, 4, N)),
    "binary": (MLPClassifier, {}, RNG.randint(0, 2, N)),
    "strings": (MLPClassifier, {}, np.array(["cat", "dog", "emu"])[RNG.randint(0, 3, N)]),
    "binary-strings": (MLPClassifier, {}, np.array(["no", "yes"])[RNG.randint(0, 2, N)]),
    "multilabel": (MLPClassifier, {}, RNG.randint(0, 2, (N, 2))),
    "squared-error-classifier": (MLPClassifier, {"loss": "squared_error"}, RNG.randint(0, 3, N)),
    "regression": (MLPRegressor, {}, RNG.randn(N)),
    "multi-output": (MLPRegressor, {}, RNG.randn(N, 3)),
    "poisson": (MLPRegressor, {"loss": "poisson"}, RNG.poisson(3.0, N).astype(float)),
    "huber": (MLPRegressor, {"loss": "huber"}, RNG.randn(N)),
    "absolute-error": (MLPRegressor, {"loss": "absolute_error"}, RNG.randn(N)),
}
# Not the defaults, so that the graph must read each parameter from the model; beta * z passes
# the threshold for some units, so both of softplus's branches are taken.
ACTIVATION_PARAMS = {"negative_slope": 0.2, "elu_alpha": 0.7, "softplus_beta": 2.0,
                     "softplus_threshold": 3.0, "maxout_pieces": 3}
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_onnx_converters()
    register_onnx_converters()  # idempotent


def fit(cls, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(hidden_layer_sizes=(9, 5), max_iter=40, random_state=0, **params).fit(X, y)


def run(onx, X):
    session = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def assert_same_labels(labels, model, X, probabilities, atol):
    """onnxruntime's labels are fastmlp's wherever fastmlp's probabilities do not tie to within
    2 atol; at such a tie, one of the tied classes (see the module's docstring)."""
    expected = model.predict(X)
    if expected.dtype.kind in "OUS":
        expected = expected.astype(object)
    if getattr(model, "n_outputs_", 1) > 1 and model.out_activation_ == "logistic":  # multilabel
        clear = np.abs(probabilities - 0.5) > 2 * atol
        np.testing.assert_array_equal(labels[clear], expected[clear])
        return
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 2 * atol
    np.testing.assert_array_equal(labels[clear], expected[clear])
    for row in np.flatnonzero(~clear):
        tied = model.classes_[probabilities[row] >= top_two[row, 1] - 2 * atol]
        assert labels[row] in tied


def assert_onnx_predicts_as_fastmlp(model, X, outputs, dtype):
    tolerance = TOLERANCE[dtype]
    if isinstance(model, MLPClassifier):
        labels, probabilities = outputs
        assert probabilities.dtype == dtype
        expected = model.predict_proba(X)
        np.testing.assert_allclose(probabilities, expected, **tolerance)
        assert_same_labels(labels, model, X, expected, tolerance["atol"])
    else:
        (predictions,) = outputs
        assert predictions.shape == (len(X), model.n_outputs_) and predictions.dtype == dtype
        expected = model.predict(X)
        np.testing.assert_allclose(predictions.reshape(expected.shape), expected, **tolerance)


def test_the_exporter_knows_every_activation_of_the_engine():
    """A name the engine's vocabulary has and the exporter lacks fails here, not at a user's."""
    assert set(_onnx._ACTIVATIONS) == set(HIDDEN_ACTIVATIONS) | set(ACTIVATION_CODES)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
@pytest.mark.parametrize("cls, y", [(MLPClassifier, TARGETS["multiclass"][2]),
                                    (MLPRegressor, TARGETS["regression"][2])],
                         ids=["classifier", "regressor"])
def test_every_activation_exports(cls, y, activation, dtype):
    X = (3 * RNG.randn(N, 6)).astype(dtype)  # wide pre-activations: every branch is taken
    model = fit(cls, X, y, activation=activation, **ACTIVATION_PARAMS)
    options = {"zipmap": False} if cls is MLPClassifier else None
    outputs = run(skl2onnx.to_onnx(model, X[:1], options=options), X)
    assert_onnx_predicts_as_fastmlp(model, X, outputs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_output_exports(target, dtype):
    cls, params, y = TARGETS[target]
    X = RNG.randn(N, 6).astype(dtype)
    model = fit(cls, X, y, activation="tanh", **params)
    options = {"zipmap": False} if cls is MLPClassifier else None
    outputs = run(skl2onnx.to_onnx(model, X[:1], options=options), X)
    assert_onnx_predicts_as_fastmlp(model, X, outputs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", "tanh", "maxout"])
@pytest.mark.parametrize("target", ["multiclass", "multi-output"])
def test_batch_normalised_models_export(target, activation, dtype):
    """Batch normalization, folded into each hidden layer's MatMul and Add at export, predicts
    what fastmlp predicts with the running statistics."""
    cls, params, y = TARGETS[target]
    X = (3 * RNG.randn(N, 6) + 1).astype(dtype)
    model = fit(cls, X, y, activation=activation, batch_norm=True, batch_size=20,
                batch_norm_eps=1e-3, **params)
    assert not np.allclose(model.batch_norm_running_means_[0], 0)  # it has statistics
    options = {"zipmap": False} if cls is MLPClassifier else None
    outputs = run(skl2onnx.to_onnx(model, X[:1], options=options), X)
    assert_onnx_predicts_as_fastmlp(model, X, outputs, dtype)


def test_a_maxout_model_whose_activation_was_changed_is_refused_as_predict_refuses_it():
    X = RNG.randn(N, 6).astype(np.float32)
    model = fit(MLPClassifier, X, TARGETS["binary"][2], activation="maxout")
    model.activation = "relu"
    with pytest.raises(ValueError, match="does not fit the weights"):
        model.predict(X)
    with pytest.raises(ValueError, match="does not fit the weights"):
        skl2onnx.to_onnx(model, X[:1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_readme_example_in_a_pipeline_exports(dtype):
    """README's gelu + adamw classifier behind a StandardScaler: skl2onnx's Scaler multiplies by
    1 / scale where scikit-learn divides, one more rounding, within the same tolerance."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier(
            (64, 32), activation="gelu", solver="adamw", learning_rate_init=1e-3,
            weight_decay=0.01, dropout=0.2, max_grad_norm=1.0, max_iter=20, random_state=0))
        pipe.fit(X, y)
    labels, probabilities = run(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    expected = pipe.predict_proba(X)
    np.testing.assert_allclose(probabilities, expected, **TOLERANCE[dtype])
    assert_same_labels(labels, pipe, X, expected, TOLERANCE[dtype]["atol"])


def test_to_onnx_with_defaults_on_float64_digits():
    """What a new user types: float64 data, skl2onnx's default ZipMap output (float
    probabilities: onnxruntime's ZipMap takes no doubles)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = fit(MLPClassifier, X, y)
    labels, probabilities = run(skl2onnx.to_onnx(model, X[:1]), X)
    as_array = np.array([[row[c] for c in model.classes_] for row in probabilities])
    np.testing.assert_allclose(as_array, model.predict_proba(X), rtol=1e-5, atol=1e-7)
    assert_same_labels(labels, model, X, model.predict_proba(X), TOLERANCE[np.float64]["atol"])


@pytest.mark.parametrize("labels", [[3.0, 7.0, 9.0], [False, True]], ids=["float", "bool"])
def test_integral_labels_of_other_types_come_out_as_int64(labels):
    X = RNG.randn(N, 3).astype(np.float32)
    model = fit(MLPClassifier, X, np.asarray(labels)[RNG.randint(0, len(labels), N)])
    predicted, probabilities = run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
    assert predicted.dtype == np.int64
    model.classes_ = model.classes_.astype(np.int64)  # so that the tie check compares int64
    assert_same_labels(predicted, model, X, probabilities, TOLERANCE[np.float32]["atol"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["gelu", "maxout", "softplus"])
@pytest.mark.parametrize("cls, target", [(MLPClassifier, "multiclass"), (MLPRegressor, "poisson")],
                         ids=["classifier", "poisson"])
def test_fastmlp_export_writes_these_models(cls, target, activation, dtype, tmp_path, capsys):
    """`fastmlp export` (the command line) on a saved model of each new kind."""
    from fastmlp.cli import main

    _, params, y = TARGETS[target]
    X = RNG.randn(N, 6).astype(dtype)
    model = fit(cls, X, y, activation=activation, **params)
    joblib.dump(model, tmp_path / "m.joblib")
    status = main(["export", str(tmp_path / "m.joblib"), str(tmp_path / "m.onnx"),
                   "--dtype", dtype, "--trust-pickle"])
    assert status == 0, capsys.readouterr().err
    session = rt.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_onnx_predicts_as_fastmlp(model, X, session.run(None, {"X": X}), np.dtype(dtype).type)
