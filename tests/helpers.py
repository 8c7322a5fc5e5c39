"""What the test modules share: where each backend's tensors live, which backends exist, and
the quiet runtime of unlearn()/compare() calls.

Without a GPU the Triton kernels run on CPU tensors under the interpreter (conftest.py sets
``TRITON_INTERPRET=1`` before anything imports triton); with one they run on CUDA tensors.
"""
import torch

from wsscl_fast import Runtime

TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ALL_BACKENDS = ("torch", "cpp", "triton")  # the reference and both fused backends
FUSED_BACKENDS = ("cpp", "triton")
QUIET = Runtime(progress=False)  #: unlearn()/compare() without progress bars


def device_for(backend: str) -> str:
    """The device a backend's test tensors go on."""
    return TRITON_DEVICE if backend == "triton" else "cpu"
