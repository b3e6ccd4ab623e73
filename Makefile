# clearance — the two commands a new user runs: `make demo` and `make test`.
# Both bootstrap everything: a venv with pinned packages, then the local servers they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit lint down env shell schema lock clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[local,demo,test]'
	touch $(STAMP)

install: $(STAMP)

## A real promotion end to end; leaves SeaweedFS, the Prefect server (UI) and a worker running.
demo: install
	$(PY) -m clearance.dev.demo

## Lint and type check first (seconds), then every test in two sessions side by side: tests/unit (pure:
## they start no server) in the background at a lower priority, and the integration, security and fault tests in
## one session that starts one Prefect server and one SeaweedFS (mostly waiting on them). The unit
## session's output follows when both are done. pytest exits 5 when it collected nothing: a failure here.
UNIT_LOG := .unit-tests.log
test: install lint
	@nice -n 10 $(PY) -m pytest tests/unit -p no:cacheprovider > $(UNIT_LOG) 2>&1 & unit=$$!; \
	$(PY) -m pytest --ignore=tests/unit; rc=$$?; \
	wait $$unit; urc=$$?; echo "==> tests/unit (run alongside, output from $(UNIT_LOG))"; cat $(UNIT_LOG); \
	if [ $$urc -eq 5 ] || [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	if [ $$urc -ne 0 ]; then exit $$urc; fi; exit $$rc

unit: install
	$(PY) -m pytest tests/unit

## ruff (pyproject.toml [tool.ruff.lint]) and mypy (pyproject.toml [tool.mypy]) over the whole repository.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## Stop what `make demo` left running (its worker, the Prefect server, SeaweedFS): SIGTERM, wait, SIGKILL
## what is left after 15 s; says what happened to each, and fails if anything is still running.
down:
	@if test -x $(PY); then $(PY) -m clearance.dev.devservers down; else $(PYTHON) -m clearance.dev.devservers down; fi

## `eval $$(make -s env)` points this shell's CLI at the demo servers.
env:
	@$(PY) -m clearance.dev.devservers env

## A shell where `clearance` and the demo's servers, configs and service key just work (exit to leave).
shell:
	@eval "$$($(PY) -m clearance.dev.devservers env)" && echo "clearance shell: $$CLEARANCE_CONFIG_DIR (exit to leave)" && exec "$${SHELL:-bash}" -i

schema: install
	$(PY) -m clearance schema

## Re-pin every package version after changing pyproject.toml.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean: down
	rm -rf .local $(VENV)

## Benchmarks (bench/RESULTS.md keeps the latest figures).
bench: install
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) bench/data_check_bench.py
	$(PY) bench/personal_data_bench.py
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
	  || echo "wrk is not installed (apt-get install -y wrk): bench/load_generator_bench.py runs without it"
	$(PY) bench/load_generator_bench.py
