#!/usr/bin/env bash
# Builds provisiond's images, and the etcd and MariaDB images the chaos suite runs, on a machine with Docker.
#
#   deploy/images.sh              # no registry needed: Debian bases from debootstrap and this machine's node
#   deploy/images.sh --registry   # official bases (node:20-bookworm, debian:bookworm-slim) from a registry
#
# Each image carries a content hash of what it is built from (label io.provisiond.source-hash); an image whose
# hash is current is reused, so a second run costs seconds. Prints the provisiond image's size and how soon a
# container of it answers /readyz.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${PROVISIOND_IMAGE_CACHE:-/var/tmp/provisiond-images}
registry=false
{ [ "${1:-}" = "--registry" ] || [ -n "${PROVISIOND_IMAGES_REGISTRY:-}" ]; } && registry=true
# The legacy builder (no buildx plugin here) warns on every build; the warning is noise, errors still show.
export DOCKER_BUILDKIT=0
build() {
  docker build "$@" 2> >(grep -v -e 'DEPRECATED: The legacy builder' -e 'Install the buildx' -e 'docs.docker.com/go/buildx' \
    -e 'BuildKit is currently disabled' -e '^ *environment-variable\.$' -e '^ *$' >&2)
}
image_id() { docker image inspect -f '{{ .Id }}' "$1" 2>/dev/null || echo "$1"; }

log() { echo "images: $*" >&2; }
label() { docker image inspect -f '{{ index .Config.Labels "io.provisiond.source-hash" }}' "$1" 2>/dev/null || true; }
hash_of() { # files and strings → one sha256
  { for f in "$@"; do if [ -e "$f" ]; then find -L "$f" -type f -print0 | sort -z | xargs -0 sha256sum; else echo "$f"; fi; done; } |
    sha256sum | cut -c1-32
}
current() { [ "$(label "$1")" = "$2" ]; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || { log "no Docker engine answers (start dockerd)"; exit 1; }

if $registry; then
  debian=debian:bookworm-slim
  base_args=()
else
  debian=local/debian:bookworm
  # 1. The Debian rootfs: debootstrap once (kept in $cache), imported as an image.
  debian_hash=$(hash_of "minbase bookworm tini ca-certificates v1")
  if ! current "$debian" "$debian_hash"; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
    rootfs=$cache/rootfs-bookworm
    if [ ! -f "$rootfs/.complete" ]; then
      log "debootstrap bookworm (minbase) into $rootfs"
      rm -rf "$rootfs" && mkdir -p "$cache"
      debootstrap --variant=minbase --include=tini,ca-certificates bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log"
      # Documentation, translations and package lists are no use in a container image.
      rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      touch "$rootfs/.complete"
    fi
    tar -C "$rootfs" --exclude=./.complete -c . |
      docker import --change "LABEL io.provisiond.source-hash=$debian_hash" - "$debian" >/dev/null
    log "built $debian"
  fi
  # 2. Node bases: the rootfs plus this machine's node, npm and headers.
  node_bin=$(command -v node)
  npm_cli=$(readlink -f "$(command -v npm)") || { log "npm is not on PATH"; exit 1; }
  npm_dir=$(dirname "$(dirname "$npm_cli")")
  [ -f "$npm_dir/package.json" ] || { log "cannot find npm's package next to $npm_cli"; exit 1; }
  include=$(dirname "$(dirname "$node_bin")")/include/node
  [ -d "$include" ] || include=/usr/include/node
  node_hash=$(hash_of "$node_bin" "$npm_dir/package.json" deploy/base/Dockerfile "$debian_hash" "stripped")
  if ! current local/node:20-bookworm "$node_hash" || ! current local/node-build:20-bookworm "$node_hash"; then
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    # Stripped of its debug symbols (about 12 MB; the dynamic symbols native addons link against stay).
    strip -o "$ctx/node" "$node_bin" 2>/dev/null || cp "$node_bin" "$ctx/node"
    cp -r "$npm_dir" "$ctx/npm" && cp -r "$include" "$ctx/include"
    for target in node node-build; do
      build -q --target "$target" --label "io.provisiond.source-hash=$node_hash" \
        --build-arg "DEBIAN=$debian" -t "local/$target:20-bookworm" -f deploy/base/Dockerfile "$ctx" >/dev/null
      log "built local/$target:20-bookworm"
    done
  fi
  base_args=(--build-arg BASE=local/node:20-bookworm --build-arg BUILD_BASE=local/node-build:20-bookworm)
fi

# 3. provisiond.
mkdir -p deploy/build-ca
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" deploy/build-ca/extra-ca.pem
fi
# The bases' own hashes are inputs: a new node binary or rootfs rebuilds the application image too.
base_ids="official"
$registry || base_ids="$(label local/node:20-bookworm) $(label local/node-build:20-bookworm)"
app_hash=$(hash_of src package.json package-lock.json tsconfig.json deploy/Dockerfile .dockerignore deploy/build-ca "$base_ids")
if ! current provisiond:local "$app_hash"; then
  log "building provisiond:local"
  build -q "${base_args[@]}" --build-arg "SOURCE_HASH=$app_hash" \
    --build-arg "VERSION=$(node -p 'require("./package.json").version')" \
    -t provisiond:local -f deploy/Dockerfile . >/dev/null
fi

# 4. etcd and MariaDB from Debian's packages.
for name in etcd mariadb; do
  h=$(hash_of "deploy/$name.Dockerfile" deploy/mariadb-entrypoint.sh "$(image_id "$debian")")
  if ! current "provisiond-$name:local" "$h"; then
    log "building provisiond-$name:local"
    build -q --build-arg "DEBIAN=$debian" --label "io.provisiond.source-hash=$h" \
      -t "provisiond-$name:local" -f "deploy/$name.Dockerfile" . >/dev/null
  fi
done

# 5. What the image weighs, and how soon it is ready.
size=$(docker image inspect -f '{{ .Size }}' provisiond:local)
cid=$(docker run -d --rm --label io.provisiond.chaos=images-check --read-only --tmpfs /tmp --tmpfs /data:uid=10001,gid=10001,mode=0700 \
  -e PROVISIOND_SCIM_TOKEN=images-sh-check-token-0123456789 -p 127.0.0.1::9464 provisiond:local)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
start=$(date +%s%N)
port=$(docker port "$cid" 9464/tcp | head -1 | sed 's/.*://')
ready=""
for _ in $(seq 1 200); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=$((($(date +%s%N) - start) / 1000000)); break; fi
  sleep 0.05
done
docker stop -t 5 "$cid" >/dev/null
[ -n "$ready" ] || { log "provisiond:local did not answer /readyz within 10 s"; exit 1; }
echo "provisiond:local  $((size / 1000000)) MB   /readyz 200 after ${ready} ms (read-only root, UID 10001)"
