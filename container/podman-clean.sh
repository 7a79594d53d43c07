#!/usr/bin/env bash
# Remove a Podman directory made by container/podman-env.sh: its containers and images, every mount
# under it (the overlay driver's own bind mount, layer and shm mounts), then the files.
# usage: bash container/podman-clean.sh [DIR]   (default ${TMPDIR:-/tmp}/rentprice-podman)
set -euo pipefail

dir=${1:-${TMPDIR:-/tmp}/rentprice-podman}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd -P)
if [[ ! -f $dir/storage.conf || ! -f $dir/containers.conf ]]; then
    echo "podman-clean: $dir has no storage.conf/containers.conf: not a directory of podman-env.sh" >&2
    exit 2
fi
if command -v podman > /dev/null; then
    export CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf
    podman rm --all --force --time 5 > /dev/null || true
    podman rmi --all --force > /dev/null || true
fi
# Deepest first, so a mount is never removed from under another.
findmnt --list --noheadings --output TARGET | awk -v dir="$dir" 'index($0, dir "/") == 1' | sort -r |
    while read -r target; do
        umount "$target" || umount --lazy "$target"
    done
rm -rf --one-file-system "$dir"
