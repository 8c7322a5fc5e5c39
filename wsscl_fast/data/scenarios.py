"""Forget/retain splits and the scenarios built from them (random, class-wise, by sample ids),
each with the test splits that evaluation uses and the validation split as its holdout."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .formats import DataBundle


def random_forget_split(num_samples: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random forgetting: (forget indices, retain indices), both sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f"forget fraction must be in (0, 1), got {fraction}")
    count = max(1, int(round(fraction * num_samples)))
    perm = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return perm[:count].sort().values, perm[count:].sort().values


def class_forget_split(labels: torch.Tensor, forget_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-wise forgetting: every sample of ``forget_class`` is forgotten."""
    forget = (labels == forget_class).nonzero().flatten()
    if forget.numel() == 0:
        raise ValueError(f"forget class {forget_class} has no samples (labels span 0..{int(labels.max())})")
    return forget, (labels != forget_class).nonzero().flatten()


def read_index_file(path: Path, names=None, held_out_names=()) -> list[int]:
    """Sample positions from a file, one per line (blank lines ignored): an integer position,
    or, given the dataset's ``names``, a sample's own name (e.g. ``cat/0042.jpg``). A bad
    line is named; so is a name of ``held_out_names`` (the validation split: no model trained on it)."""
    if not path.is_file():
        raise FileNotFoundError(f"forget index file {path} does not exist")
    position = {name: i for i, name in enumerate(names)} if names is not None else {}
    held_out = set(held_out_names)
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        token = line.strip()
        if not token:
            continue
        if token in position:
            ids.append(position[token])
            continue
        if token in held_out:
            raise ValueError(f"{path}, line {number}: {token!r} is a validation-split sample, held out of training, "
                             "so no model trained on it and there is nothing to forget; list training samples only")
        try:
            ids.append(int(token))
        except ValueError:
            expected = "an integer position or a sample name of the dataset" if names is not None else "one integer id"
            raise ValueError(f"{path}, line {number}: expected {expected}, got {token!r}") from None
    return ids


def index_forget_split(num_samples: int, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """Forget an explicit list of sample ids; duplicates and out-of-range ids are refused."""
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    if idx.numel() == 0:
        raise ValueError("the forget index list is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= num_samples:
        bad = idx[(idx < 0) | (idx >= num_samples)][:5].tolist()
        raise ValueError(f"forget indices out of range [0, {num_samples}): {bad}")
    values, counts = idx.unique(return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"forget indices contain duplicates: {values[counts > 1][:5].tolist()}")
    keep = torch.ones(num_samples, dtype=torch.bool)
    keep[idx] = False
    return idx.sort().values, keep.nonzero().flatten()


@dataclass
class ForgetScenario:
    """A forget/retain split of a bundle, with the test splits that evaluation uses."""

    name: str
    forget: Dataset
    retain: Dataset
    test: Dataset  #: TA is measured here (for class-wise forgetting: the remaining classes)
    forgotten_test: Dataset | None  #: class-wise only: the test samples of the forgotten class
    forget_indices: torch.Tensor
    holdout: Dataset | None = None  #: the bundle's validation split: unseen data a method may calibrate on
    already_forgotten: int = 0  #: requested samples left out because earlier requests forgot them


def subset_without(retain: Subset, rows) -> Subset:
    """``retain`` (a Subset) without the samples at ``rows`` of its base dataset, order kept."""
    kept = torch.as_tensor(list(retain.indices), dtype=torch.int64)
    return Subset(retain.dataset, kept[~torch.isin(kept, torch.as_tensor(rows, dtype=torch.int64))].tolist())


def subset_rows(data):
    """(the base dataset, the row indices into it) of a Dataset, DataLoader or nested Subset."""
    data = getattr(data, "dataset", data) if isinstance(data, DataLoader) else data
    rows = None
    while isinstance(data, Subset):
        indices = torch.as_tensor(list(data.indices), dtype=torch.int64)
        rows = indices if rows is None else indices[rows]
        data = data.dataset
    return data, rows


def retain_without(retain, already_forgotten):
    """``retain`` without the samples of earlier requests: ``already_forgotten`` is a Subset of
    the same base dataset (e.g. an earlier scenario's forget set) or row indices into it."""
    if isinstance(retain, DataLoader):
        raise TypeError("retain must be a Dataset (not a DataLoader) when already_forgotten is given")
    base, rows = subset_rows(retain)
    rows = torch.arange(len(base)) if rows is None else rows
    if isinstance(already_forgotten, (Subset, DataLoader)):
        earlier_base, earlier = subset_rows(already_forgotten)
        if earlier_base is not base or earlier is None:
            raise ValueError("already_forgotten must be a Subset of the same dataset as retain, or row indices into it")
    else:
        earlier = list(already_forgotten)
    return subset_without(Subset(base, rows.tolist()), earlier)


def check_disjoint(forget, retain) -> None:
    """``forget`` and ``retain`` must not share samples (checked where both index one dataset)."""
    forget_base, forget_rows = subset_rows(forget)
    retain_base, retain_rows = subset_rows(retain)
    if forget_base is not retain_base:
        return
    if forget_rows is None or retain_rows is None:
        raise ValueError("forget and retain are the same dataset; pass disjoint subsets of it")
    shared = torch.isin(forget_rows, retain_rows).sum().item()
    if shared:
        raise ValueError(f"forget and retain share {shared} sample(s); a sample is either forgotten or retained")


def without(scenario: ForgetScenario, rows: torch.Tensor) -> ForgetScenario:
    """``scenario`` with the training ``rows`` (samples forgotten earlier) removed from its
    retain set, so that a new request never trains on them again."""
    if rows.numel() == 0:
        return scenario
    return dataclasses.replace(scenario, retain=subset_without(scenario.retain, rows))


def forgotten_scenario(bundle: DataBundle, rows: torch.Tensor, name: str) -> ForgetScenario:
    """Every sample at training ``rows`` forgotten (what a ledger holds), evaluated like
    ``indices:FILE`` forgetting."""
    forget, retain = index_forget_split(len(bundle.train), rows.tolist())
    return ForgetScenario(name, Subset(bundle.train, forget.tolist()), Subset(bundle.train, retain.tolist()),
                          bundle.test, None, forget, bundle.validation)


def _number(spec: str, text: str, kind, expected: str):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"forget spec {spec!r}: expected {expected} after the colon, got {text!r}") from None


def make_scenario(bundle: DataBundle, spec: str, seed: int = 0) -> ForgetScenario:
    """``spec`` is ``random:FRACTION``, ``class:LABEL`` or ``indices:FILE`` (one id per line)."""
    kind, _, value = spec.partition(":")
    n = len(bundle.train)
    if kind == "random":
        forget, retain = random_forget_split(n, _number(spec, value or "0.1", float, "a fraction in (0, 1)"), seed)
    elif kind == "class":
        cls = _number(spec, value, int, f"a class index in [0, {bundle.num_classes})")
        forget, retain = class_forget_split(bundle.train.labels, cls)
        test_labels = bundle.test.labels
        return ForgetScenario(
            f"class {bundle.train.classes[cls]}", Subset(bundle.train, forget.tolist()), Subset(bundle.train, retain.tolist()),
            Subset(bundle.test, (test_labels != cls).nonzero().flatten().tolist()),
            Subset(bundle.test, (test_labels == cls).nonzero().flatten().tolist()), forget, bundle.validation,
        )
    elif kind == "indices":
        ids = read_index_file(Path(value), bundle.train.names, getattr(bundle.validation, "names", ()))
        forget, retain = index_forget_split(n, ids)
    else:
        raise ValueError(f"forget spec must be random:FRACTION, class:LABEL or indices:FILE, got {spec!r}")
    return ForgetScenario(f"{kind} {value}", Subset(bundle.train, forget.tolist()), Subset(bundle.train, retain.tolist()),
                          bundle.test, None, forget, bundle.validation)


def removed_classes(bundle: DataBundle, forgotten_rows: torch.Tensor) -> torch.Tensor:
    """The classes none of whose training samples is left once ``forgotten_rows`` are forgotten."""
    labels = bundle.train.labels
    gone = torch.zeros(len(labels), dtype=torch.bool)
    gone[torch.as_tensor(forgotten_rows, dtype=torch.int64)] = True
    return torch.tensor([int(c) for c in labels.unique() if gone[labels == c].all()], dtype=labels.dtype)


def with_removed_classes_apart(bundle: DataBundle, scenario: ForgetScenario, forgotten_rows) -> ForgetScenario:
    """``scenario`` measured as a model that forgot ``forgotten_rows`` (every request so far)
    should be: TA on the test samples of the classes that remain, and the test samples of the
    classes wholly removed apart (``forgotten_test``). Unchanged when no class is removed."""
    removed = removed_classes(bundle, forgotten_rows)
    if removed.numel() == 0:
        return scenario
    gone = torch.isin(bundle.test.labels, removed)
    return dataclasses.replace(scenario, test=Subset(bundle.test, (~gone).nonzero().flatten().tolist()),
                               forgotten_test=Subset(bundle.test, gone.nonzero().flatten().tolist()))


def request_scenario(bundle: DataBundle, spec: str, seed: int, earlier: torch.Tensor) -> ForgetScenario:
    """One more deletion request, ``spec`` as :func:`make_scenario` takes it, on a model that
    already forgot the training rows ``earlier`` (its ledger). Its forget set holds only samples
    not forgotten before (a ``random:F`` request draws F of those still known); its retain set
    holds no forgotten sample; TA leaves out every class removed so far. A request that forgets
    nothing new is refused."""
    earlier = torch.as_tensor(earlier, dtype=torch.int64).unique()
    n = len(bundle.train)
    known = torch.ones(n, dtype=torch.bool)
    known[earlier] = False
    kind, _, value = spec.partition(":")
    if kind == "random" and earlier.numel():
        candidates = known.nonzero().flatten()
        picked, _ = random_forget_split(len(candidates), _number(spec, value or "0.1", float, "a fraction in (0, 1)"),
                                        seed)
        requested = candidates[picked]
    else:
        requested = make_scenario(bundle, spec, seed=seed).forget_indices
    forget = requested[known[requested]]
    if forget.numel() == 0:
        raise ValueError(f"forget {spec!r}: all {requested.numel()} of its samples were forgotten by earlier requests "
                         "(the checkpoint's ledger), so there is nothing new to forget")
    known[forget] = False
    scenario = ForgetScenario(f"{kind} {value}", Subset(bundle.train, forget.tolist()),
                              Subset(bundle.train, known.nonzero().flatten().tolist()), bundle.test, None, forget,
                              bundle.validation, already_forgotten=int(requested.numel() - forget.numel()))
    if kind == "class":
        scenario.name = f"class {bundle.train.classes[int(value)]}"
    return with_removed_classes_apart(bundle, scenario, torch.cat([earlier, forget]))
