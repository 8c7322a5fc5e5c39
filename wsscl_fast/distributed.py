"""torch.distributed glue: ranks, sharded loaders, feature gathering with gradients, reductions.

Everything here is a no-op in a single process. Under ``torchrun`` the process group is
initialised by :func:`init_from_env` (NCCL on GPUs, gloo on CPUs).
"""
from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler



def active(group=None) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank(group=None) -> int:
    return dist.get_rank(group) if active(group) else 0


def world_size(group=None) -> int:
    return dist.get_world_size(group) if active(group) else 1


def is_main() -> bool:
    """Only rank 0 writes files and shows progress."""
    return rank() == 0


def init_from_env(device: str | None = None) -> torch.device | None:
    """Join the process group that ``torchrun`` describes (WORLD_SIZE > 1); returns this rank's
    device (``cuda:LOCAL_RANK`` with NCCL, else the CPU with gloo), or None outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def shutdown() -> None:
    """Leave the process group cleanly: wait for every rank (no rank tears its connections down
    while another still talks to it), free what still holds the group (DDP wrappers), then
    destroy it while the interpreter is fully alive. A no-op outside torchrun."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


class EpochSampler(DistributedSampler):
    """DistributedSampler that reshuffles on every pass by itself (no ``set_epoch`` calls in the
    loops), with a state for resumable runs. The seeded permutation of pass e is shared by all
    ranks; rank r takes positions r, r + W, ... of it."""

    def __iter__(self):
        indices = super().__iter__()
        self.set_epoch(self.epoch + 1)
        return indices

    def get_state(self) -> torch.Tensor:
        return torch.tensor([self.epoch])

    def set_state(self, state: torch.Tensor) -> None:
        self.set_epoch(int(state[0]))


def sharded_loader(data: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """This rank's share of ``data``: global batches of ``batch_size`` split over the ranks
    (``batch_size // world_size`` per rank), so that one step sees the same samples as a single
    process with the same sampler. A global batch smaller than the world is refused."""
    world = world_size()
    if batch_size < world:
        raise ValueError(f"batch_size {batch_size} is smaller than the world size {world}")
    sampler = EpochSampler(data, num_replicas=world, rank=rank(), shuffle=shuffle, seed=seed)
    return DataLoader(data, batch_size=batch_size // world, sampler=sampler)


class _GatherRows(torch.autograd.Function):
    """All ranks' (M_r, D) tensors concatenated in rank order; backward sums the gradient of
    the concatenation over the ranks and returns this rank's rows."""

    @staticmethod
    def forward(ctx, local, sizes, group):
        ctx.group, ctx.sizes, ctx.rank = group, sizes, dist.get_rank(group)
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: local.shape[0]] = local
        pieces = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(pieces, padded.contiguous(), group=group)
        return torch.cat([piece[:n] for piece, n in zip(pieces, sizes)])

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_rows(local: torch.Tensor, group=None) -> torch.Tensor:
    """Concatenate every rank's rows (sizes may differ), differentiably. In a single process
    the tensor itself."""
    if not active(group):
        return local
    size = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.empty_like(size) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, size, group=group)
    return _GatherRows.apply(local, [int(s) for s in sizes], group)


def all_reduce_mean_(tensors: list[torch.Tensor], group=None) -> list[torch.Tensor]:
    """In place: the mean over the ranks of each tensor."""
    if active(group):
        for t in tensors:
            dist.all_reduce(t, group=group)
            t.div_(dist.get_world_size(group))
    return tensors


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel (gradients averaged over the ranks) when running
    distributed, else ``module`` itself. Call the wrapper for every forward of a step."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def gather_in_order(local: torch.Tensor, total: int) -> torch.Tensor:
    """Rows computed on a strided shard (rank r holds items r, r + W, ...) back in item order."""
    if not active():
        return local
    pieces = gather_rows(local.detach()).split([len(range(r, total, world_size())) for r in range(world_size())])
    out = local.new_empty((total, *local.shape[1:]))
    for r, piece in enumerate(pieces):
        out[r::world_size()] = piece
    return out
