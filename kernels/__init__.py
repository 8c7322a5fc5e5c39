"""Triton kernels of wsscl_fast, installed as ``wsscl_fast.kernels``.

How: ``setup.py``'s ``package_dir`` maps this top-level folder to ``wsscl_fast.kernels``, so
``from ..backends import ...`` here and ``from ..kernels import ...`` in ``wsscl_fast/ops/`` work
once installed (an editable install maps it the same way). Why: the kernels sit beside ``csrc/``
at the top of the tree, where the compile gate (``aot.py``, ``compile_gate.py``) works on them alone.

Each op lives in its own module (kernel, launcher, autograd glue, maths in the docstring); the
public function and its dispatch are in ``wsscl_fast/ops/<op>.py``. On the CPU they run under the
Triton interpreter (``TRITON_INTERPRET=1``).
"""

TARGET_ARCHS = (80, 90)  #: the GPUs the launch tables and the compile gate target: sm_80 (A100), sm_90 (H100/H200)
