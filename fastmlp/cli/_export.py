"""`fastmlp export`: a saved model as an ONNX graph (skl2onnx, with fastmlp's converters)."""

from fastmlp.cli._data import load_model_file
from fastmlp.cli._messages import UsageError, first_line, print_notes


def export(args):
    notes = []
    model = load_model_file(args.model, notes)
    print_notes(notes)
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        from fastmlp._onnx import register_onnx_converters
    except ImportError:
        raise UsageError("exporting to ONNX needs skl2onnx: pip install 'fastmlp[onnx]'") from None
    register_onnx_converters()
    tensor = FloatTensorType if args.dtype == "float32" else DoubleTensorType
    options = {type(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    try:
        onx = to_onnx(model, initial_types=[("X", tensor([None, model.n_features_in_]))],
                      options=options)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{args.model}: cannot export it to ONNX: {first_line(exc)}") from None
    try:
        with open(args.onnx, "wb") as f:
            f.write(onx.SerializeToString())
    except OSError as exc:
        raise UsageError(f"{args.onnx}: cannot write it ({exc.strerror or exc})") from None
    outputs = ", ".join(f"'{o.name}'" for o in onx.graph.output)
    print(f"wrote {args.onnx}: input 'X' ({args.dtype}, n x {model.n_features_in_}); "
          f"outputs {outputs}")
    return 0
