# cgibox: `make run` serves ./static and ./cgi-bin; `make test` runs every suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stamps name the pyproject.toml they installed, so an edit to it reinstalls. `make run` needs only
# cgibox and its dependencies (SERVE_STAMP); every other target builds on STAMP, which adds the
# test extras (pytest, ruff, mypy) on top.
PYPROJECT_SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
SERVE_STAMP := $(VENV)/.serve-$(PYPROJECT_SUM)
STAMP := $(VENV)/.installed-$(PYPROJECT_SUM)
ARGS ?=

# pip says only what went wrong: no progress, no "new release of pip" notice, no warning about root
# (the venv is ours whoever runs make)
PIP := $(BIN)/python -m pip install -q
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: install run test fuzz lint docs clean bench bench-writes image up down cert

$(SERVE_STAMP): pyproject.toml
	@echo "make: installing cgibox into $(VENV) (on the first run, and after pyproject.toml changes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP) -e .
	@rm -f $(VENV)/.serve-*
	@touch $@

$(STAMP): $(SERVE_STAMP)
	$(PIP) -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(SERVE_STAMP)
	@$(BIN)/cgibox --root static --cgi-dir cgi-bin $(ARGS)

# after the whole run, the behaviour modules that parse heads run again on the fronts that use
# core.connection's parser with the hand parser alone (no httptools: tests/hand_parser)
COMMA := ,
HAND_PARSER_MODULES := tests/behaviour/test_connection.py tests/behaviour/test_framing.py \
	tests/behaviour/test_odd_input.py tests/behaviour/test_raw_fuzz.py tests/behaviour/test_ready.py
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,CGIBOX_TEST_PARSER=hand CGIBOX_TEST_FRONTS=threading$(COMMA)forking \
	  $(BIN)/python -m pytest -q $(HAND_PARSER_MODULES))

# the hypothesis suites with many more examples than `make test` gives them (a few minutes)
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/mypy  # pyproject's [tool.mypy]: --strict over app/cgibox

# README's flag table is written from config.SETTINGS (the text --help shows); run after adding a setting
docs: $(SERVE_STAMP)
	$(BIN)/python -m cgibox.docs README.md

clean:
	rm -rf $(VENV) bench/.peers-venv build *.egg-info app/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

# `make bench`: every front, nginx, lighttpd, twisted, `python -m http.server`, uvicorn + Starlette,
# aiohttp and granian under wrk, plus the connection cells and the TLS cells (on a certificate made for
# the run with openssl, as `make cert`) -> docs/benchmarks.md + docs/benchmarks.png (about 12 minutes).
# uvicorn, aiohttp and granian are pip-installed into bench/.peers-venv on the first run (kept; never
# .venv). `make bench QUICK=1`: about 1 s per cell, written to bench/results/quick.md instead, only to
# prove the benchmark runs. BENCH_ARGS passes more flags (see `python bench/run.py --help`), e.g.
# BENCH_ARGS="--servers nginx,granian,threading --cells file-1k,404 --duration 3".
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
	$(BIN)/python bench/webdav.py $(if $(filter 1 yes true,$(QUICK)),--duration 1)

# `make bench-writes`: the write cells (issue 21): a 1 GiB PUT by 4 clients against nginx's dav
# module, and a zip of a 1 GiB folder; MB/s and each server's memory growth (bench/writes.py)
bench-writes: $(STAMP)
	$(BIN)/python -m bench.writes $(BENCH_ARGS)

# `make cert`: a self-signed pair for local HTTPS, certs/cert.pem and certs/key.pem (localhost and
# 127.0.0.1, 30 days; CERT_NAMES adds names, e.g. CERT_NAMES=DNS:myhost,IP:192.168.1.20). The key is
# made readable by all so that the container's uid 10001 can read it: fine for a throw-away local
# pair, never for a real key (chown that one to 10001 and chmod 400).
CERT_DIR ?= certs
CERT_NAMES ?=
cert:
	@command -v openssl >/dev/null || { echo "cert: openssl is not installed" >&2; exit 1; }
	mkdir -p $(CERT_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1$(if $(CERT_NAMES),$(comma)$(CERT_NAMES))" \
		-keyout $(CERT_DIR)/key.pem -out $(CERT_DIR)/cert.pem 2>/dev/null
	chmod 644 $(CERT_DIR)/key.pem $(CERT_DIR)/cert.pem
	@echo "cert: wrote $(CERT_DIR)/cert.pem and $(CERT_DIR)/key.pem (self-signed; clients need --cacert $(CERT_DIR)/cert.pem)"
comma := ,

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
