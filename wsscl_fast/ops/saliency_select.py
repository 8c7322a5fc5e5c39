"""Saliency from scores: the global top-``ratio`` threshold and the masks or weights it gives.

g = the scores (one fp32 tensor per parameter), t = the k-th largest of all of them with
k = round(ratio * n) (``saliency_storage.keep_count``). hard: m = 1[g >= t]; soft:
s = clamp(g / t, 0, 1); stored as ``saliency_storage`` says. Backends: the Triton radix
select (``kernels/saliency_select.py``), the C++ ops ``torch.ops.wsscl_fast.saliency_threshold_cpp``
and ``saliency_emit_cpp`` (``csrc/saliency_select.cpp``, registered here with their fakes) and the
reference (``reference.saliency_from_scores_ref``, a sort-based kthvalue).
"""
from __future__ import annotations

import torch

from .. import backends
from ..reference import saliency_from_scores_ref
from ..saliency_storage import check_mode_and_storage, keep_count
from ..validation import check_finite, check_fraction

#: (mode, storage) -> the dtype the saliency ops emit, and whether its shape is packed (ceil(n / 8),)
_EMITTED = {("hard", "dense"): (torch.bool, False), ("hard", "bits"): (torch.uint8, True),
            ("soft", "dense"): (torch.float32, False), ("soft", "uint8"): (torch.uint8, False)}


def _threshold_fake(scores, k):
    return scores[0].new_empty((), dtype=torch.float32)


def _emit_fake(scores, threshold, hard, storage):
    dtype, packed = _EMITTED[("hard" if hard else "soft", storage)]
    return [s.new_empty(((s.numel() + 7) // 8,) if packed else s.shape, dtype=dtype) for s in scores]


if backends.cpp_extension_loaded():
    torch.library.register_fake("wsscl_fast::saliency_threshold_cpp")(_threshold_fake)
    torch.library.register_fake("wsscl_fast::saliency_emit_cpp")(_emit_fake)


def saliency_from_scores_cpp(scores, ratio: float, mode: str, storage: str):
    """Radix-select threshold at the ``keep``-th largest score, then one-pass emission, in C++."""
    scores = [s.detach().float().contiguous() for s in scores]
    ops = backends.cpp_ops()
    threshold = ops.saliency_threshold_cpp(scores, keep_count(sum(s.numel() for s in scores), ratio))
    return ops.saliency_emit_cpp(scores, threshold, mode == "hard", storage)


def _load_triton():
    from ..kernels.saliency_select import saliency_from_scores_triton  # lazy: triton is optional

    def run(scores, ratio, mode, storage):
        return saliency_from_scores_triton(scores, keep_count(sum(s.numel() for s in scores), ratio), mode, storage)
    return run


backends.register("saliency", "triton", _load_triton)
backends.register("saliency", "cpp", lambda: saliency_from_scores_cpp)
backends.register("saliency", "torch", lambda: saliency_from_scores_ref)


def saliency_from_scores(scores: list[torch.Tensor], ratio: float = 0.5, mode: str = "soft",
                         backend: str | None = None, saliency_storage: str = "dense") -> list[torch.Tensor]:
    """Global top-``ratio`` threshold over all ``scores``, then hard masks or soft weights in
    ``saliency_storage`` form, one tensor per score tensor."""
    check_fraction("ratio", ratio)
    check_mode_and_storage(mode, saliency_storage)
    if not scores or sum(s.numel() for s in scores) == 0:
        raise ValueError("scores is empty: the model has no parameters")
    for i, s in enumerate(scores):
        check_finite(f"scores[{i}]", s)
    _, fn = backends.resolve("saliency", scores[0].device, backend)
    return fn(scores, ratio, mode, saliency_storage)
