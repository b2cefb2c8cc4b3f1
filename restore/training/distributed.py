"""Training under torchrun: one process per device, gradients averaged by DistributedDataParallel.

torchrun starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK in each. Every rank
draws the step's whole batch from the same seed and trains on its own slice, so N ranks take
exactly the steps one process would (the averaged gradient of equal slices is the gradient of
the whole batch). Rank 0 alone validates, checkpoints and exports; the others follow its
decisions (precision, layout, when to stop), which it sends them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")

# This process's last collective of each role, kept referenced from Python until the process ends.
# Gloo's worker thread lets go of a collective once it has run it; where that is the last
# reference, the worker frees the collective's tensors, and a tensor made in Python takes the GIL
# to free. A worker that reaches it while the interpreter exits is ended waiting for the GIL, which
# aborts the process ("terminate called without an active exception": rank 1 of the two-process
# test in about 1 run of 20, torch 2.14; a core dump showed the worker freeing the last broadcast).
# Held here, the collectives are freed by the main thread instead.
_KEPT: dict[str, dist.Work] = {}


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")  # where this rank trains and its collectives run (cuda:LOCAL_RANK on GPUs)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a batch drawn identically on every rank."""
        size = batch.shape[0] // self.world
        return batch[self.rank * size : (self.rank + 1) * size]

    def from_leader(self, value: T) -> T:
        """Rank 0's `value`, on every rank (any picklable value; ranks of one run trust each other)."""
        if self.world == 1:
            return value
        payload = pickle.dumps(value) if self.leader else b""
        size = torch.tensor([len(payload)], device=self.device)
        _waited("size", dist.broadcast(size, src=0, async_op=True))
        if self.leader:
            data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(self.device)
        else:
            data = torch.empty(int(size.item()), dtype=torch.uint8, device=self.device)
        _waited("payload", dist.broadcast(data, src=0, async_op=True))
        return pickle.loads(data.cpu().numpy().tobytes())

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any."""
        if self.world == 1:
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        _waited("flag", dist.all_reduce(tensor, op=dist.ReduceOp.MAX, async_op=True))
        return bool(tensor.item())

    def wrap(self, network: torch.nn.Module) -> torch.nn.Module:
        """The module to train through: DistributedDataParallel over `network` with several ranks."""
        if self.world == 1:
            return network
        # A multi-scale upscaler trains one scale's branch per step: the others get no gradient.
        unused = len(getattr(network, "scales", ())) > 1
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(network, device_ids=ids, find_unused_parameters=unused)


def _waited(role: str, work: dist.Work) -> None:
    """Wait for a collective, and keep it as this process's last of its role (see _KEPT)."""
    work.wait()
    _KEPT[role] = work


def leader_process() -> bool:
    """False in the processes torchrun starts besides rank 0: they train but report nothing."""
    return os.environ.get("RANK", "0") == "0"


@contextmanager
def joined(device: torch.device) -> Iterator[Ranks]:
    """Join torchrun's process group when WORLD_SIZE > 1 (nccl on GPUs, gloo on CPUs) for the
    duration; yield this rank, with the device it trains on (cuda:LOCAL_RANK on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Ranks(device=device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started_here = not dist.is_initialized()
    if started_here:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    yield Ranks(dist.get_rank(), dist.get_world_size(), device)
    # Only after success: a rank that failed may have left a peer inside a collective, where a
    # barrier would hang; torchrun stops the others then. Gloo sends are asynchronous, so the
    # barrier keeps a rank from closing its connections while a peer still receives the last broadcast.
    if started_here:
        dist.barrier()
        dist.destroy_process_group()
