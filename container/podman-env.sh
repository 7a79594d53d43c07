# Source me: rootful Podman configured for this project's machines, where it needs three adjustments
# (docs/container.md). `source container/podman-env.sh [DIR]` writes DIR/containers.conf and
# DIR/storage.conf (images and containers under DIR/storage), exports CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF and CONTAINER_ENGINE=podman, and prints the DIR. DIR defaults to
# ${TMPDIR:-/tmp}/rentprice-podman; `bash container/podman-clean.sh DIR` removes it again.
#   - runtime runc: crun refuses this machine's cgroup layout;
#   - default_ulimits no higher than the machine's hard limits: raising them fails without
#     CAP_SYS_RESOURCE;
#   - cgroupfs and a file event log: no systemd runs here.
# Only plain assignments, so sourcing does not change the caller's shell options.

rentprice_podman_dir=${1:-${TMPDIR:-/tmp}/rentprice-podman}
mkdir -p "$rentprice_podman_dir"
rentprice_podman_dir=$(cd "$rentprice_podman_dir" && pwd -P)
rentprice_nofile=$(ulimit -Hn)
rentprice_nproc=$(cat /proc/sys/kernel/pid_max)
if [[ $(ulimit -Hu) != unlimited ]] && (($(ulimit -Hu) < rentprice_nproc)); then
    rentprice_nproc=$(ulimit -Hu)
fi
cat > "$rentprice_podman_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$rentprice_nofile:$rentprice_nofile", "nproc=$rentprice_nproc:$rentprice_nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$rentprice_podman_dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$rentprice_podman_dir/storage"
runroot = "$rentprice_podman_dir/run"
CONF
export CONTAINERS_CONF="$rentprice_podman_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$rentprice_podman_dir/storage.conf"
export CONTAINER_ENGINE=podman
echo "podman: configuration and storage in $rentprice_podman_dir (nofile=$rentprice_nofile, nproc=$rentprice_nproc)" >&2
unset rentprice_nofile rentprice_nproc
