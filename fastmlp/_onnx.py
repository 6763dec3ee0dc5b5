"""ONNX export: fastmlp's estimators registered with skl2onnx.

Design
------
skl2onnx converts scikit-learn's MLPs, and fastmlp's fitted attributes are the same, but its
converter is not reused: it knows no output activation 'exp' (MLPRegressor's loss='poisson'),
gives multi-output regression one column, and probabilities of a two-label multilabel model as
if the problem were binary. The converter here writes the network the way fastmlp's engine runs
it — per layer MatMul, Add of the bias, the activation; the output activation last — in the
input's float type (float32 input gives a float32 graph, float64 a float64 one), then the heads
of `predict_proba` and `predict`:

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

# ONNX operator for each activation name the estimators use (None: the identity, no node).
_ACTIVATIONS = {"identity": None, "relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid",
                "softmax": "Softmax", "exp": "Exp"}

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
    _, proto, dtype = _float_types(operator)
    current = scope.get_unique_variable_name("input")
    container.add_node("Cast", operator.inputs[0].full_name, current, to=proto,
                       name=scope.get_unique_operator_name("Cast"))
    n_layers = len(model.coefs_)
    for i, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        activation = model.activation if i < n_layers - 1 else model.out_activation_
        if activation not in _ACTIVATIONS:
            raise NotImplementedError(
                f"ONNX export does not know activation {activation!r} yet "
                f"(known: {sorted(_ACTIVATIONS)})"
            )
        W = scope.get_unique_variable_name("coefficient")
        b = scope.get_unique_variable_name("intercept")
        container.add_initializer(W, proto, list(coef.shape), coef.astype(dtype).ravel())
        container.add_initializer(b, proto, [len(intercept)], intercept.astype(dtype))
        product = scope.get_unique_variable_name("product")
        container.add_node("MatMul", [current, W], product,
                           name=scope.get_unique_operator_name("MatMul"))
        current = scope.get_unique_variable_name("preactivation")
        container.add_node("Add", [product, b], current, name=scope.get_unique_operator_name("Add"))
        op_type = _ACTIVATIONS[activation]
        if op_type is not None:
            activated = scope.get_unique_variable_name(activation)
            attrs = {"axis": 1} if op_type == "Softmax" else {}
            container.add_node(op_type, current, activated,
                               name=scope.get_unique_operator_name(op_type), **attrs)
            current = activated
    return current


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
