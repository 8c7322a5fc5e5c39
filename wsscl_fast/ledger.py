"""The ledger of forgotten samples: deletions arrive one after another, and each must stay deleted.

Every checkpoint that ``unlearn`` writes carries a :class:`Ledger`: the names of every sample
forgotten so far (cumulative, as ``indices:FILE`` takes them) and the SHA-256 of each request's
``record.json``, oldest first. The next ``unlearn`` removes all earlier forgotten samples from
its retain set, the next ``evaluate`` measures all of them, and each record names the record
before it, so that ``verify`` can check the link between a model and its chain of records.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ledger:
    forgotten: tuple[str, ...] = ()  #: names of every forgotten sample, in request order
    records: tuple[str, ...] = ()  #: SHA-256 of each request's record.json, oldest first

    @classmethod
    def of_checkpoint(cls, blob: dict) -> "Ledger":
        """The ledger a loaded checkpoint carries (empty for a model that never unlearned)."""
        stored = blob.get("ledger") or {}
        return cls(tuple(stored.get("forgotten", ())), tuple(stored.get("records", ())))

    def to_dict(self) -> dict:
        return {"forgotten": list(self.forgotten), "records": list(self.records)}

    @property
    def previous_record(self) -> str | None:
        return self.records[-1] if self.records else None

    def rows(self, names) -> torch.Tensor:
        """Positions of the forgotten samples among ``names`` (a split's sample names); a name
        the split does not have is refused, since the request could not then be honoured."""
        position = {name: i for i, name in enumerate(names)}
        missing = [name for name in self.forgotten if name not in position]
        if missing:
            raise ValueError(f"the checkpoint's ledger names {len(missing)} forgotten sample(s) that this dataset does "
                             f"not have (e.g. {missing[:3]}); load the data the model was trained on")
        return torch.tensor(sorted({position[name] for name in self.forgotten}), dtype=torch.int64)

    def extended(self, names, record_sha256: str) -> "Ledger":
        """This ledger plus one request: its forgotten sample ``names`` and its record's digest."""
        known = set(self.forgotten)
        new = tuple(name for name in names if name not in known)
        return Ledger(self.forgotten + new, self.records + (record_sha256,))


def names_digest(names) -> str:
    """SHA-256 of forgotten sample names, in ledger order: what a record says its model's ledger holds."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def data_identity(bundle) -> dict:
    """What a checkpoint records of the data it was trained on: the bundle's name, its training
    size and the digest of its training sample names, in order."""
    return dict(name=bundle.name, train_size=len(bundle.train), names_sha256=names_digest(bundle.train.names))


def check_data_identity(meta: dict, bundle) -> None:
    """Refuse ``bundle`` when the checkpoint ``meta`` says its model was trained on other data (a
    checkpoint from before identities were recorded is not checked)."""
    recorded = meta.get("data_identity")
    if recorded is None or recorded == data_identity(bundle):
        return
    loaded = data_identity(bundle)
    differs = [f"{key} {recorded.get(key)!r} (now {loaded[key]!r})" for key in loaded if recorded.get(key) != loaded[key]]
    raise ValueError("the checkpoint was trained on other data than the data loaded now: " + ", ".join(differs) +
                     "; load the data it was trained on (leave --data, --data-root and --train-size to the checkpoint)")


def file_sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
