"""A trained model made deployable: ONNX export with its onnxruntime parity check, int8 quantisation, the raw-image
pyfunc model, publishing into a run, prediction, serving and registry aliases.

May import: every layer below (leaves to ``convzoo.tracking``); and mlflow.
"""
