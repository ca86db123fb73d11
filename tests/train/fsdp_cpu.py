"""Run ``zhllama`` with accelerate's FSDP2 allowed on CPU processes (gloo), for the suite only.

accelerate turns FSDP on only for accelerator devices (a CPU run silently falls back to DDP), and
on CPU its full-state-dict gathering hands back the local DTensor shards.  These two shims, and
nothing else, differ from a GPU run: sharding, LoRA under FSDP2, the Trainer's FSDP save path and
zhllama's options are the real ones.  Usage: ``torchrun ... tests/train/fsdp_cpu.py train pt ...``.
"""

from __future__ import annotations

import sys

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_state_init = AcceleratorState.__init__
_get_state_dict = Accelerator.get_state_dict


def _state_init_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _state_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


def _full_state_dict(self, model, unwrap=True):
    from torch.distributed.tensor import DTensor

    state = _get_state_dict(self, model, unwrap)
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}  # a collective: every rank


AcceleratorState.__init__ = _state_init_fsdp_on_cpu
Accelerator.get_state_dict = _full_state_dict

if __name__ == "__main__":
    from zhllama.cli import main

    sys.exit(main(sys.argv[1:]))
