# The prediction service (docs/container.md): gunicorn serving the pipeline's model.
# `make image` builds it after making sure models/model.joblib is up to date; by hand, with the
# model in place: docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt -t rentprice .
# (the secret is optional: pip trusts that CA bundle while installing, and it never lands in a layer).

# Debian's Python 3.11, shared by the build and the final stage.
FROM debian:bookworm-slim AS python
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

# A virtualenv with the service's runtime dependencies at the versions in requirements.lock: the
# package's core and `serve` extra (pyproject.toml), what the service imports; the pipeline, s3,
# report and dev extras (dvc, pyarrow, sqlalchemy, ...) are not installed. pip lives outside the
# virtualenv (--python), so neither pip nor setuptools reach the final image, and the test suites that
# numpy, pandas, scipy and scikit-learn ship (about 100 MB, used only by their own test runners) go.
FROM python AS build
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3-venv \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/pip && python3 -m venv --without-pip /opt/venv
# `.[serve]` is installed from pyproject.toml with empty package directories: the layer holds the
# dependencies and rentprice's metadata only (the source is copied below), so a code change does
# not download them again.
COPY requirements.lock pyproject.toml /tmp/src/
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && mkdir -p /tmp/src/rentprice/service \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-input \
        --disable-pip-version-check --only-binary=:all: --constraint /tmp/src/requirements.lock \
        "/tmp/src[serve]" \
    && cd /opt/venv/lib/python3.11/site-packages \
    && find numpy pandas scipy sklearn -depth -type d -name tests -exec rm -rf {} +

# The service: nginx in front of gunicorn (docs/service.md), the package source, the model with the
# dvc.lock that vouches for it (the service refuses a model whose md5 differs) and its test metrics.
# No data, no .git (training_commit is null).
FROM python
RUN apt-get update \
    && apt-get install --yes --no-install-recommends nginx-light \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home-dir /app --no-create-home --shell /usr/sbin/nologin rentprice
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY rentprice/ rentprice/
COPY container/healthcheck.py container/
COPY dvc.lock ./
COPY models/model.joblib models/
COPY metrics/eval/metrics.json metrics/eval/
# Compiled once here: the service user cannot write to /app. logs/ receives the service log file.
RUN /opt/venv/bin/python -m compileall -q rentprice container \
    && mkdir logs && chown rentprice: logs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    RENTPRICE_HOST=0.0.0.0 \
    RENTPRICE_PORT=8000 \
    RENTPRICE_WORKERS=2
USER rentprice
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/container/healthcheck.py"]
# exec: the launcher is PID 1, receives the engine's SIGTERM and stops nginx and gunicorn gracefully.
CMD ["/bin/sh", "-c", "exec python -m rentprice.service.serve --bind \"$RENTPRICE_HOST:$RENTPRICE_PORT\" --workers \"$RENTPRICE_WORKERS\""]
