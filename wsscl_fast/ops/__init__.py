"""The fused ops, one module each: public function, backend dispatch (``backends.py``) and the glue
of the C++ ops that ``csrc/registration.cpp`` registers as ``torch.ops.wsscl_fast.*`` (fakes and
autograd formulas are registered in the op's module). Kernels: ``kernels/`` (installed as
``wsscl_fast.kernels``) and ``csrc/``; ground truth: ``reference.py``."""
from .infonce import infonce_loss
from .masked_update import masked_adamw_step, masked_sgd_step
from .saliency_select import saliency_from_scores

__all__ = ["infonce_loss", "masked_sgd_step", "masked_adamw_step", "saliency_from_scores"]
