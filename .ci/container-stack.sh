#!/usr/bin/env bash
# Installs and starts the container stack the image and docker-target tests
# use, on a Debian machine without Docker Engine: podman (runc) serving the
# Docker-compatible API on a unix socket, Debian's docker-registry on
# loopback, skopeo and umoci. It prints the exports the tests need
# (DOCKER_HOST, KMLOPS_TEST_REGISTRY, KMLOPS_REGISTRY_LOG) on stdout;
# progress goes to stderr:
#
#   eval "$(bash .ci/container-stack.sh)"
set -euo pipefail

KMLOPS_STACK_DIR=${KMLOPS_STACK_DIR:-/tmp/kmlops-stack}
REGISTRY_PORT=${REGISTRY_PORT:-5555}
SOCK="$KMLOPS_STACK_DIR/podman.sock"
mkdir -p "$KMLOPS_STACK_DIR"

need=()
for p in podman runc skopeo umoci docker-registry; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

# crun and podman's default nofile of 1048576 are refused on these machines:
# use runc and limits below the hard limits (runc was seen refusing an nproc
# of 32768 and more here, so 4096).
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
mkdir -p /etc/containers/registries.conf.d
cat > /etc/containers/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
CONF
cat > /etc/containers/registries.conf.d/50-kmlops-loopback.conf <<CONF
[[registry]]
location = "127.0.0.1:$REGISTRY_PORT"
insecure = true
CONF

# The registry: plain HTTP on loopback, no auth.
if ! curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; then
    cat > "$KMLOPS_STACK_DIR/registry.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $KMLOPS_STACK_DIR/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
CONF
    # Every descriptor redirected on the background subshell itself: one
    # that kept this script's stdout would hold "$(container-stack.sh)" open.
    (cd "$KMLOPS_STACK_DIR" && exec nohup docker-registry serve "$KMLOPS_STACK_DIR/registry.yml") \
        </dev/null >"$KMLOPS_STACK_DIR/registry.log" 2>&1 &
fi

# podman's Docker-compatible API. Its conmon processes inherit its working
# directory and fail ("write child: broken pipe") once that is gone: a
# service started from a checkout that was deleted since (a CI clone) is
# replaced, and this one starts from the stack's own directory.
for pid in $(pgrep -f "podman system service --time=0 unix://$SOCK" || true); do
    if [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == *"(deleted)" ]]; then
        echo "restarting podman's API service: its working directory was deleted" >&2
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
done
if ! [ -S "$SOCK" ] || ! DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1; then
    rm -f "$SOCK"
    (cd "$KMLOPS_STACK_DIR" && exec nohup podman system service --time=0 "unix://$SOCK") \
        </dev/null >"$KMLOPS_STACK_DIR/podman.log" 2>&1 &
fi

for _ in $(seq 1 100); do
    if DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1 &&
        curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
DOCKER_HOST="unix://$SOCK" docker version --format 'engine: podman {{.Server.Version}}' >&2 ||
    { cat "$KMLOPS_STACK_DIR/podman.log" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null ||
    { cat "$KMLOPS_STACK_DIR/registry.log" >&2; exit 1; }
echo "registry: 127.0.0.1:$REGISTRY_PORT" >&2

echo "export DOCKER_HOST=unix://$SOCK"
echo "export KMLOPS_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT"
# Its access log: the push tests read which requests the registry served.
echo "export KMLOPS_REGISTRY_LOG=$KMLOPS_STACK_DIR/registry.log"
