"""wsscl_fast: machine unlearning of image classifiers with WSS-CL, and fused kernels for it."""
from .api import UnlearnResult, compare, unlearn
from .config import BaselineConfig, CoUnConfig, NegGradPlusConfig, SCRUBConfig, TrainConfig, WSSCLConfig
from .execution import Execution, Runtime
from .losses import InfoNCELoss
from .ops import infonce_loss
from .optim import MaskedAdamW, MaskedSGD
from .saliency import compute_saliency
from .version import __version__

__all__ = [
    "unlearn", "compare", "UnlearnResult", "WSSCLConfig", "BaselineConfig", "NegGradPlusConfig", "SCRUBConfig",
    "CoUnConfig", "TrainConfig", "Execution", "Runtime",
    "infonce_loss", "InfoNCELoss", "MaskedSGD", "MaskedAdamW", "compute_saliency", "__version__",
]
