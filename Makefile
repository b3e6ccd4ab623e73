# clearance — the two commands a new user runs: `make demo` and `make test`.
# Both bootstrap everything: a venv with pinned packages, then the local servers they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo demo-fail test unit lint down env shell schema lock clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[local,demo,test]'
	touch $(STAMP)

install: $(STAMP)

## A real promotion end to end; leaves SeaweedFS, the Prefect server (UI) and a worker running.
demo: install
	$(PY) -m clearance.dev.demo

## The other path: a candidate whose eval data drifted, stopped at data_check before anyone is asked.
demo-fail: install
	$(PY) -m clearance.dev.demo --fail

## Lint and type check first (seconds), then every test in three sessions side by side: tests/unit (pure: they
## start no server) in the background at a lower priority, and the server-backed tests split in two halves of
## about the same length, each a session with its own Prefect server and SeaweedFS (one of each per session;
## they mostly wait on them and on the flow runs they start). SECOND_HALF is the faults, the security tests and
## the Slack, Jira and dev-server integration files; the first half is the rest of tests/integration (measured
## on a fresh clone: 461 s and 654 s with two more files in the second half, which moved back). The other sessions'
## output follows when all are done. pytest exits 5 when it collected nothing: a failure here.
UNIT_LOG := .unit-tests.log
SECOND_LOG := .second-half-tests.log
SECOND_HALF := tests/faults tests/security tests/integration/test_devservers.py \
	tests/integration/test_slack_approvals.py tests/integration/test_jira_promotion.py
test: install lint
	@nice -n 10 $(PY) -m pytest tests/unit -p no:cacheprovider > $(UNIT_LOG) 2>&1 & unit=$$!; \
	$(PY) -m pytest $(SECOND_HALF) -p no:cacheprovider > $(SECOND_LOG) 2>&1 & second=$$!; \
	$(PY) -m pytest tests/integration $(addprefix --ignore=,$(filter tests/integration/%,$(SECOND_HALF))); rc=$$?; \
	wait $$second; src=$$?; echo "==> second half (run alongside, output from $(SECOND_LOG))"; cat $(SECOND_LOG); \
	wait $$unit; urc=$$?; echo "==> tests/unit (run alongside, output from $(UNIT_LOG))"; cat $(UNIT_LOG); \
	if [ $$urc -eq 5 ] || [ $$rc -eq 5 ] || [ $$src -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	if [ $$urc -ne 0 ]; then exit $$urc; fi; if [ $$src -ne 0 ]; then exit $$src; fi; exit $$rc

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
