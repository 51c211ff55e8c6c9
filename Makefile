# acdkit — a bare `make` lists the targets.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
LAB   := source scripts/podman-env.sh &&
PYTEST_ARGS ?=
FUZZ_RUNS ?= 100000
FUZZ_TARGETS ?=
# bench and chaos JSON go here (ignored by git); figures quoted in docs are copied to
# docs/bench/ with their date and machine.
RESULTS ?= var/results

.DEFAULT_GOAL := help
.PHONY: help install deps venv lock image docs lab-build lab-up lab-down lab-logs lab-cli test test-unit \
        test-integration test-lab demo lint bench bench-ab fuzz chaos

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

deps:  ## install the Debian packages (podman, sipp, redis-server, espeak-ng, sox) when missing
	@bash scripts/install-deps.sh

# Locked installs: requirements.lock pins every direct and transitive dependency (runtime, dev
# and asr extras) with hashes, so a fresh machine gets the versions CI tested. It is written by
# uv (`uv pip compile`): well kept, fast, and its output is a plain requirements file that pip
# installs with no extra tool. The lock is resolved against pypi.org only, whatever index this
# machine's pip.conf adds. See docs/operations.md.
LOCK := requirements.lock
$(VENV)/.installed: $(LOCK) pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q --require-hashes -r $(LOCK)
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed  ## the venv: exactly the locked versions, acdkit editable

# requirements-app.lock: the same versions for runtime + asr only (the image, the wheel test).
# pocketsphinx, the light speech fallback, has no wheel for Debian's Python 3.14: the image
# transcribes with faster-whisper alone.
lock:  ## regenerate requirements.lock (and requirements-app.lock) from pyproject.toml
	@test -x $(VENV)/bin/uv || { python3 -m venv $(VENV) && $(VENV)/bin/pip install -q uv; }
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra asr --universal \
		--python-version 3.11 --generate-hashes --default-index https://pypi.org/simple \
		--custom-compile-command "make lock" --quiet -o $(LOCK)
	$(VENV)/bin/uv pip compile pyproject.toml --extra asr --universal --python-version 3.11 \
		--generate-hashes --default-index https://pypi.org/simple -c $(LOCK) \
		--no-emit-package pocketsphinx --custom-compile-command "make lock" --quiet \
		-o requirements-app.lock

install: deps venv  ## install everything: Debian packages, the venv with acdkit and its dev tools

lab-build: deps  ## build the lab image (Asterisk 22 + SIPp from Debian sid) if missing or changed
	@bash scripts/lab-build.sh

image:  ## build acdkit's container image localhost/acdkit:latest (asterisk/acdkit.Containerfile)
	@source scripts/podman-env.sh && bash scripts/image-build.sh

docs: venv  ## regenerate docs/configuration-reference.md from the Settings dataclasses
	$(PY) scripts/config_reference.py

lab-up: install  ## start the lab (Asterisk, Redis) and wait until Asterisk is ready
	@bash scripts/lab-up.sh

lab-down:  ## stop the lab
	@bash scripts/lab-down.sh

lab-logs:  ## follow the lab's Asterisk log
	@bash scripts/lab-logs.sh

lab-cli:  ## the Asterisk console of the lab
	@bash scripts/lab-cli.sh

test-unit: install  ## unit tests (pure core, no I/O)
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: install  ## integration tests (real redis-server, RQ, SIPp peers)
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

test-lab: lab-up  ## lab tests (real Asterisk in podman, SIPp callers, agents and customers)
	$(LAB) $(PY) -m pytest tests/lab -q $(PYTEST_ARGS)

test: lab-up  ## everything: install, lab up, unit + integration + lab tests
	$(LAB) $(PY) -m pytest tests -q $(PYTEST_ARGS)

demo: lab-up  ## the lab demo: a SIPp call reaches acdkit on a real Asterisk; prints the story
	$(LAB) $(PY) scripts/demo.py

fuzz: install  ## fuzz every parser of outside input, FUZZ_RUNS (100000) inputs each; prints crashes
	@$(PY) -c 'import atheris' 2>/dev/null || $(VENV)/bin/pip install -q -e '.[fuzz]' \
		|| echo "atheris not installable here: fuzzing with hypothesis only"
	$(PY) tests/fuzz/fuzz_targets.py --runs $(FUZZ_RUNS) $(FUZZ_TARGETS)

lint: install  ## ruff and mypy --strict on src
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src

bench: lab-up  ## benchmarks: print figures (ARI round trip, dispatcher claims, calls vs native Queue())
	@mkdir -p $(RESULTS)
	$(LAB) $(PY) tests/bench/bench_ari.py --out $(RESULTS)/bench-ari.json
	$(PY) tests/bench/bench_dispatch.py --out $(RESULTS)/bench-dispatch.json
	$(PY) tests/bench/bench_claim_audit.py --out $(RESULTS)/bench-claim-audit.json
	$(PY) tests/bench/bench_wait.py --out $(RESULTS)/bench-wait.json
	$(PY) tests/bench/bench_redis_socket.py --out $(RESULTS)/bench-redis-socket.json
	$(LAB) flock /tmp/acdkit-lab.lock $(PY) tests/bench/bench_calls.py --dispatch-json $(RESULTS)/bench-dispatch.json --out $(RESULTS)/bench-calls.json
	$(PY) tests/bench/bench_import.py --out $(RESULTS)/bench-import.json
	$(PY) tests/bench/bench_asr.py --out $(RESULTS)/bench-asr.json

BASE ?= HEAD~1
bench-ab: lab-up  ## serve's CPU per call, BASE=<git rev> against the working tree, in turn (5 runs each)
	@mkdir -p $(RESULTS)
	$(LAB) $(PY) tests/bench/ab_calls.py --base $(BASE) --out $(RESULTS)/bench-ab.json

chaos: lab-up  ## faults under load (6 min: worker killed x30, active serve x10 with a standby, Redis primary failed over x5, Asterisk restarted x1 and down 30 s x2; then up to 3 min drain), then check every callback and caller; exit 1 on a violation
	@mkdir -p $(RESULTS)
	$(LAB) flock /tmp/acdkit-lab.lock $(PY) tests/bench/chaos.py --out $(RESULTS)/chaos.json
