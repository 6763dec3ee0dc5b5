"""ONNX export: after register_onnx_converters(), skl2onnx.to_onnx converts fastmlp's estimators,
and onnxruntime's labels and probabilities are fastmlp's (to float32 rounding)."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, MLPRegressor, register_onnx_converters

skl2onnx = pytest.importorskip("skl2onnx")
rt = pytest.importorskip("onnxruntime")

RNG = np.random.RandomState(0)
N = 80
TARGETS = {
    "multiclass": (MLPClassifier, {}, RNG.randint(0, 4, N)),
    "binary": (MLPClassifier, {}, RNG.randint(0, 2, N)),
    "strings": (MLPClassifier, {}, np.array(["cat", "dog", "emu"])[RNG.randint(0, 3, N)]),
    "binary-strings": (MLPClassifier, {}, np.array(["no", "yes"])[RNG.randint(0, 2, N)]),
    "multilabel": (MLPClassifier, {}, RNG.randint(0, 2, (N, 2))),
    "regression": (MLPRegressor, {}, RNG.randn(N)),
    "multi-output": (MLPRegressor, {}, RNG.randn(N, 3)),
    "poisson": (MLPRegressor, {"loss": "poisson"}, RNG.poisson(3.0, N).astype(float)),
}


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


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", list(TARGETS))
def test_onnxruntime_predicts_what_fastmlp_predicts(target, dtype, activation):
    cls, params, y = TARGETS[target]
    X = RNG.randn(N, 6).astype(dtype)
    model = fit(cls, X, y, activation=activation, **params)
    options = {"zipmap": False} if cls is MLPClassifier else None
    outputs = run(skl2onnx.to_onnx(model, X[:1], options=options), X)
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=0)
    if cls is MLPClassifier:
        labels, probabilities = outputs
        assert probabilities.dtype == dtype
        np.testing.assert_allclose(probabilities, model.predict_proba(X), **tolerance)
        expected = model.predict(X)
        if expected.dtype.kind in "OUS":
            expected = expected.astype(object)
        np.testing.assert_array_equal(labels, expected)
    else:
        (predictions,) = outputs
        assert predictions.shape == (N, model.n_outputs_) and predictions.dtype == dtype
        np.testing.assert_allclose(predictions.reshape(model.predict(X).shape),
                                   model.predict(X), **tolerance)


def test_to_onnx_with_defaults_on_float64_digits():
    """What a new user types: float64 data, skl2onnx's default ZipMap output."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = fit(MLPClassifier, X, y)
    labels, probabilities = run(skl2onnx.to_onnx(model, X[:1]), X)
    np.testing.assert_array_equal(labels, model.predict(X))
    as_array = np.array([[row[c] for c in model.classes_] for row in probabilities])
    np.testing.assert_allclose(as_array, model.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_a_pipeline_holding_fastmlp_converts():
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=20, random_state=0))
        pipe.fit(X, y)
    labels, probabilities = run(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    np.testing.assert_allclose(probabilities, pipe.predict_proba(X), rtol=1e-4, atol=1e-5)
    assert np.mean(labels == pipe.predict(X)) > 0.99  # a near-tie may flip in float32


@pytest.mark.parametrize("labels", [[3.0, 7.0, 9.0], [False, True]], ids=["float", "bool"])
def test_integral_labels_of_other_types_come_out_as_int64(labels):
    X = RNG.randn(N, 3).astype(np.float32)
    model = fit(MLPClassifier, X, np.asarray(labels)[RNG.randint(0, len(labels), N)])
    predicted, _ = run(skl2onnx.to_onnx(model, X[:1], options={"zipmap": False}), X)
    assert predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, model.predict(X).astype(np.int64))

