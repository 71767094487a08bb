#!/usr/bin/env bash
# Builds the gateway image with no Docker daemon: buildah (vfs storage, chroot isolation) on a
# minimal Debian rootfs made by mmdebstrap (no base image registry needed; only the Debian mirror
# and PyPI). Both tools are Debian packages: apt-get install buildah mmdebstrap.
#
#   scripts/build-image.sh                       # -> localhost/seance-gateway:<version>
#   scripts/build-image.sh --tag REF [--push]    # tag REF; --push sends it to REF's registry
#   scripts/build-image.sh --rebuild-base        # make the Debian rootfs again (security updates)
#
# Environment: SEANCE_DEBIAN_SUITE (default bookworm), SEANCE_DEBIAN_MIRROR (default: apt's own),
# SEANCE_BUILD_CA_BUNDLE (CA certificates pip should trust, for TLS-intercepting proxies; default
# $PIP_CERT, else the host's bundle), SEANCE_STORAGE_DRIVER (default vfs; use the same with
# `buildah --storage-driver vfs …` to see the image), and buildah's usual CONTAINERS_STORAGE_CONF.
# The last line printed is the image reference.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/src/seance/__init__.py")"
tag="localhost/seance-gateway:${version:-dev}"
push=0
rebuild_base=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --push) push=1; shift ;;
    --rebuild-base) rebuild_base=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || {
    echo "build-image.sh: $tool not found; install it with: apt-get install buildah mmdebstrap" >&2
    exit 1
  }
done

# vfs and chroot work in unprivileged containers and CI runners without overlayfs or namespaces.
# The driver is passed as a flag on every call: some buildah versions ignore $STORAGE_DRIVER.
storage_driver="${SEANCE_STORAGE_DRIVER:-vfs}"
buildah() { command buildah --storage-driver "$storage_driver" "$@"; }
export BUILDAH_ISOLATION=chroot
suite="${SEANCE_DEBIAN_SUITE:-bookworm}"
base="localhost/seance-debian-base:$suite"

if [ "$rebuild_base" = 1 ] || ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "==> Debian $suite rootfs (mmdebstrap)" >&2
  start=$SECONDS
  # minbase keeps dpkg/apt (the final stage purges build-only packages with them); docs, man pages
  # and translations are left out of every package.
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Languages "none"' \
    "$suite" "$work/rootfs.tar" ${SEANCE_DEBIAN_MIRROR:+"$SEANCE_DEBIAN_MIRROR"} >&2
  container="$(buildah from scratch)"
  buildah add --quiet "$container" "$work/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh "$container"
  buildah commit --quiet --rm "$container" "$base" >/dev/null
  echo "==> base $base ready in $((SECONDS - start)) s" >&2
fi

ca_bundle="${SEANCE_BUILD_CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"
secret=()
[ -s "$ca_bundle" ] && secret=(--secret "id=ca-bundle,src=$ca_bundle")

echo "==> building $tag (buildah, chroot isolation)" >&2
start=$SECONDS
buildah build --quiet --layers=false --isolation chroot --build-arg "BASE=$base" "${secret[@]}" \
  --file "$ROOT/Containerfile" --ignorefile "$ROOT/.containerignore" --tag "$tag" "$ROOT" >&2
echo "==> built $tag in $((SECONDS - start)) s" >&2

if [ "$push" = 1 ]; then
  registry="${tag%%/*}"
  tls=()
  # Local dev registries (Tilt, ctlptl, k3d) speak plain HTTP.
  case "$registry" in localhost|localhost:*|127.0.0.1*|*.localhost|*.localhost:*) tls=(--tls-verify=false) ;; esac
  if [ "$registry" = localhost ]; then
    echo "==> no registry in $tag: nothing to push (see docs/deploy-kubernetes.md)" >&2
  else
    buildah push --quiet "${tls[@]}" "$tag" >&2
    echo "==> pushed $tag" >&2
  fi
fi
echo "$tag"
