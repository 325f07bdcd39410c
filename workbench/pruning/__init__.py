"""The pruning engine: masks (torch.nn.utils.prune), channel removal (Torch-Pruning), filter-ranking criteria.

Methods that use it are registered in `workbench.methods`.
"""
