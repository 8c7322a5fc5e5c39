# Two entry points, each creating the virtual environment it needs:
#   make demo   - the whole unlearning story on the embedded digits data, 3 seeds (CPU, about 3 minutes)
#   make test   - the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test gate bench-quality bench-cpu bench-unlearn clean

$(STAMP): setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch torchvision numpy scikit-learn tqdm matplotlib pillow pytest hypothesis ninja
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m wsscl_fast demo --force  # replaces the previous demo run's tables and plots

test: $(STAMP)
	$(PY) -m pytest -q

gate: $(STAMP)  # the full ahead-of-time compile sweep (sm_80 + sm_90, no GPU); the test suite runs its quick subset
	$(PY) -m wsscl_fast.kernels.compile_gate --out benchmarks/results/compile_gate.md

bench-quality: $(STAMP)  # both scenarios, 3 seeds, with the audit (about 80 minutes on 2 cores, caches included)
	$(PY) -m benchmarks.bench_quality_cpu --forget random:0.1 --name quality_cpu
	$(PY) -m benchmarks.bench_quality_cpu --forget class:0 --name quality_cpu_classwise
	$(PY) -m benchmarks.update_readme

bench-cpu: $(STAMP)
	$(PY) -m benchmarks.bench_infonce --cpu
	$(PY) -m benchmarks.bench_masked_step --cpu

bench-unlearn: $(STAMP)  # ResNet-18 on CIFAR-10 end to end (GPU); ARGS=--smoke checks the script on a CPU
	$(PY) -m benchmarks.bench_unlearn $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info wsscl_fast/_C*.so
