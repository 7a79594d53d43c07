#!/usr/bin/env bash
# The Dockerfile's base image for Podman where no image registry is reachable: Debian bookworm
# (debootstrap --variant=minbase) from the Debian mirror in this machine's apt sources, slimmed like
# the official debian:bookworm-slim (no docs, man pages or locales; no apt caches) and imported as
# docker.io/library/debian:bookworm-slim, the name the FROM line resolves to. Skipped when that image
# exists. Needs root, debootstrap and podman (configured by container/podman-env.sh).
# usage: bash container/base-image.sh
set -euo pipefail

image=docker.io/library/debian:bookworm-slim
suite=bookworm
if podman image exists "$image"; then
    echo "base-image: $image exists" >&2
    exit 0
fi

# The mirror apt uses for a suite's main component (deb822 .sources or one-line sources.list alike).
mirror() {
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' |
        awk -v suite="$1" '$2 == suite && $3 == "main" { print $1; exit }'
}
debian=$(mirror "$suite")
if [[ -z $debian ]]; then
    echo "base-image: no Debian $suite main mirror in the apt sources (run apt-get update first)" >&2
    exit 2
fi
security=$(mirror "$suite-security")

work=$(mktemp -d "${TMPDIR:-/tmp}/rentprice-base.XXXXXX")
rootfs=$work/rootfs
cleanup() {
    # debootstrap mounts /proc and /sys inside the tree: unmount before removing anything.
    findmnt --list --noheadings --output TARGET | awk -v dir="$work" 'index($0, dir "/") == 1' |
        sort -r | while read -r target; do umount --lazy "$target"; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

SECONDS=0
if ! debootstrap --variant=minbase "$suite" "$rootfs" "$debian" > "$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2
    exit 1
fi
echo "base-image: debootstrap $suite from $debian in ${SECONDS}s" >&2

# Slim like the official image: dpkg leaves documentation out of later installs too.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CONF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian/overrides,man}/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log

# The same suites as the official image, from this machine's mirrors.
rm -f "$rootfs/etc/apt/sources.list"
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$debian" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ -n $security ]]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
} > "$rootfs/etc/apt/sources.list.d/debian.sources"

SECONDS=0
tar --numeric-owner -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$image" > /dev/null
echo "base-image: imported $image ($(podman image inspect --format '{{.Size}}' "$image") bytes) in ${SECONDS}s" >&2
