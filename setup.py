"""Build: the Python package, the Triton kernels (installed as wsscl_fast.kernels) and the
C++ CPU extension wsscl_fast._C. A failed C++ build does not fail the install: the package
imports, and the cpp backend reports itself unavailable with the reason."""
import re
import warnings
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "wsscl_fast" / "version.py").read_text()).group(1)
# every package under wsscl_fast/, plus the Triton kernels (kernels/ in the source tree) installed as wsscl_fast.kernels
PACKAGES = find_packages(include=["wsscl_fast", "wsscl_fast.*"])
KERNEL_PACKAGES = ["wsscl_fast.kernels"] + [f"wsscl_fast.kernels.{name}" for name in find_packages("kernels")]

ext_modules, cmdclass = [], {}
try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except ImportError as exc:  # torch must be installed first (pip install --no-build-isolation)
    warnings.warn(f"torch is not importable ({exc}); building wsscl_fast without its C++ extension")
else:

    class OptionalBuildExtension(BuildExtension):
        """BuildExtension that warns instead of failing: no compiler, a compiler that torch's
        ABI check refuses, or a compile error all leave a package without wsscl_fast._C."""

        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler failure
                warnings.warn(f"building wsscl_fast._C failed ({exc}); the cpp backend will be unavailable")

    ext_modules = [
        CppExtension(
            "wsscl_fast._C",
            ["csrc/registration.cpp", "csrc/infonce.cpp", "csrc/masked_update.cpp", "csrc/saliency_select.cpp"],
            extra_compile_args=["-O3", "-fopenmp"],
            extra_link_args=["-fopenmp"],
        )
    ]
    cmdclass = {"build_ext": OptionalBuildExtension.with_options(use_ninja=True)}

setup(
    name="wsscl_fast",
    version=VERSION,
    description="Machine unlearning of image classifiers with WSS-CL, fused Triton and C++ kernels",
    python_requires=">=3.10",
    packages=PACKAGES + KERNEL_PACKAGES,
    package_dir={"wsscl_fast": "wsscl_fast", "wsscl_fast.kernels": "kernels"},
    package_data={"wsscl_fast": ["presets/*.json"]},  # the tuned method configs (recipes.tuned_configs)
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "triton>=3.0; platform_system == 'Linux'",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pillow>=9",
    ],
    extras_require={"test": ["pytest>=7", "hypothesis>=6", "ninja>=1.11"]},
    entry_points={"console_scripts": ["wsscl-fast=wsscl_fast.cli:main"]},
)
