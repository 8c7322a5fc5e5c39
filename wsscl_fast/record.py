"""The unlearning record: what a data-protection officer asks to see after a deletion request.

``record.json`` is written beside each unlearned model. It identifies the original and the
unlearned weights by SHA-256, the forgotten samples by a SHA-256 digest of their ids (never
the samples themselves), and holds the method, config, seed, the backend that ran each op, device, software
versions, timings and metrics. :func:`verify_record` checks that a model file is the one a
record describes (``wsscl-fast verify record.json model.pt``).
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import platform
from pathlib import Path

import torch

from .checkpoint import atomic_write_bytes, load_checkpoint
from .data import forgotten_scenario, make_scenario, with_removed_classes_apart, without
from .ledger import Ledger, check_data_identity, file_sha256, names_digest
from .methods import get_method

RECORD_VERSION = 2  # 2: "backends" ({op: [backend that ran it]}) replaces "backend"


def weights_digest(state_dict: dict) -> str:
    """SHA-256 over the weights, independent of file format: for each entry in key order,
    its name, dtype, shape and the raw bytes of its contiguous CPU copy."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def ids_digest(ids) -> str:
    """SHA-256 of the sorted, de-duplicated sample ids as little-endian int64."""
    ids = torch.as_tensor(ids, dtype=torch.int64).flatten().unique(sorted=True)
    return hashlib.sha256(ids.numpy().astype("<i8").tobytes()).hexdigest()


def device_name(device) -> str:
    """The accelerator's name, or "CPU (N threads)": the one spelling of records, reports and benchmarks."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def software_versions() -> dict:
    import numpy

    versions = dict(python=platform.python_version(), torch=torch.__version__, numpy=numpy.__version__)
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        versions["triton"] = None
    from .version import __version__

    versions["wsscl_fast"] = __version__
    return versions


def build_record(original_digest: str, result, forget_ids, *, seed: int, device,
                 scenario: str | None = None, retrain_metrics: dict | None = None,
                 ledger: Ledger | None = None, every_forgotten=None, forgotten_names=None,
                 previous_record: str | None = None, data: dict | None = None) -> dict:
    """The record of one unlearning run (``result`` is an :class:`~wsscl_fast.api.UnlearnResult`;
    ``original_digest`` is :func:`weights_digest` of the original state dict). With ``ledger``
    (the original's) and ``every_forgotten`` (the rows forgotten by it and this request), the
    record names the record before it (its SHA-256, and ``previous_record``: its file, relative to
    this record's folder) and digests everything forgotten so far, by row and by name
    (``forgotten_names``: the new model's ledger). ``data``: the identity of the data it ran on
    (:func:`~wsscl_fast.ledger.data_identity`)."""
    from .metrics import avg_gap

    ids = torch.as_tensor(forget_ids, dtype=torch.int64)
    record = dict(
        record_version=RECORD_VERSION,
        created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        original_weights_sha256=original_digest,
        unlearned_weights_sha256=weights_digest(result.model.state_dict()),
        forget_set=dict(count=int(ids.unique().numel()), ids_sha256=ids_digest(ids), scenario=scenario),
        method=result.method, config=get_method(result.method).applied(result.config), seed=seed,
        backends=result.info.get("backends", {}),  # {op: [backend]}: what actually ran, not what was asked
        device=str(device), device_name=device_name(device),
        software=software_versions(), rte_seconds=result.rte, timings=result.timings, metrics=result.metrics,
    )
    if data is not None:
        record["data"] = data
    if "checkpoint_choice" in result.info:  # WSS-CL's holdout choice: which model it returned, and why
        record["checkpoint_choice"] = result.info["checkpoint_choice"]
    if retrain_metrics is not None and result.metrics is not None:
        record["retrain"] = dict(metrics=retrain_metrics, avg_gap=avg_gap(result.metrics, retrain_metrics))
    if ledger is not None:
        every = torch.as_tensor(every_forgotten, dtype=torch.int64)
        record["ledger"] = dict(previous_record_sha256=ledger.previous_record, previous_record=previous_record,
                                request=len(ledger.records) + 1, forgotten_count=int(every.numel()),
                                forgotten_ids_sha256=ids_digest(every),
                                forgotten_names_sha256=names_digest(forgotten_names or ()))
    return record


def record_hmac(record: dict, key: bytes) -> str:
    """HMAC-SHA256 of the record's canonical JSON (sorted keys), without its own signature."""
    body = json.dumps({k: v for k, v in record.items() if k != "hmac_sha256"}, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def write_record(record: dict, path, key: bytes | None = None) -> Path:
    """Write ``record`` atomically; with ``key``, signed (``hmac_sha256``) so that an edit of
    any field is detected by :func:`verify_record` with the same key."""
    if key is not None:
        record = {**record, "hmac_sha256": record_hmac(record, key)}
    return atomic_write_bytes(json.dumps(record, indent=2, sort_keys=True).encode(), path)


def previous_record_link(checkpoint_path, ledger: Ledger, out) -> str | None:
    """The previous request's record.json (beside the checkpoint it wrote), relative to ``out``,
    when it is the one the ledger names; None for a first request or when it is not there."""
    if not ledger.records:
        return None
    candidate = Path(checkpoint_path).resolve().parent / "record.json"
    if candidate.is_file() and file_sha256(candidate) == ledger.previous_record:
        return os.path.relpath(candidate, Path(out).resolve())
    return None


def _chain_problem(record: dict, record_path: Path, model_blob: dict) -> str | None:
    """Why the model's ledger and its chain of records do not agree (None when they do), naming
    the request: this record must be the ledger's last entry and digest the ledger's forgotten
    names; each earlier record, found through the link its successor names, must be the file the
    ledger lists for its request and link to the one before it."""
    stored = model_blob.get("ledger") or {}
    records, names = stored.get("records") or [], stored.get("forgotten") or []
    if not records:
        return None
    request = len(records)
    if records[-1] != file_sha256(record_path):
        return f"{record_path} is not the last record of the model's ledger (its SHA-256 differs from the ledger's)"
    link = record.get("ledger") or {}
    if "forgotten_names_sha256" in link and link["forgotten_names_sha256"] != names_digest(names):
        return (f"request {request}: the model's ledger lists {len(names)} forgotten samples, not the ones its record "
                f"{record_path} digests (the ledger was edited, or belongs to another chain)")
    current, current_path = record, Path(record_path)
    for k in range(request, 0, -1):
        link = current.get("ledger") or {}
        if link.get("previous_record_sha256") != (records[k - 2] if k > 1 else None):
            return f"request {k}'s record {current_path} names a previous record that is not the one the ledger lists"
        if k == 1:
            break
        if link.get("previous_record") is None:
            return (f"request {k}'s record {current_path} names no file for request {k - 1}'s record, so the chain "
                    "before it cannot be checked")
        previous_path = current_path.parent / link["previous_record"]
        if not previous_path.is_file():
            return f"request {k - 1}'s record is not at {previous_path}, where request {k}'s record says it is"
        if file_sha256(previous_path) != records[k - 2]:
            return (f"request {k - 1}'s record {previous_path} is not the one the ledger lists (its SHA-256 differs: "
                    "edited after the fact?)")
        current, current_path = json.loads(previous_path.read_text()), previous_path
    return None


def _names_problem(record: dict, record_path: Path, model_blob: dict, names) -> str | None:
    """Why sample ``names`` are not the ones the record's request forgot (None when they are):
    its new names are the request's part of the model's ledger (the chain check has tied the
    ledger to the record); names that earlier requests forgot may be listed too."""
    link, forgotten = record.get("ledger") or {}, (model_blob.get("ledger") or {}).get("forgotten")
    if not link or forgotten is None:
        return (f"{record_path} has no ledger to read sample names against; give the forget ids as positions "
                "(`train` writes the name -> position map to sample_ids.tsv)")
    end = link["forgotten_count"]
    start = end - record["forget_set"]["count"]
    request, earlier = set(forgotten[start:end]), set(forgotten[:start])
    given = set(names)
    if given - earlier != request:
        missing, extra = len(request - given), len(given - earlier - request)
        return (f"the given names are not the forget set of request {link['request']} ({record_path}): "
                f"{missing} of its {len(request)} samples are missing and {extra} other names are listed")
    return None


def verify_record(record_path, model_path, ids=None, key: bytes | None = None, names=None) -> tuple[bool, str]:
    """(matches, explanation): does the model file hold the unlearned weights the record names?
    Also fails when the record describes an unlearning that changed no weight, when ``ids``
    (the forgotten sample positions) or ``names`` (their names) differ from the record's request,
    and, with ``key``, when the record's signature does not match."""
    record_path = Path(record_path)
    if not record_path.is_file():
        raise FileNotFoundError(f"record {record_path} does not exist")
    try:
        record = json.loads(record_path.read_text())
        expected = record["unlearned_weights_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{record_path} is not an unlearning record ({type(exc).__name__}: {exc})") from None
    if key is not None:
        if "hmac_sha256" not in record:
            return False, f"{record_path} is not signed, so it cannot be checked with a key"
        if not hmac.compare_digest(record["hmac_sha256"], record_hmac(record, key)):
            return False, f"{record_path} was edited after it was signed, or the key is wrong (HMAC mismatch)"
    if expected == record.get("original_weights_sha256"):
        return False, (f"{record_path} describes an unlearning that changed no weight: the unlearned model IS the "
                       f"original")
    if ids is not None and ids_digest(ids) != record.get("forget_set", {}).get("ids_sha256"):
        return False, f"the given ids are not the forget set of {record_path} (ids SHA-256 differs)"
    model_blob = load_checkpoint(model_path, weights_only_use=True)
    actual = weights_digest(model_blob["state_dict"])
    if actual == expected:
        chain = _chain_problem(record, record_path, model_blob) or (
            _names_problem(record, record_path, model_blob, names) if names is not None else None)
        if chain is not None:
            return False, chain
        checks = [name for name, done in (("signature", key is not None), ("forget ids", ids is not None),
                                          ("forget names", names is not None)) if done]
        suffix = f"; {' and '.join(checks)} checked" if checks else ""
        if model_blob.get("ledger", {}).get("records"):
            requests = len(model_blob["ledger"]["records"])
            suffix += f"; request {requests} of its ledger, every earlier record ({requests - 1}) read and linked"
        if "hmac_sha256" not in record:
            suffix += "; UNSIGNED: the record carries no signature, so an edit of it would go unnoticed"
        elif key is None:
            suffix += "; signature NOT checked (give the key with --key-file)"
        return True, f"{model_path} is the model described by {record_path} (weights SHA-256 {actual}){suffix}"
    if actual == record.get("original_weights_sha256"):
        return False, f"{model_path} holds the ORIGINAL weights, not the unlearned ones ({actual})"
    return False, f"{model_path} does not match {record_path}: weights SHA-256 {actual}, record says {expected}"


def check_retrain(retrain: dict, original: dict, bundle, forget_ids, path: str) -> None:
    """Refuse a --retrain that cannot be one: the original's own weights, or a model whose
    metadata says it trained on some of the forget samples (a `train` output saw every training
    sample; an `unlearn --method retrain` output saw all but its own forget set), or one trained
    on other data."""
    check_data_identity(retrain, bundle)
    if weights_digest(retrain["state_dict"]) == weights_digest(original["state_dict"]):
        raise ValueError(f"--retrain {path} holds the original model's weights; a Retrain is trained without the "
                         "forget set (make one with `unlearn --method retrain`)")
    if "data" not in retrain:  # a bare state_dict says nothing about what it trained on
        return
    if retrain.get("unlearned_by") != "retrain":
        how = f"unlearned by {retrain['unlearned_by']}" if retrain.get("unlearned_by") else "trained on every sample"
        raise ValueError(f"--retrain {path} is not a Retrain: its metadata says it was {how}, so it saw the forget "
                         "set; make one with `unlearn --method retrain`")
    removed = (Ledger.of_checkpoint(retrain).rows(bundle.train.names) if retrain.get("ledger") else
               make_scenario(bundle, retrain["forget"], seed=retrain.get("forget_seed", 0)).forget_indices)
    seen = sorted(set(forget_ids.tolist()) - set(removed.tolist()))
    if seen:
        raise ValueError(f"--retrain {path} was retrained without {retrain['forget']}, so it trained on {len(seen)} "
                         f"of the {len(forget_ids)} samples forgotten so far (e.g. ids {seen[:5]})")


def _stored_scenario(blob: dict, record: dict | None) -> tuple[str | None, int | None]:
    """(forget spec, seed) that a record (when given) or else an unlearned checkpoint names."""
    if record is not None:
        return record.get("forget_set", {}).get("scenario"), record.get("seed")
    return blob.get("forget"), blob.get("forget_seed")


def _request_rows(bundle, ledger: Ledger, record: dict) -> torch.Tensor | None:
    """Training rows of the request ``record`` describes, read from the model's ledger, which
    lists each request's new samples in request order (None for a record without a ledger link)."""
    link = record.get("ledger")
    if not link:
        return None
    end = link["forgotten_count"]
    names = ledger.forgotten[end - record["forget_set"]["count"]:end]
    return Ledger(tuple(names)).rows(bundle.train.names)


def evaluation_scenario(bundle, blob: dict, forget: str | None, seed: int | None, record_path=None):
    """(scenario, description) that ``evaluate`` measures a checkpoint on. Without ``forget`` and
    ``record_path``, a checkpoint with several requests in its ledger is measured on every sample
    forgotten so far; with ``record_path``, on that request's samples (from the ledger); otherwise
    on ``forget`` (else the checkpoint's own, else random:0.1). Every forgotten sample is out of
    the retain set, and TA leaves out the classes removed. A record's forget set must still give
    the ids its digest names."""
    ledger = Ledger.of_checkpoint(blob)
    earlier = ledger.rows(bundle.train.names)
    if len(ledger.records) > 1 and not (forget or record_path):
        return (with_removed_classes_apart(bundle, forgotten_scenario(bundle, earlier, f"{len(ledger.records)} requests"),
                                           earlier),
                f"every sample of the checkpoint's ledger ({earlier.numel()} samples from {len(ledger.records)} requests)")
    record = json.loads(Path(record_path).read_text()) if record_path else None
    stored_forget, stored_seed = _stored_scenario(blob, record)
    if record is not None and not forget and stored_forget is None:
        raise ValueError(f"{record_path} names no forget scenario; pass --forget")
    spec = forget or stored_forget or "random:0.1"
    seed = seed if seed is not None else (stored_seed if stored_seed is not None else 0)
    rows = _request_rows(bundle, ledger, record) if record is not None and not forget else None
    scenario = (without(make_scenario(bundle, spec, seed=seed), earlier) if rows is None  # forgotten: not "retained"
                else without(forgotten_scenario(bundle, rows, spec), earlier))
    scenario = with_removed_classes_apart(bundle, scenario, torch.cat([earlier, scenario.forget_indices]))
    if record is not None and not forget:
        if record.get("forget_set", {}).get("ids_sha256") != ids_digest(scenario.forget_indices):
            raise ValueError(f"{spec} (seed {seed}) no longer gives the forget set {record_path} describes (its "
                             "ids SHA-256 differs: was the indices file changed, or is this another chain's model?); "
                             "pass the original ids file with --forget")
    return scenario, f"{spec}, seed {seed}"
