#!/usr/bin/env bash
# Reproducibility proof: clone HEAD into a temporary directory, pull only the DVC-tracked source
# data, rebuild every stage with `dvc repro -f` and fail if dvc.lock or any tracked metric or plot
# file differs from what HEAD committed. Uses the dvc/python first on PATH (`make verify` puts
# .venv/bin there). Uncommitted changes are not part of the check: commit first.
set -euo pipefail
export DVC_NO_ANALYTICS=1

root=$(git rev-parse --show-toplevel)
commit=$(git -C "$root" rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/rentprice-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -n $(git -C "$root" status --porcelain) ]]; then
    echo "verify: note: uncommitted changes are ignored; verifying commit ${commit:0:7}" >&2
fi

# The same remote as this working copy: the committed config resolves ../shared beside the clone,
# and a local override (.dvc/config.local, e.g. credentials or another remote) is copied along.
git clone --quiet --no-checkout "$root" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$commit"
if [[ -e $root/../shared ]]; then
    ln -s "$(cd "$root/../shared" && pwd -P)" "$work/shared"
fi
if [[ -f $root/.dvc/config.local ]]; then
    cp "$root/.dvc/config.local" "$work/repo/.dvc/config.local"
fi

cd "$work/repo"
# Stages import `rentprice`; make them use the clone's copy, not an editable install elsewhere.
export PYTHONPATH="$work/repo${PYTHONPATH:+:$PYTHONPATH}"
mapfile -t sources < <(git ls-files '*.dvc')
SECONDS=0
if ((${#sources[@]})); then
    dvc pull --quiet "${sources[@]}"
fi
echo "verify: pulled ${#sources[@]} DVC-tracked source(s) in ${SECONDS}s" >&2
SECONDS=0
dvc repro --force --quiet
echo "verify: dvc repro --force rebuilt every stage of ${commit:0:7} in ${SECONDS}s" >&2

changed=$(git status --porcelain)
if [[ -n $changed ]]; then
    echo "verify: FAILED: a forced rebuild of ${commit:0:7} changed tracked files:" >&2
    echo "$changed" >&2
    git --no-pager diff --stat >&2
    git --no-pager diff >&2
    exit 1
fi
echo "verify: OK: dvc.lock and every tracked metric and plot file are reproduced byte for byte"
