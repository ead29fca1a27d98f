VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8071
# The suite runs on every core of the CI machine (2 here), one local Ray per worker that needs it.
PYTEST_WORKERS ?= 2
export DATABASE_URL ?= sqlite+aiosqlite:///$(CURDIR)/meet.db

.PHONY: run demo test lint typecheck pytest install chromium postgres nginx migrate bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The browser tests drive Debian's chromium (never a downloaded browser). Installed when missing
# and we are root with apt-get; otherwise the tests say loudly that they were skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for tests/browser"; \
	    { apt-get update -qq >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	    echo "installing chromium failed: browser tests will be SKIPPED" >&2; \
	  else \
	    echo "chromium missing (needs root and apt-get to install): browser tests will be SKIPPED" >&2; \
	  fi; }

# The PostgreSQL variant of the tests runs a throwaway cluster from Debian's initdb/pg_ctl.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the PostgreSQL tests"; \
	    { apt-get update -qq >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	    echo "installing postgresql failed: the PostgreSQL tests will be SKIPPED" >&2; \
	  else \
	    echo "initdb missing (needs root and apt-get to install): PostgreSQL tests SKIPPED" >&2; \
	  fi; }

# tests/test_media_proxy.py runs Debian's nginx in front of the coordinator. The package is
# unpacked into the venv (never installed: that would start a server on port 80).
NGINX_DIR := $(VENV)/nginx
nginx: install
	@test -x $(NGINX_DIR)/usr/sbin/nginx || command -v nginx >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    rm -rf $(NGINX_DIR).tmp && mkdir -p $(NGINX_DIR).tmp && cd $(NGINX_DIR).tmp && \
	    { apt-get download nginx >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get download nginx >/dev/null 2>&1; }; } && \
	    dpkg -x nginx_*.deb $(CURDIR)/$(NGINX_DIR) && cd $(CURDIR) && rm -rf $(NGINX_DIR).tmp || \
	    echo "unpacking Debian's nginx failed: the media proxy test will be SKIPPED" >&2; \
	  else echo "no apt-get: the media proxy test will be SKIPPED" >&2; fi; }

.secret_key:
	$(PY) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

migrate: install
	$(VENV)/bin/meet-coordinator migrate

run: install .secret_key migrate
	SECRET_KEY=$${SECRET_KEY:-$$(cat .secret_key)} \
	LIVEKIT_API_SECRET=$${LIVEKIT_API_SECRET:-$$(cat .secret_key)} \
	MEET_ENGINE=$${MEET_ENGINE:-local} \
		$(VENV)/bin/meet-coordinator serve --host $(HOST) --port $(PORT)

# A demonstration on loopback (not a deployment): the server with the LiveKit and OIDC stand-ins,
# a staff login it prints and bounded traffic for /ops/; Ctrl-C stops everything.
demo: install
	$(PY) -m bench.demo --port $(PORT)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy coordinator api storage tests bench

pytest: install chromium postgres nginx
	NGINX_BINARY=$${NGINX_BINARY:-$$(test -x $(NGINX_DIR)/usr/sbin/nginx && echo $(CURDIR)/$(NGINX_DIR)/usr/sbin/nginx)} \
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck pytest

bench: install
	$(PY) -m bench.rooms

clean:
	rm -rf $(VENV) meet.db .secret_key .pytest_cache .mypy_cache .ruff_cache
