#!/usr/bin/env bash
# CI: build the prediction service's image with rootful Podman and smoke-test it (docs/container.md).
# Installs podman, runc and debootstrap with apt when missing, configures Podman in a temporary
# directory (container/podman-env.sh), builds the base image from the machine's Debian mirror
# (container/base-image.sh, no registry needed), then runs `make image` and `make image-smoke`.
# Whatever happens, the containers, images, mounts and the directory are removed at the end.
# Fails when the image does not build, does not become healthy or predicts unlike the in-process model.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
image=rentprice:ci

timed() {
    local started=$SECONDS
    "$@"
    echo "container-ci: $* took $((SECONDS - started))s" >&2
}

install_tools() {
    local missing=()
    for package in podman runc debootstrap; do
        dpkg-query --show --showformat '${Status}' "$package" 2> /dev/null | grep -q 'ok installed' ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install --yes -qq --no-install-recommends "${missing[@]}" > /dev/null
    fi
}

timed install_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/rentprice-container-ci.XXXXXX")
trap 'bash container/podman-clean.sh "$work"' EXIT
# shellcheck source=../container/podman-env.sh
source container/podman-env.sh "$work"
export IMAGE_BUILD_FLAGS="--pull=never --network=host"
timed bash container/base-image.sh
timed make image IMAGE="$image"
timed make image-smoke IMAGE="$image"
echo "container-ci: $image is $(podman image inspect --format '{{.Size}}' "$image") bytes" >&2
