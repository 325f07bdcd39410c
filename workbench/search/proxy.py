"""How a searcher scores a candidate without the test split: validation accuracy of the pruned copy, as it is,
after adaptive batch-norm recalibration (EagleEye) or after a short fine-tuning (NetAdapt's short-term fine-tune).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench import checks
from workbench.pruning.sensitivity_scan import accuracy

MODES = ("plain", "adaptive_bn", "finetune")
"""plain: no change (AMC's reward); adaptive_bn: batch-norm statistics re-estimated on training batches, no weight
changes (EagleEye); finetune: a few SGD steps on the training split (NetAdapt's short-term fine-tuning)."""


@torch.no_grad()
def adaptive_bn(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """Re-estimate every batch norm's running mean and variance on `inputs` (training examples), in place.

    EagleEye's adaptive BN: statistics reset, then the cumulative average over the batches (momentum None) in train
    mode with no gradient; weights are untouched. Returns the model in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in inputs.split(batch_size):
        model(batch)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return model.eval()


@dataclass
class Evaluator:
    """Scores candidates (pruned copies) on the validation split; counts evaluations and their wall time.

    Args:
        validation: (inputs, labels) from the validation split.
        calibration: training inputs for adaptive BN (and the batches' size).
        mode: one of MODES.
        finetune: `finetune(model, steps)` trains in place on the training split (mode "finetune").
        steps: fine-tuning steps per candidate.
        batch_size: examples per forward pass.
    """

    validation: tuple[torch.Tensor, torch.Tensor]
    calibration: torch.Tensor | None = None
    mode: str = "adaptive_bn"
    finetune: Callable[[nn.Module, int], None] | None = None
    steps: int = 0
    batch_size: int = 64
    evaluated: int = 0
    seconds: float = 0.0

    def __post_init__(self):
        checks.choice("proxy", self.mode, MODES)
        if self.mode == "adaptive_bn" and self.calibration is None:
            raise ValueError("adaptive_bn needs training inputs (calibration data)")
        if self.mode == "finetune" and self.finetune is None:
            raise ValueError("the finetune proxy needs a training function")

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` made ready to score by the mode (in place)."""
        if self.mode == "adaptive_bn":
            adaptive_bn(model, self.calibration, self.batch_size)
        elif self.mode == "finetune" and self.steps:
            with torch.enable_grad():
                self.finetune(model, self.steps)
        return model

    def __call__(self, model: nn.Module) -> float:
        """Validation top-1 of `model` after the mode's preparation (in place)."""
        start = time.perf_counter()
        score = accuracy(self.prepare(model), *self.validation, batch_size=256)
        self.evaluated += 1
        self.seconds += time.perf_counter() - start
        return score

    def score(self, model: nn.Module) -> float:
        """Validation top-1 of `model` as it is (not counted as a candidate)."""
        return accuracy(model, *self.validation, batch_size=256)
