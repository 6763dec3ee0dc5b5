"""ONNX export: fastmlp's estimators registered with skl2onnx.

Design
------
skl2onnx converts scikit-learn's MLPs, and fastmlp's fitted attributes are the same, but its
converter is not reused: it knows no output activation 'exp' (MLPRegressor's loss='poisson'),
gives multi-output regression one column, and probabilities of a two-label multilabel model as
if the problem were binary. The converter here writes the network the way fastmlp's engine runs
it — per layer MatMul, Add of the bias, the activation; the output activation last — in the
input's float type (float32 input gives a float32 graph, float64 a float64 one), then the heads
of `predict_proba` and `predict`. Every activation of the engine's vocabulary converts (the
table `_ACTIVATIONS` is held to it by the tests): each is written with the comparisons and the
formula of csrc/activations.c, so that onnxruntime differs from the engine only by the rounding
of exp/log and of MatMul's sums. They are built from elementary operators (Where, Exp, Log, Div,
...), not from ONNX's LeakyRelu, Elu, Softplus, Erf, Mish or Gelu: onnxruntime implements those
in float only, so a float64 graph made of them would not load; and gelu's normal CDF is the
engine's erfc series (no cancellation for negative z), not 1 + Erf. Maxout is Reshape to
(n, units, k) and ReduceMax over k (its axes an input from opset 18, an attribute before).
The heads:

- multiclass: softmax probabilities; the label is the class at their ArgMax (first on ties, as
  numpy's argmax);
- binary: [1 - p, p]; the label is the positive class where p > 0.5 (ArgMax picks the first
  column on a tie, as LabelBinarizer's threshold does);
- multilabel: the per-label probabilities, and labels p > 0.5 as int64 (N, n_labels);
- regression: (N, n_outputs).

onnxruntime's ZipMap (skl2onnx's default output for classifiers' probabilities) takes float
tensors only, which makes scikit-learn's own classifiers unloadable when converted from float64
data; here a float64 graph with zipmap on casts just the probabilities it hands to ZipMap.

Registration is explicit (`register_onnx_converters()`), because importing skl2onnx takes
seconds and `import fastmlp` must stay light; it is idempotent. Classifiers keep skl2onnx's
`zipmap` option (on by default, as for scikit-learn's classifiers): `options={"zipmap": False}`
gives the probabilities as a plain tensor.
"""

import numbers

import numpy as np

from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor

_registered = False


def register_onnx_converters():
    """Register fastmlp's MLPClassifier and MLPRegressor with skl2onnx.

    After this call, ``skl2onnx.to_onnx(model, X[:1])`` converts a fitted fastmlp estimator (and
    any scikit-learn pipeline holding one) as it does scikit-learn's. Needs skl2onnx:
    ``pip install "fastmlp[onnx]"`` (onnxruntime runs the result). Calling it again does nothing.
    """
    global _registered
    if _registered:
        return
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs skl2onnx: pip install 'fastmlp[onnx]'"
        ) from exc

    update_registered_converter(
        MLPClassifier, "FastmlpMLPClassifier", _classifier_shapes, _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                 "output_class_labels": [False, True]},
    )
    update_registered_converter(
        MLPRegressor, "FastmlpMLPRegressor", _regressor_shapes, _convert_regressor
    )
    _registered = True


def _float_types(operator):
    """The graph's float tensor type and its proto code: double for double input, else float."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.proto import onnx_proto

    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return DoubleTensorType, onnx_proto.TensorProto.DOUBLE, np.float64
    return FloatTensorType, onnx_proto.TensorProto.FLOAT, np.float32


def _float_probabilities(operator):
    """onnxruntime's ZipMap takes float tensors only: with zipmap on, a double graph hands its
    probabilities over as float (its labels still come from the double ones)."""
    from skl2onnx.common.data_types import DoubleTensorType

    zipmap = operator.scope_inst.get_options(operator.raw_operator, dict(zipmap=True))["zipmap"]
    return zipmap is not False and isinstance(operator.inputs[0].type, DoubleTensorType)


def _class_labels(model):
    """classes_ as the int64 or string values ONNX tensors hold."""
    classes = model.classes_
    if all(isinstance(c, (numbers.Integral, np.bool_)) or (
            isinstance(c, numbers.Real) and float(c).is_integer()) for c in classes):
        return classes.astype(np.int64)
    if all(isinstance(c, str) for c in classes):
        return np.array([c.encode("utf-8") for c in classes], dtype=object)
    raise NotImplementedError(
        f"ONNX export needs integer or string class labels; this model's classes_ are {classes!r}"
    )


def _is_multilabel(model):
    # From public fitted attributes (scikit-learn's MLPClassifier has the same): one logistic
    # output is binary, a softmax multiclass, several logistic outputs multilabel (a one-column
    # indicator target is read as binary, so multilabel always has two outputs or more).
    return model.out_activation_ == "logistic" and model.n_outputs_ > 1


def _check_input(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType
    from skl2onnx.common.utils import check_input_and_output_types

    check_input_and_output_types(
        operator, good_input_types=[FloatTensorType, DoubleTensorType, Int64TensorType]
    )


def _classifier_shapes(operator):
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    _check_input(operator)
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    tensor_type, _, _ = _float_types(operator)
    if _is_multilabel(model):
        operator.outputs[0].set_type(Int64TensorType([n, model.n_outputs_]))
        n_columns = model.n_outputs_
    else:
        label_type = (Int64TensorType if _class_labels(model).dtype == np.int64
                      else StringTensorType)
        operator.outputs[0].set_type(label_type([n]))
        n_columns = len(model.classes_)
    if _float_probabilities(operator):
        tensor_type = FloatTensorType
    operator.outputs[1].set_type(tensor_type([n, n_columns]))


def _regressor_shapes(operator):
    _check_input(operator)
    tensor_type, _, _ = _float_types(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].set_type(tensor_type([n, operator.raw_operator.n_outputs_]))


def _forward(scope, operator, container):
    """Nodes of the forward pass; returns the name of the output layer's activations."""
    model = operator.raw_operator
    model._network()  # raises, as predict would, if the activation no longer fits the weights
    _, proto, dtype = _float_types(operator)
    nodes = _Nodes(scope, container, proto, dtype)
    current = nodes.op("Cast", operator.inputs[0].full_name, to=proto)
    coefs = model._coefs  # (coefs_ read here, never written: see fastmlp/_serving.py)
    n_layers = len(coefs)
    for i, (coef, intercept) in enumerate(zip(coefs, model.intercepts_)):
        hidden = i < n_layers - 1
        activation = model.activation if hidden else model.out_activation_
        if activation not in _ACTIVATIONS:
            raise NotImplementedError(
                f"ONNX export does not know activation {activation!r} yet "
                f"(known: {sorted(_ACTIVATIONS)})"
            )
        if hidden and model.batch_norm:
            coef, intercept = _fold_batch_norm(model, i, coef, intercept)
        z = nodes.op("Add", [nodes.op("MatMul", [current, nodes.constant(coef)]),
                             nodes.constant(intercept)])
        if activation == "maxout":
            current = _maxout(nodes, z, coef.shape[1] // model._maxout_pieces,
                              model._maxout_pieces)
        else:
            current = _ACTIVATIONS[activation](nodes, z, model)
    return current


def _fold_batch_norm(model, i, coef, intercept):
    """Hidden layer i's batch normalization, prediction's (running statistics), folded into its
    Gemm: W scale and (b - mean) scale + beta, scale = gamma / sqrt(var + eps), per column (a
    maxout layer's pieces included), as the engine folds it for predict."""
    scale = model.batch_norm_weights_[i] / np.sqrt(model.batch_norm_running_vars_[i]
                                                   + model.batch_norm_eps)
    shift = ((intercept - model.batch_norm_running_means_[i]) * scale
             + model.batch_norm_biases_[i])
    return coef * scale, shift


class _Nodes:
    """Adds nodes and constants (in the graph's float type) under unique names."""

    def __init__(self, scope, container, proto, dtype):
        self.scope, self.container, self.proto, self.dtype = scope, container, proto, dtype

    def op(self, op_type, inputs, **attrs):
        output = self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(op_type, inputs, output,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return output

    def constant(self, value, dtype=None):
        from skl2onnx.proto import onnx_proto

        value = np.asarray(value, dtype=dtype or self.dtype)
        proto = onnx_proto.TensorProto.INT64 if value.dtype == np.int64 else self.proto
        name = self.scope.get_unique_variable_name("constant")
        self.container.add_initializer(name, proto, list(value.shape), value.ravel())
        return name

    def where_positive(self, z, threshold, if_above, otherwise):
        """z > threshold ? if_above : otherwise, element-wise (the engine's comparison)."""
        above = self.op("Greater", [z, self.constant(threshold)])
        return self.op("Where", [above, if_above, otherwise])


# Each activation as nodes, written as csrc/activations.c writes it (the same comparisons and
# the same formula, so that only exp, log and the summation order of the products can round
# differently), from operators onnxruntime implements in float and double alike: its CPU
# provider has LeakyRelu, Elu, Softplus, Erf, Mish and Gelu in float only, so a float64 graph
# built from them would not load.

def _leaky_relu(nodes, z, model):  # z > 0 ? z : slope z
    return nodes.where_positive(z, 0, z, nodes.op("Mul", [z, nodes.constant(model.negative_slope)]))


def _elu(nodes, z, model):  # z > 0 ? z : alpha (e^z - 1)   (the engine's expm1: same to 1 ulp of 1)
    expm1 = nodes.op("Sub", [nodes.op("Exp", z), nodes.constant(1)])
    return nodes.where_positive(z, 0, z, nodes.op("Mul", [expm1, nodes.constant(model.elu_alpha)]))


def _silu(nodes, z, model):  # z / (1 + e^-z)
    return nodes.op("Div", [z, nodes.op("Add", [nodes.constant(1),
                                                nodes.op("Exp", nodes.op("Neg", z))])])


def _mish(nodes, z, model):
    # z tanh(softplus(z)) = z n / (n + 2), n = e^z (e^z + 2); z past 20, where it rounds to z.
    e = nodes.op("Exp", nodes.op("Min", [z, nodes.constant(20)]))
    n = nodes.op("Mul", [e, nodes.op("Add", [e, nodes.constant(2)])])
    t = nodes.op("Div", [n, nodes.op("Add", [n, nodes.constant(2)])])
    return nodes.op("Mul", [z, nodes.where_positive(z, 20, nodes.constant(1), t)])


def _softplus(nodes, z, model):
    # beta z > threshold ? z : (max(x, 0) + log(1 + e^-|x|)) / beta with x = beta z, which
    # neither overflows nor cancels (ONNX has no log1p: log(1 + u) is off by at most an ulp of 1).
    x = nodes.op("Mul", [z, nodes.constant(model.softplus_beta)])
    log_term = nodes.op("Log", nodes.op("Add", [
        nodes.constant(1), nodes.op("Exp", nodes.op("Neg", nodes.op("Abs", x)))]))
    unit = nodes.op("Add", [nodes.op("Max", [x, nodes.constant(0)]), log_term])
    scaled = nodes.op("Div", [unit, nodes.constant(model.softplus_beta)])
    return nodes.where_positive(x, model.softplus_threshold, z, scaled)


# csrc/fm_math.h's Chebyshev series for the normal CDF (fm_ndtr_d, float64 coefficients):
# 1/2 erfc(u) = 1/2 e^(-u^2) f(y) / (1 + 2u), y = (u - 3) / (u + 3), u = |z| / sqrt 2.
_NDTR_SERIES = (
    1.2530080582697296, -0.13562110612458117, -0.0475622943534492, 0.1296451587027594,
    -0.11927366341538638, 0.0683080273440099, -0.02377051491717134, 0.0025293918156939696,
    0.0018886903449991718, -0.0007798322696543306, -0.00010515971958448065, 0.0001250993424583729,
    4.949196649968345e-06, -2.0100542268525612e-05, -7.308281468783614e-07, 3.472370944977168e-06,
    3.5576086684080595e-07, -6.166011460398726e-07, -1.4047654315428462e-07,
    1.0183620603842736e-07, 4.1064013667940355e-08, -1.3312919661038687e-08,
    -8.217595058711455e-09, 9.862533510345587e-10, 8.393734858690877e-10,
)


def _gelu(nodes, z, model):
    # z Phi(z) with Phi from erfc, as the engine computes it: 1 + erf(z / sqrt 2) would cancel
    # to nothing for negative z, and onnxruntime has no double Erf.
    u = nodes.op("Mul", [nodes.op("Abs", z), nodes.constant(0.70710678118654752440)])
    u = nodes.op("Min", [u, nodes.constant(40)])  # erfc(40) is 0 anyway; y stays finite
    y = nodes.op("Div", [nodes.op("Sub", [u, nodes.constant(3)]),
                         nodes.op("Add", [u, nodes.constant(3)])])
    series = nodes.constant(_NDTR_SERIES[-1])
    for a in reversed(_NDTR_SERIES[:-1]):  # Horner
        series = nodes.op("Add", [nodes.op("Mul", [series, y]), nodes.constant(a)])
    gauss = nodes.op("Exp", nodes.op("Neg", nodes.op("Mul", [u, u])))
    denominator = nodes.op("Add", [nodes.constant(1), nodes.op("Mul", [u, nodes.constant(2)])])
    half_erfc = nodes.op("Mul", [nodes.constant(0.5), nodes.op(
        "Div", [nodes.op("Mul", [gauss, series]), denominator])])
    negative = nodes.op("Less", [z, nodes.constant(0)])
    phi = nodes.op("Where", [negative, half_erfc,
                             nodes.op("Sub", [nodes.constant(1), half_erfc])])
    return nodes.op("Mul", [z, phi])


def _maxout(nodes, z, units, pieces):
    # The GEMM's columns j k .. j k + k - 1 are unit j's pieces: (n, units, k), max over k.
    grouped = nodes.op("Reshape", [z, nodes.constant([-1, units, pieces], np.int64)])
    if nodes.container.target_opset < 18:  # ReduceMax's axes: an attribute before opset 18
        return nodes.op("ReduceMax", grouped, axes=[2], keepdims=0)
    return nodes.op("ReduceMax", [grouped, nodes.constant([2], np.int64)], keepdims=0)


def _unary(op_type, **attrs):
    return lambda nodes, z, model: nodes.op(op_type, z, **attrs)


# Every activation of the engine's vocabulary (fastmlp/_engine/vocabulary.pyx: the hidden ones,
# maxout among them, and the output ones), as ONNX nodes; tests/periphery/test_onnx.py holds this
# table to the vocabulary.
_ACTIVATIONS = {
    "identity": lambda nodes, z, model: z, "relu": _unary("Relu"), "tanh": _unary("Tanh"),
    "logistic": _unary("Sigmoid"), "softmax": _unary("Softmax", axis=1), "exp": _unary("Exp"),
    "leaky_relu": _leaky_relu, "elu": _elu, "gelu": _gelu, "silu": _silu, "mish": _mish,
    "softplus": _softplus, "maxout": None,  # a layer kind of its own: _maxout
}


def _convert_regressor(scope, operator, container):
    output = _forward(scope, operator, container)
    container.add_node("Identity", output, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Identity"))


def _convert_classifier(scope, operator, container):
    from skl2onnx.proto import onnx_proto

    model = operator.raw_operator
    _, proto, dtype = _float_types(operator)
    label_name = operator.outputs[0].full_name
    output = _forward(scope, operator, container)

    if _is_multilabel(model):
        probabilities = output
        half = scope.get_unique_variable_name("half")
        container.add_initializer(half, proto, [], [0.5])
        above = scope.get_unique_variable_name("above_half")
        container.add_node("Greater", [output, half], above,
                           name=scope.get_unique_operator_name("Greater"))
        container.add_node("Cast", above, label_name, to=onnx_proto.TensorProto.INT64,
                           name=scope.get_unique_operator_name("Cast"))
    else:
        if model.out_activation_ == "softmax":
            probabilities = output
        else:  # binary: one logistic output p, probabilities [1 - p, p]
            one = scope.get_unique_variable_name("one")
            container.add_initializer(one, proto, [], [1.0])
            negative = scope.get_unique_variable_name("negative_proba")
            container.add_node("Sub", [one, output], negative,
                               name=scope.get_unique_operator_name("Sub"))
            probabilities = scope.get_unique_variable_name("probabilities")
            container.add_node("Concat", [negative, output], probabilities, axis=1,
                               name=scope.get_unique_operator_name("Concat"))
        index = scope.get_unique_variable_name("class_index")
        container.add_node("ArgMax", probabilities, index, axis=1, keepdims=0,
                           name=scope.get_unique_operator_name("ArgMax"))
        classes = scope.get_unique_variable_name("classes")
        labels = _class_labels(model)
        container.add_initializer(
            classes, onnx_proto.TensorProto.INT64 if labels.dtype == np.int64
            else onnx_proto.TensorProto.STRING, [len(labels)], labels,
        )
        container.add_node("Gather", [classes, index], label_name, axis=0,
                           name=scope.get_unique_operator_name("Gather"))

    if _float_probabilities(operator):
        container.add_node("Cast", probabilities, operator.outputs[1].full_name,
                           to=onnx_proto.TensorProto.FLOAT,
                           name=scope.get_unique_operator_name("Cast"))
    else:
        container.add_node("Identity", probabilities, operator.outputs[1].full_name,
                           name=scope.get_unique_operator_name("Identity"))
