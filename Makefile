VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8071
export DATABASE_URL ?= sqlite+aiosqlite:///$(CURDIR)/meet.db

.PHONY: run test lint typecheck pytest install migrate bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

.secret_key:
	$(PY) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

migrate: install
	$(VENV)/bin/meet-coordinator migrate

run: install .secret_key migrate
	SECRET_KEY=$${SECRET_KEY:-$$(cat .secret_key)} \
	LIVEKIT_API_SECRET=$${LIVEKIT_API_SECRET:-$$(cat .secret_key)} \
	MEET_ENGINE=$${MEET_ENGINE:-local} \
		$(VENV)/bin/meet-coordinator serve --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy coordinator api storage tests bench

pytest: install
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: install
	$(PY) -m bench.rooms

clean:
	rm -rf $(VENV) meet.db .secret_key .pytest_cache .mypy_cache .ruff_cache
