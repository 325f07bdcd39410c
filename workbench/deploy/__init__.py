"""Deployment on a CPU: runtimes (eager, torch.compile, ONNX Runtime), sparse kernels for unstructured masks,
measured storage, and exporting a pruned model.

- `runtimes`: `prepare(model, runtime, example, threads)`, one callable per runtime, set-up time apart.
- `timing`: alternating rounds over prepared models, medians (the protocol of `bench speedup`).
- `sparse`: dense against sparse (torch CSR, SciPy CSR) layers and models, the crossover sparsity.
- `storage`: serialised sizes, measured (dense, channel-pruned, masked, CSR).
- `export`: a finished run as a runnable ONNX or torch.export file, its outputs checked.
"""
