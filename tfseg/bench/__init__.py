"""The benchmark library behind ``python -m tfseg.benchmark`` (the program defines the flags).

Modules:
- ``measure``: one model at one input size -> a result row (params, GFLOPs, latency per runtime);
  the size list (``--input_size=sweep``) and the models of ``--pairs`` / ``--all``;
- ``runtimes``: one runner per runtime (keras, saved_model, tflite*, onnxruntime, tensorrt);
- ``timing``: every timing helper (interleaved timing, latency statistics, the matmul reference);
- ``report``: the tables, the JSON documents and the FPS plot;
- ``kernels``: single convolution layers in LiteRT, fp32 against int8 (``--kernels``).

This package builds on ``tfseg.export_lib`` (the artifacts it times); nothing in ``export_lib``
imports it.
"""
