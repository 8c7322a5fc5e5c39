"""Shared fixtures. Without a GPU, TRITON_INTERPRET=1 is set before anything imports triton,
so the Triton kernels run on CPU tensors under the interpreter; with a GPU they are compiled
and tested on CUDA tensors (TRITON_DEVICE)."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("WSSCL_TEST_INSTALLED") == "1":  # `make test`: the suite must test the installed wheel
    import wsscl_fast

    _imported_from = Path(wsscl_fast.__file__).resolve()
    if _imported_from.parent == REPO / "wsscl_fast" or "site-packages" not in _imported_from.parts:
        raise RuntimeError(f"WSSCL_TEST_INSTALLED=1 but wsscl_fast was imported from {_imported_from}, "
                           "not from an installed wheel (run pytest from outside the source tree)")
if "benchmarks" not in sys.modules:  # the repo's benchmarks package, without the repo root on sys.path (which
    _spec = importlib.util.spec_from_file_location(  # would shadow an installed wsscl_fast with the source tree)
        "benchmarks", REPO / "benchmarks" / "__init__.py", submodule_search_locations=[str(REPO / "benchmarks")])
    sys.modules["benchmarks"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["benchmarks"])

CIFAR10_ROOT = Path(os.environ.get("WSSCL_CIFAR10", Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"))


@pytest.fixture(scope="session")
def digits():
    from wsscl_fast.data import load_digits_bundle

    return load_digits_bundle(seed=0)


@pytest.fixture(scope="session")
def tiny_recipe(digits):
    """Digits recipe shrunk to seconds: a width-8 CNN, few epochs."""
    from wsscl_fast.recipes import recipe_for

    return recipe_for(digits, epochs=6, width=8)


@pytest.fixture(scope="session")
def trained_digits_model(digits, tiny_recipe):
    from wsscl_fast.training import train_model

    torch.manual_seed(0)
    model = tiny_recipe.build_model(digits)
    return train_model(model, digits.train, tiny_recipe.train, torch.device("cpu"), seed=0, progress=False)


@pytest.fixture
def cifar10_root():
    if not (CIFAR10_ROOT / "train.zip").is_file():
        pytest.skip(f"CIFAR-10 zips not found under {CIFAR10_ROOT} (set WSSCL_CIFAR10)")
    return CIFAR10_ROOT


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where there is no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a GPU (marker: cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
