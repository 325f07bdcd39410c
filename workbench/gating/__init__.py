"""Dynamic execution: gates that pick, per input, which output channels of a convolution are computed.

- `units`: the gated convolution (FBS's saliency predictor with winner-take-all, DGNet's Gumbel channel gate) and
  the consumer that reads only the active channels; two executions: `masked` (gates multiply, nothing skipped) and
  `skip` (batch 1: gather the active channels and run the smaller convolution).
- `sites`: where a model can be gated, inserting and describing gates.
- `cost`: FLOPs each input executes, counted from the gates' decisions; gate activity; the FLOPs-budget loss.
- `timing`: dense, masked and skipping latency at batch 1, in alternating rounds.
"""

from workbench.gating.sites import GATE_KINDS, find_sites, gate_spec, gated_units, insert_gates, set_execution

__all__ = ["GATE_KINDS", "gate_spec", "gated_units", "insert_gates", "set_execution", "find_sites"]
