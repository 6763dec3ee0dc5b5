"""`fastmlp export`: a saved model as an ONNX graph (skl2onnx, with fastmlp's converters).

A model `train` saved is a Pipeline (StandardScaler, then the perceptron): skl2onnx converts the
scaler itself; the classifier's option (no ZipMap) is given to the last step. The ONNX file is
never the model file and is written atomically."""

from fastmlp.cli._data import load_model_file
from fastmlp.cli._files import check_not_an_input, write_atomically
from fastmlp.cli._messages import UsageError, first_line, print_notes


def export(args):
    notes = []
    check_not_an_input(args.onnx, [args.model], "ONNX graph")
    model = load_model_file(args.model, notes, args.trust_pickle)
    print_notes(notes)
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        from fastmlp._onnx import register_onnx_converters
    except ImportError:
        raise UsageError("exporting to ONNX needs skl2onnx: pip install 'fastmlp[onnx]'") from None
    register_onnx_converters()
    tensor = FloatTensorType if args.dtype == "float32" else DoubleTensorType
    final = model[-1] if hasattr(model, "steps") else model
    options = {type(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        onx = to_onnx(model, initial_types=[("X", tensor([None, model.n_features_in_]))],
                      options=options)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{args.model}: cannot export it to ONNX: {first_line(exc)}") from None
    def write(path):
        with open(path, "wb") as f:
            f.write(onx.SerializeToString())

    try:
        write_atomically(args.onnx, write)
    except OSError as exc:
        raise UsageError(f"{args.onnx}: cannot write it ({exc.strerror or exc})") from None
    outputs = ", ".join(f"'{o.name}'" for o in onx.graph.output)
    print(f"wrote {args.onnx}: input 'X' ({args.dtype}, n x {model.n_features_in_}); "
          f"outputs {outputs}")
    return 0
