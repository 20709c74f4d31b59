# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The locked dependency set (README: "Dependencies"): the test lock is what .venv holds, the runtime lock the
# same versions for the service alone (the Dockerfile's).
TEST_LOCK := requirements/test.txt
RUNTIME_LOCK := requirements/runtime.txt
LOCK_INPUTS := pyproject.toml requirements/build.in
COMPILE = $(BIN)/uv pip compile $(LOCK_INPUTS) --universal --generate-hashes --quiet --custom-compile-command 'make lock'

.PHONY: install run demo broker test lint format typecheck lock upgrade openapi bench bench-full bench-evaluator clean

install: $(VENV)/.installed

# A fresh venv holding exactly the test lock (hashes checked, nothing resolved), then the project itself,
# editable, without dependencies, built by the locked setuptools. Re-run whenever a lock or pyproject.toml
# changes; the venv is cleared first so a package dropped from the lock is gone too.
$(VENV)/.installed: pyproject.toml $(TEST_LOCK) $(RUNTIME_LOCK)
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(TEST_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(BIN)/python -m app serve

# The service, its own broker and a simulated fleet (deploy/demo.py): prints the dashboard's URL and login token.
DISPLAYS ?= 60
DURATION ?= 900
demo: install
	$(BIN)/python deploy/demo.py --displays $(DISPLAYS) --duration $(DURATION)

# A development broker for `make run` and `python -m app simulate`: anonymous, on 127.0.0.1:1883 only.
broker:
	mosquitto -c deploy/mosquitto-dev.conf

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate the committed schema after an API change (tests/test_openapi.py fails until it matches).
openapi: install
	$(BIN)/python -m app openapi > docs/openapi.json

test: lint typecheck
	$(BIN)/python -m pytest

# Re-resolve both locks from pyproject.toml, keeping every locked version that still fits (a new dependency
# brings only what it needs). The test lock is resolved first; the runtime lock takes its versions.
lock: install
	$(COMPILE) --extra test $(UPGRADE_FLAGS) -o $(TEST_LOCK)
	$(COMPILE) -c $(TEST_LOCK) -o $(RUNTIME_LOCK)

# The newest versions pyproject.toml allows, for everything or for PACKAGES="fastapi starlette" only;
# then `make test` and the whole suite, and commit the locks with the code (README: "Upgrading").
upgrade: UPGRADE_FLAGS = $(if $(PACKAGES),$(foreach package,$(PACKAGES),--upgrade-package $(package)),--upgrade)
upgrade: lock

bench: install
	$(BIN)/python -m bench --quick

bench-full: install
	$(BIN)/python -m bench

# The status evaluator's database time per pass at 10,000 displays (docs/performance.md).
bench-evaluator: install
	$(BIN)/python -m bench.evaluator

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
