"""Fused saliency-masked optimizer step against torch's best step plus a mask multiply.

GPU mode (default with CUDA): ResNet-18 (62 tensors, 11.7M parameters) and a flat 350M tensor;
masked AdamW / SGD-momentum (fused Triton, one launch) against torch.optim.AdamW(fused=True)
and foreach=True, and SGD foreach, each with grad.mul_(mask) first. Median time (triton.testing.do_bench) per
step and the bandwidth floor: bytes that must move (AdamW: read p, g, m, v, 1-byte mask; write
p, m, v) over the device-to-device copy rate measured in the same run. Also the bit-packed
mask and bf16 parameters, and the saliency threshold (radix select) for 350M scores against
torch.kthvalue on the same tensor.
CPU mode (--cpu): the C++ step against torch.optim.AdamW(foreach=True) plus mask multiply at
10M parameters, with a check that both give the same numbers; the C++ threshold against
torch.kthvalue.

    python -m benchmarks.kernels.bench_masked_step          # GPU
    python -m benchmarks.kernels.bench_masked_step --cpu    # CPU
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.harness import REPO, cuda_time_ms, environment, interleaved_median_times, write_json

from wsscl_fast import MaskedAdamW, MaskedSGD
from wsscl_fast.saliency_storage import keep_count


def resnet18_shapes():
    from torchvision.models import resnet18

    return [p.shape for p in resnet18(num_classes=10).parameters()]


def make_problem(shapes, device, seed=0, dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(seed)
    params = [torch.randn(s, device=device, generator=g).to(dtype).requires_grad_(True) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, device=device, generator=g).to(dtype)
    masks = [torch.rand(p.shape, device=device, generator=g) < 0.5 for p in params]
    return params, masks


def torch_masked_step(optimizer, params, masks):
    def step():
        for p, m in zip(params, masks):
            p.grad.mul_(m)
        optimizer.step()

    return step


def copy_bandwidth(device) -> float:
    """Device-to-device copy rate in bytes/s (1 GiB buffer, read + write counted)."""
    x = torch.empty(2**28, device=device)
    y = torch.empty_like(x)
    ms = cuda_time_ms(lambda: y.copy_(x))
    return 2 * x.numel() * 4 / (ms * 1e-3)


def threshold_case(numel: int, device: torch.device, time_fn) -> dict:
    """Top-50% threshold of ``numel`` |gradient|-like scores: fused radix select against
    torch.kthvalue on the same tensor; the values must be identical. ``time_fn(fn) -> ms``
    on the GPU; None times the two in alternating rounds on the CPU."""
    scores = torch.randn(numel, device=device, generator=torch.Generator(device=device).manual_seed(0)).abs_()
    k = keep_count(numel, 0.5)
    if device.type == "cuda":
        from wsscl_fast.kernels.saliency_select import saliency_threshold_triton

        ours = lambda: saliency_threshold_triton([scores], k)  # noqa: E731
    else:
        from wsscl_fast.backends import cpp_ops

        ours = lambda: cpp_ops().saliency_threshold_cpp([scores], k)  # noqa: E731
    theirs = lambda: torch.kthvalue(scores, numel - k + 1).values  # noqa: E731
    same = bool(torch.equal(ours().cpu(), theirs().cpu()))
    if time_fn is None:  # CPU: alternating rounds
        ms = {k: v * 1e3 for k, v in interleaved_median_times({"radix_select": ours, "torch.kthvalue": theirs},
                                                               rounds=7).items()}
    else:
        ms = {"radix_select": time_fn(ours), "torch.kthvalue": time_fn(theirs)}
    row = dict(problem=f"threshold_{numel // 1_000_000}M", numel=numel, same_value_as_kthvalue=same, ms=ms)
    row["speedup"] = row["ms"]["torch.kthvalue"] / row["ms"]["radix_select"]
    print(row)
    return row


def gpu(out: Path) -> dict:
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    results = []
    for label, shapes in (("resnet18", resnet18_shapes()), ("flat_350M", [(350_000_000,)])):
        numel = sum(torch.Size(s).numel() for s in shapes)
        row = dict(problem=label, tensors=len(shapes), numel=numel, ms={})
        cases = {
            "fused_adamw": lambda p, m: MaskedAdamW(p, m, lr=1e-3, backend="triton").step,
            "fused_adamw_bits": lambda p, m: MaskedAdamW(p, m, lr=1e-3, backend="triton", saliency_storage="bits").step,
            "torch_fused_adamw+mask": lambda p, m: torch_masked_step(torch.optim.AdamW(p, lr=1e-3, fused=True), p, m),
            "torch_foreach_adamw+mask": lambda p, m: torch_masked_step(torch.optim.AdamW(p, lr=1e-3, foreach=True), p, m),
            "fused_sgd": lambda p, m: MaskedSGD(p, m, lr=0.01, momentum=0.9, weight_decay=5e-4, backend="triton").step,
            "torch_foreach_sgd+mask": lambda p, m: torch_masked_step(
                torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True), p, m),
        }
        for name, make in cases.items():
            params, masks = make_problem(shapes, device)
            row["ms"][name] = cuda_time_ms(make(params, masks))
            del params, masks
            torch.cuda.empty_cache()
        params, masks = make_problem(shapes, device, dtype=torch.bfloat16)
        row["ms"]["fused_adamw_bf16_params"] = cuda_time_ms(MaskedAdamW(params, masks, lr=1e-3, backend="triton").step)
        del params, masks
        torch.cuda.empty_cache()
        adamw_bytes = numel * (4 * 4 + 1 + 3 * 4)  # read p g m v + mask, write p m v
        sgd_bytes = numel * (3 * 4 + 1 + 2 * 4)  # read p g buf + mask, write p buf
        row["adamw_floor_ms"] = adamw_bytes / bandwidth * 1e3
        row["adamw_bits_floor_ms"] = (adamw_bytes - numel * 7 / 8) / bandwidth * 1e3
        row["sgd_floor_ms"] = sgd_bytes / bandwidth * 1e3
        row["adamw_over_floor"] = row["ms"]["fused_adamw"] / row["adamw_floor_ms"]
        row["adamw_bits_over_floor"] = row["ms"]["fused_adamw_bits"] / row["adamw_bits_floor_ms"]
        row["sgd_over_floor"] = row["ms"]["fused_sgd"] / row["sgd_floor_ms"]
        row["adamw_speedup_vs_torch_fused"] = row["ms"]["torch_fused_adamw+mask"] / row["ms"]["fused_adamw"]
        results.append(row)
        print(row)
    results.append(threshold_case(350_000_000, device, cuda_time_ms))
    return dict(copy_bandwidth_GBps=bandwidth / 1e9, results=results)


def cpu(numel: int) -> dict:
    params, masks = make_problem([(numel,)], torch.device("cpu"))
    reference = [p.detach().clone().requires_grad_(True) for p in params]
    for r, p in zip(reference, params):
        r.grad = p.grad.clone()
    ours = MaskedAdamW(params, masks, lr=1e-3, backend="cpp")
    theirs = torch.optim.AdamW(reference, lr=1e-3, foreach=True)
    ours.step()
    torch_masked_step(theirs, reference, masks)()
    # torch + mask multiply still decays the masked weights (the bug SalUn fixed), so only the
    # salient coordinates can agree
    same = all(torch.allclose(a[m], b[m], rtol=1e-6, atol=1e-7) for a, b, m in zip(params, reference, masks))
    packed = MaskedAdamW(params, masks, lr=1e-3, backend="cpp", saliency_storage="bits")
    seconds = interleaved_median_times({"fused_cpp_adamw": ours.step, "fused_cpp_adamw_bits": packed.step,
                                        "torch_foreach_adamw+mask": torch_masked_step(theirs, reference, masks)})
    row = dict(problem=f"flat_{numel // 1_000_000}M", numel=numel, ms={k: v * 1e3 for k, v in seconds.items()},
               speedup=seconds["torch_foreach_adamw+mask"] / seconds["fused_cpp_adamw"],
               same_salient_numbers_after_one_step=same)
    print(row)
    threshold = threshold_case(numel, torch.device("cpu"), None)
    return dict(results=[row, threshold])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--numel", type=int, default=10_000_000, help="CPU mode problem size")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    on_gpu = torch.cuda.is_available() and not args.cpu
    payload = gpu(out) if on_gpu else cpu(args.numel)
    device = torch.device("cuda" if on_gpu else "cpu")
    write_json(dict(environment=environment(device), **payload), out / f"masked_step_{'gpu' if on_gpu else 'cpu'}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
