#!/usr/bin/env python3
"""Checks an `idn export onnx` directory (a model package's or a DDNN package's) with the ONNX project's own checker (Debian's
python3-onnx): every graph the manifest lists passes onnx.checker.check_model(full_check=True)
(which also runs strict shape inference against the shapes each graph declares), has the
manifest's sha256, opset and IR version, and declares the manifest's inputs and outputs with a
symbolic batch dimension. Prints one line per file; exits 1 on the first failure, 77 when the
onnx module is missing.

Usage: onnx_check.py DIR
"""
import hashlib
import json
import os
import sys

try:
    import onnx
    from onnx import checker
except ImportError:
    print("onnx_check: skipped: the python onnx module is missing (Debian: python3-onnx)")
    sys.exit(77)


def shape_of(value_info):
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return dims


def main(directory):
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    fmt = manifest.get("format")
    if fmt not in ("idn-onnx", "idn-onnx-ddnn") or manifest.get("version") != 1:
        sys.exit(f"{directory}/manifest.json: not an idn-onnx(-ddnn) version 1 manifest")
    # A DDNN export (idn-onnx-ddnn) lists its device, local and cloud graphs under "graphs".
    graphs = manifest["graphs"] if fmt == "idn-onnx-ddnn" else manifest["stages"] + manifest["exits"]
    for g in graphs:
        path = os.path.join(directory, g["file"])
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != g["sha256"]:
            sys.exit(f"{g['file']}: sha256 differs from the manifest")
        model = onnx.load_from_string(data)
        checker.check_model(model, full_check=True)
        if model.ir_version != manifest["ir_version"]:
            sys.exit(f"{g['file']}: IR version {model.ir_version}")
        opsets = {o.domain: o.version for o in model.opset_import}
        if opsets != {"": manifest["opset"]}:
            sys.exit(f"{g['file']}: opset imports {opsets}")
        for kind, declared in (("inputs", model.graph.input), ("outputs", model.graph.output)):
            want = [(v["name"], v["shape"]) for v in g[kind]]
            got = [(v.name, shape_of(v)) for v in declared]
            if want != got:
                sys.exit(f"{g['file']}: {kind} {got}, manifest says {want}")
        print(f"ok {g['file']}: {len(model.graph.node)} nodes, "
              f"{len(model.graph.initializer)} initializers")
    print(f"onnx_check: {len(graphs)} graphs pass onnx {onnx.__version__}'s full check")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1])
    except Exception as e:  # the checker's ValidationError, shape inference's InferenceError
        sys.exit(f"onnx_check: {e}")
