#!/usr/bin/env bash
# Build or smoke-test the service's container image with Docker or Podman (docs/container.md).
# usage: bash container/image.sh build IMAGE   (make image: the model must be up to date first)
#        bash container/image.sh smoke IMAGE   (make image-smoke)
# CONTAINER_ENGINE picks docker or podman (default: docker when its daemon answers, else podman);
# IMAGE_BUILD_FLAGS adds build options (CI: --pull=never --network=host); CA_BUNDLE is the
# certificate bundle pip trusts inside the build (default: the system's, when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: bash container/image.sh build|smoke IMAGE" >&2
    exit 2
}
(($# == 2)) || usage
action=$1 image=$2

engine=${CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
    if command -v docker > /dev/null && docker info > /dev/null 2>&1; then
        engine=docker
    elif command -v podman > /dev/null; then
        engine=podman
    else
        echo "image: neither a Docker daemon nor Podman answers: install one (docs/container.md)" >&2
        exit 2
    fi
fi

build() {
    local model=models/model.joblib flags=()
    for needed in "$model" dvc.lock metrics/eval/metrics.json; do
        if [[ ! -f $needed ]]; then
            echo "image: $needed is missing: run \`dvc repro evaluate\` (make image does)" >&2
            exit 2
        fi
    done
    read -r -a flags <<< "${IMAGE_BUILD_FLAGS:-}"
    local ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
    if [[ -r $ca ]]; then
        flags+=(--secret "id=ca-bundle,src=$ca")
    fi
    if [[ $engine == podman ]]; then
        flags+=(--format docker) # the OCI format has no HEALTHCHECK
    fi
    SECONDS=0
    "$engine" build "${flags[@]}" \
        --label "org.opencontainers.image.revision=$(git describe --always --dirty 2> /dev/null || echo unknown)" \
        --label "rentprice.model.version=$(md5sum "$model" | cut -d' ' -f1)" \
        --tag "$image" .
    echo "image: built $image with $engine in ${SECONDS}s:" \
        "$("$engine" image inspect --format '{{.Size}}' "$image") bytes" >&2
}

# Podman without systemd logs errors because it cannot schedule the HEALTHCHECK's timer; harmless here:
# container/smoke.py runs the check itself. Those lines are dropped, everything else is kept.
engine_run() {
    if [[ $engine == podman ]]; then
        "$engine" "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
    else
        "$engine" "$@"
    fi
}

container=rentprice-smoke-$$
remove_container() {
    engine_run rm --force "$container" > /dev/null 2>&1 || true
}

smoke() {
    local port python=python
    [[ -x .venv/bin/python ]] && python=.venv/bin/python
    port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    trap remove_container EXIT
    engine_run run --detach --name "$container" --publish "127.0.0.1:$port:8000" "$image" > /dev/null
    if ! "$python" container/smoke.py --engine "$engine" --container "$container" --port "$port"; then
        echo "image: the container's last log lines:" >&2
        "$engine" logs --tail 30 "$container" >&2 || true
        exit 1
    fi
}

case $action in
build) build ;;
smoke) smoke ;;
*) usage ;;
esac
