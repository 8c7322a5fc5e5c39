# Two entry points, each creating the virtual environment it needs:
#   make demo   - the whole unlearning story on the embedded digits data, 3 seeds (CPU, about 3 minutes)
#   make test   - builds the sdist and the wheel, installs the wheel into a fresh venv and runs the
#                 test suite against that installed package, from outside the source tree
# .venv is the development environment (editable install: demo, gate, benchmarks);
# .venv-wheel holds only what a user gets from `pip install wsscl_fast-*.whl`.
VENV ?= .venv
WHEEL_VENV ?= .venv-wheel
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHEEL_STAMP := $(WHEEL_VENV)/.installed
PACKAGE_SOURCES := setup.py pyproject.toml MANIFEST.in $(shell git ls-files wsscl_fast kernels csrc 2>/dev/null)

.PHONY: demo test test-dispatch check-wheel gate bench-quality bench-cpu bench-unlearn clean

$(STAMP): setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch torchvision numpy scikit-learn tqdm matplotlib pillow pytest hypothesis ninja build
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

dist/.built: $(STAMP) $(PACKAGE_SOURCES)  # the sdist, then the wheel built from that sdist (C++ extension included)
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	touch $@

$(WHEEL_STAMP): dist/.built  # a fresh venv with the wheel and the test tools, nothing else
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q dist/wsscl_fast-*.whl pytest hypothesis
	touch $@

check-wheel: $(WHEEL_STAMP)  # what a new user does first, from a directory outside the source tree
	cd "$$(mktemp -d)" && PATH="$(CURDIR)/$(WHEEL_VENV)/bin:$$PATH" sh -euc '\
	  python -c "import wsscl_fast, sys; from wsscl_fast import unlearn; print(\"imported\", wsscl_fast.__file__)"; \
	  wsscl-fast --version; wsscl-fast --help > /dev/null; wsscl-fast demo --help > /dev/null; \
	  wsscl-fast train --data digits --epochs 1 --out base --quiet; \
	  wsscl-fast unlearn --checkpoint base/model.pt --forget class:3 --set forget_epochs=1 --set finetune_epochs=1 \
	    --out unlearned --quiet'

demo: $(STAMP)
	$(PY) -m wsscl_fast demo --force  # replaces the previous demo run's tables and plots

test: check-wheel  # the suite from this tree's tests/, importing the installed wheel (conftest.py checks which)
	cd "$$(mktemp -d)" && WSSCL_TEST_INSTALLED=1 "$(CURDIR)/$(WHEEL_VENV)/bin/python" -m pytest -q -p no:cacheprovider \
	  -c "$(CURDIR)/pyproject.toml" --rootdir "$(CURDIR)" "$(CURDIR)/tests"

# the numerics-sensitive tests (fast path, ops against the reference, optimizers) again under
# other CPU dispatch levels, against the installed wheel: ATen's portable kernels, and ATen and
# oneDNN capped at AVX2 (an AVX2-only machine, such as an AMD EPYC, whatever this CPU has)
NUMERICS_TESTS := test_fast_path.py test_infonce.py test_optim.py test_reference.py test_properties.py test_saliency_select.py
DISPATCH_LEVELS := "ATEN_CPU_CAPABILITY=default" "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"
test-dispatch: $(WHEEL_STAMP)
	for level in $(DISPATCH_LEVELS); do echo "== $$level"; \
	  (cd "$$(mktemp -d)" && env $$level WSSCL_TEST_INSTALLED=1 "$(CURDIR)/$(WHEEL_VENV)/bin/python" -m pytest -q \
	    -p no:cacheprovider -c "$(CURDIR)/pyproject.toml" --rootdir "$(CURDIR)" \
	    $(addprefix "$(CURDIR)/tests/",$(NUMERICS_TESTS))) || exit 1; done

gate: $(STAMP)  # the full ahead-of-time compile sweep (sm_80 + sm_90, no GPU); the test suite runs its quick subset
	$(PY) -m wsscl_fast.kernels.compile_gate --out benchmarks/results/compile_gate.md

bench-quality: $(STAMP)  # every method tuned (8 trials each), 2 regimes x 2 scenarios, 3 reported seeds (hours on 2 cores)
	for regime in generalise memorise; do for forget in random:0.1 class:0; do \
	  $(PY) -m benchmarks.quality.bench_quality_cpu --regime $$regime --forget $$forget --tune-trials 8 \
	    --variant wsscl:contrastive_weight=0 || exit 1; done; done
	$(PY) -m benchmarks.publish.summarize_quality
	$(PY) -m benchmarks.publish.export_presets
	$(PY) -m benchmarks.publish.update_readme

bench-cpu: $(STAMP)
	$(PY) -m benchmarks.kernels.bench_infonce --cpu
	$(PY) -m benchmarks.kernels.bench_masked_step --cpu

bench-unlearn: $(STAMP)  # ResNet-18 on CIFAR-10 end to end (GPU); ARGS=--smoke checks the script on a CPU
	$(PY) -m benchmarks.kernels.bench_unlearn $(ARGS)

clean:
	rm -rf $(VENV) $(WHEEL_VENV) build dist *.egg-info wsscl_fast/_C*.so
