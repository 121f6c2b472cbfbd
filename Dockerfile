# cgibox: a static-file and CGI/1.1 server appliance.
#
#   docker build -t cgibox .                      (or: make image)
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/static:/srv/www:ro" -v "$PWD/cgi-bin:/srv/cgi-bin:ro" cgibox
#
# Everything after the image name is passed to `cgibox` (e.g. `--front forking`); settings are
# also read from CGIBOX_* variables. Change the port with CGIBOX_PORT (not --port) so that the
# HEALTHCHECK follows it.

ARG PYTHON_VERSION=3.13

# ---------------------------------------------------------------- builder: the venv, with pip
FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
# the dependencies first, from pyproject.toml alone, so that a change to the code reuses this layer
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
# then cgibox itself, built as a wheel (no setuptools or build tree left in the venv)
COPY README.md LICENSE ./
COPY app ./app
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/cgibox-*.whl \
 && /opt/venv/bin/pip uninstall -y -q pip \
 && /opt/venv/bin/cgibox --version

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim
# tini as the init: it reaps the orphans that CGI scripts leave behind and passes SIGTERM on to
# cgibox. `-s` (subreaper) makes it reap even when it is not PID 1, as under `docker run --init`
# or compose's `init: true`, where Docker's own init runs above it.
# compileall: the standard library's bytecode where the base lacks it (a no-op where it has it): the
# root file system is read-only at run time, so without it every start and every healthcheck would
# compile urllib & co. again (~0.15 s of CPU each time). `prlimit` (util-linux, in the base image)
# applies --cgi-limits: the build fails here if a base image ever lacks it.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log \
 && groupadd --system --gid 10001 cgibox \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cgibox \
 && mkdir -p /srv/www /srv/cgi-bin \
 && command -v prlimit >/dev/null \
 && python3 -m compileall -q -j0 -x '/(test|idlelib|tkinter|turtledemo|lib2to3|ensurepip)/' \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" >/dev/null

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CGIBOX_HOST=0.0.0.0 \
    CGIBOX_PORT=8000 \
    CGIBOX_ROOT=/srv/www \
    CGIBOX_CGI_DIR=/srv/cgi-bin

# the served folders stay root's: the server and its scripts can read them, never change them
WORKDIR /srv
USER 10001:10001
EXPOSE 8000

# python3 and urllib are all the slim image needs; it follows CGIBOX_PORT (and CGIBOX_HOST when that
# is one address rather than "any"). Its User-Agent marks it as a probe: kept out of the access log
# and /stats (CGIBOX_LOG_PROBES=1 logs and counts them).
# With CGIBOX_TLS_CERT set it asks over HTTPS (the certificate is not checked: it is our own port).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, ssl, urllib.request as u; h = os.environ.get('CGIBOX_HOST', '').strip('[]'); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else h; h = '[%s]' % h if ':' in h else h; s = 'https' if os.environ.get('CGIBOX_TLS_CERT') else 'http'; u.urlopen(u.Request('%s://%s:%s/healthz' % (s, h, os.environ.get('CGIBOX_PORT') or '8000'), headers={'User-Agent': 'cgibox-healthcheck'}), timeout=4, context=ssl._create_unverified_context())"]

ARG PYTHON_VERSION
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="cgibox" \
      org.opencontainers.image.description="A static-file and CGI/1.1 server appliance: directory listings, Range, ETags, keep-alive and safe CGI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="python:${PYTHON_VERSION}-slim"

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "cgibox"]
CMD []
