# cgibox: `make run` serves ./static and ./cgi-bin; `make test` runs every suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS ?=

.PHONY: run test lint clean bench image up down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cgibox --root static --cgi-dir cgi-bin $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info app/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# `make bench`: every front, nginx, lighttpd, twisted and `python -m http.server` under wrk, plus the
# connection cells -> docs/benchmarks.md + docs/benchmarks.png (about 10 minutes). `make bench QUICK=1`: about 1 s per cell, written to bench/results/quick.md instead,
# only to prove the benchmark runs. BENCH_ARGS passes more flags (see `python bench/run.py --help`).
QUICK ?=
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-$(shell cksum pyproject.toml | cut -d' ' -f1)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	rm -f $(VENV)/.bench-*
	touch $@

# The peers (nginx, lighttpd) are Debian packages installed here as root, like wrk; QUICK runs
# use them when present and never install them. One that cannot be installed is "not available".
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq
bench: $(STAMP) $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "bench: installing wrk with apt-get"; \
	    apt-get update -qq && $(APT_INSTALL) wrk; \
	  else \
	    echo "bench: wrk is not installed; install it with: sudo apt-get install wrk" >&2; exit 1; \
	  fi; }
	@if [ -z "$(filter 1 yes true,$(QUICK))" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	  [ -x /usr/sbin/lighttpd ] || missing="$$missing lighttpd"; \
	  if [ -n "$$missing" ]; then \
	    echo "bench: installing$$missing with apt-get"; \
	    { apt-get update -qq && $(APT_INSTALL) $$missing; } || echo "bench: could not install$$missing; going on without"; \
	  fi; \
	fi
	$(BIN)/python bench/run.py $(if $(filter 1 yes true,$(QUICK)),--quick) $(BENCH_ARGS)

# -- container: `make image`, `make up` (detached, waits until healthy), `make down`
# COMPOSE_PROFILES=gunicorn make up  also starts the gunicorn front on :8001
IMAGE ?= cgibox:latest
COMPOSE := CGIBOX_IMAGE=$(IMAGE) docker compose

image:
	docker build -t $(IMAGE) \
		--build-arg VERSION=$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) \
		--build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

up: image
	$(COMPOSE) up -d --wait
	@echo "cgibox is up on http://$$($(COMPOSE) port cgibox 8000)/"

down:
	$(COMPOSE) --profile gunicorn down
