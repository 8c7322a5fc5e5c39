"""Atomic checkpoint writes and safe (weights_only) loads."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename,
    so that a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that files can be written there, before any long work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise PermissionError(f"output directory {path} is not writable ({exc.strerror or exc})") from None
    return path


def prepare_output_dir(path, outputs, *, force: bool = False, resume: bool = False) -> Path:
    """Check an output directory before any long work: writable, none of ``outputs`` there, and no
    interrupted run's state (``run_state.pt``, unless this run resumes it), all unless ``force``."""
    out = ensure_writable_dir(path)
    existing = [name for name in outputs if (out / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)} from an earlier run; "
                              f"choose another --out or pass --force to overwrite")
    if (out / "run_state.pt").exists() and not resume and not force:
        raise FileExistsError(f"{out} holds run_state.pt, the checkpoint of an interrupted run; continue it with "
                              f"--resume, choose another --out, or pass --force to discard it")
    return out


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(buffer.getvalue(), path)


def load_checkpoint(path: str | os.PathLike, arch: str | None = None, weights_only_use: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; errors say what was wrong. A bare
    state_dict (e.g. of a torchvision model) is accepted when ``arch`` names its architecture, or
    when only its weights are used (``weights_only_use``: ``verify`` hashes them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError (some with no message), ...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a loadable weights-only checkpoint: {reason}") from None
    if isinstance(blob, dict) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        if weights_only_use:
            return {"state_dict": blob}
        if arch is None:
            raise ValueError(f"{path} is a bare state_dict; name its architecture with --arch "
                             f"(e.g. torchvision:resnet18)")
        return {"arch": arch, "state_dict": blob}
    if not isinstance(blob, dict) or "state_dict" not in blob or "arch" not in blob:
        raise ValueError(f"{path} is not a wsscl_fast model checkpoint (expected a dict with 'arch' and 'state_dict', "
                         f"or a bare state_dict with --arch)")
    return blob


def save_model(model, meta: dict, path: Path) -> None:
    """``meta`` and the model's state dict (on the CPU), written atomically to ``path``."""
    atomic_save({**meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)
