"""The one precision rule of the fused paths: fp16/bf16 tensors are computed in fp32 and their
optimizer state is kept in fp32 (no master copy: a 16-bit parameter is rounded once per step);
fp32 and fp64 stay as they are. (``reference.py`` states the same rule in its own words, so that
the ground truth does not depend on this module.)"""
from __future__ import annotations

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which a tensor of ``dtype`` is computed and its optimizer state kept."""
    return torch.float32 if dtype in HALF_DTYPES else dtype
