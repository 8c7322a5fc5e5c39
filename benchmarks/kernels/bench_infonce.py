"""Fused InfoNCE forward+backward against the eager reference, torch.compile and Inf-CL.

GPU mode (default when CUDA is present): shapes (N, M, D) = (256, 256, 512), (1024, 16384, 256),
(4096, 65536, 256) in fp32 and bf16; median time of forward+backward (triton.testing.do_bench), peak memory
beyond inputs and gradients, and the bf16 tensor-core floor (4 matmuls of 2*N*M*D FLOPs over
the bf16 matmul rate measured in this run). CPU mode (--cpu): the C++ path against eager and
against the three GEMMs alone, timed in alternating rounds.

    python -m benchmarks.kernels.bench_infonce            # GPU
    python -m benchmarks.kernels.bench_infonce --cpu      # CPU: C++ vs eager
Writes benchmarks/results/infonce_{gpu,cpu}.json and .png (or --out DIR).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.harness import REPO, cuda_time_ms, environment, interleaved_median_times, provenance, write_json

from wsscl_fast import infonce_loss
from wsscl_fast.reference import infonce_loss_ref
from wsscl_fast.report import save_figure

GPU_SHAPES = [(256, 256, 512), (1024, 16384, 256), (4096, 65536, 256)]
CPU_SHAPES = [(256, 256, 512), (256, 4096, 512), (1024, 4096, 256)]


def inf_cl_loss():
    """Inf-CL's tiled loss (PyPI inf-cl), if installed: same FLOPs, other anchors' positives also count."""
    try:
        from inf_cl import cal_flash_loss
    except ImportError:
        return None

    def loss(a, p, r, tau):
        a, keys = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(torch.cat([p, r]), dim=1)
        labels = torch.arange(a.shape[0], device=a.device)
        return cal_flash_loss(a, keys, labels=labels, scale=1.0 / tau).mean()

    return loss


def variants(device: torch.device):
    out = {"eager": lambda a, p, r, tau: infonce_loss_ref(a, p, r, tau)}
    if device.type == "cuda":
        out["fused_triton"] = lambda a, p, r, tau: infonce_loss(a, p, r, tau, backend="triton", check_inputs=False)
        compiled = torch.compile(infonce_loss_ref, dynamic=False)
        out["torch_compile"] = lambda a, p, r, tau: compiled(a, p, r, tau)
        if (inf_cl := inf_cl_loss()) is not None:
            out["inf_cl"] = inf_cl
    else:
        out["fused_cpp"] = lambda a, p, r, tau: infonce_loss(a, p, r, tau, backend="cpp", check_inputs=False)
    return out


def bf16_matmul_tflops(device) -> float:
    """Measured dense bf16 matmul rate (8192^3), the denominator of the floor."""
    x = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    ms = cuda_time_ms(lambda: x @ x)
    return 2 * 8192**3 / (ms * 1e-3) / 1e12


def make_step(fn, shape, dtype, device, tau=0.5):
    """(forward+backward closure, its inputs) on fresh seeded inputs of ``shape``."""
    n, m, d = shape
    g = torch.Generator(device=device).manual_seed(0)
    inputs = [torch.randn(k, d, device=device, dtype=dtype, generator=g).requires_grad_(True) for k in (n, n, m)]

    def step():
        for x in inputs:
            x.grad = None
        fn(*inputs, tau).backward()

    return step, inputs


def gemm_floor_step(shape, dtype):
    """The three products any InfoNCE forward+backward needs, A R^T, G R and G^T A, as plain
    torch.mm on all threads: the CPU floor the fused path is measured against."""
    n, m, d = shape
    a, r, g = torch.randn(n, d, dtype=dtype), torch.randn(m, d, dtype=dtype), torch.randn(n, m, dtype=dtype)
    return lambda: (a @ r.T, g @ r, g.T @ a)


def measure_cpu(fns: dict, shape, dtype) -> dict:
    """CPU: the variants and the GEMM floor timed in alternating rounds
    (``interleaved_median_times``)."""
    steps = {name: make_step(fn, shape, dtype, torch.device("cpu"))[0] for name, fn in fns.items()}
    steps["gemm_floor"] = gemm_floor_step(shape, dtype)
    return {name: dict(ms=1e3 * s) for name, s in interleaved_median_times(steps).items()}


def measure_cuda(fn, shape, dtype, device) -> dict:
    """Median time (do_bench) of forward+backward and the peak memory beyond inputs and gradients."""
    step, inputs = make_step(fn, shape, dtype, device)
    step()  # compile / first launch outside the timing and the memory measurement
    for x in inputs:
        x.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize()
    grads = sum(x.grad.numel() * x.grad.element_size() for x in inputs)
    extra = torch.cuda.max_memory_allocated(device) - base - grads
    return dict(ms=cuda_time_ms(step), extra_mb=max(0, extra) / 2**20)


def plot(results, path: Path, title: str, stamp: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['shape']}\n{r['dtype']}" for r in results]
    names = [k for k in results[0]["variants"]]
    fig, ax = plt.subplots(figsize=(7, 3), dpi=90)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar([j + i * width for j in range(len(results))], [r["variants"][name]["ms"] for r in results], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(results))], labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("fwd+bwd ms (log)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, stamp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="CPU mode: the C++ path against eager")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.cpu or not torch.cuda.is_available() else "cuda")
    shapes, dtypes = (CPU_SHAPES, [torch.float32]) if device.type == "cpu" else (GPU_SHAPES, [torch.float32, torch.bfloat16])
    results = []
    floor_rate = bf16_matmul_tflops(device) if device.type == "cuda" else None
    for shape in shapes:
        for dtype in dtypes:
            row = dict(shape=list(shape), dtype=str(dtype).replace("torch.", ""), variants={})
            if device.type == "cpu":
                row["variants"] = measure_cpu(variants(device), shape, dtype)
            else:
                for name, fn in variants(device).items():
                    try:
                        row["variants"][name] = measure_cuda(fn, shape, dtype, device)
                    except torch.cuda.OutOfMemoryError:
                        row["variants"][name] = dict(ms=float("nan"), error="out of memory")
                        torch.cuda.empty_cache()
            fused = "fused_triton" if device.type == "cuda" else "fused_cpp"
            row["speedup_vs_eager"] = row["variants"]["eager"]["ms"] / row["variants"][fused]["ms"]
            if "gemm_floor" in row["variants"]:
                row["fused_over_gemm_floor"] = row["variants"][fused]["ms"] / row["variants"]["gemm_floor"]["ms"]
                row["eager_over_gemm_floor"] = row["variants"]["eager"]["ms"] / row["variants"]["gemm_floor"]["ms"]
            if "torch_compile" in row["variants"]:
                row["speedup_vs_compile"] = row["variants"]["torch_compile"]["ms"] / row["variants"][fused]["ms"]
            if floor_rate:
                n, m, d = shape
                row["bf16_floor_ms"] = 4 * 2 * n * m * d / (floor_rate * 1e12) * 1e3
                row["fused_over_floor"] = row["variants"][fused]["ms"] / row["bf16_floor_ms"]
            results.append(row)
            print(row)
    tag = "gpu" if device.type == "cuda" else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    measured_with = environment(device)
    write_json(dict(environment=measured_with, bf16_matmul_tflops=floor_rate, results=results), out / f"infonce_{tag}.json")
    plot(results, out / f"infonce_{tag}.png", f"InfoNCE fwd+bwd on {measured_with['device']}", provenance(measured_with))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
