"""Triton kernels of wsscl_fast, installed as ``wsscl_fast.kernels``.

Each op lives in its own module (kernel, launcher, autograd glue, maths in the docstring).
On the CPU they run under the Triton interpreter (``TRITON_INTERPRET=1``).
"""
