# CRoW: `make run` serves the registry, `make test` runs the test suite.
# Both create .venv on first use and reinstall requirements only when they change.

PORT ?= 5000
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The stamp's name carries a hash of the requirements: editing them, or checking
# out other ones, makes a new stamp that does not exist yet, so pip runs again.
RUN_STAMP := $(VENV)/.installed-run-$(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)

.PHONY: run test lint format bench

# The embedded default is a registry for one developer: open, so that a push
# works at once. Set CROW_AUTH_DISABLED=0 (and see the README) for accounts.
run: export CROW_AUTH_DISABLED ?= 1
# crow.start (the container's command too) runs the system checks once, migrates, creates the
# first administrator from CROW_ADMIN_USER/CROW_ADMIN_PASSWORD, then becomes the server.
run: $(RUN_STAMP)
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) exec $(BIN)/python -m crow.start

test: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# CRoW against the reference registry, side by side (a few minutes; not part of `make test`).
bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-run-*
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-*
	touch $@
