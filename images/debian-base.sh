#!/usr/bin/env bash
# The local stand-in for the official Python base: Debian's python3 (3.11 in bookworm)
# with venv and CA certificates, built from Debian's packages by mmdebstrap and imported
# into podman. `make images` passes it as BASE_IMAGE where no registry serves
# python:3.11-slim; the Dockerfiles need only `python3 -m venv` and apt-get from a base.
#
#   images/debian-base.sh [TAG]     (default localhost/uicap/debian-base:bookworm)
#
# Rebuilt only when this script changed: the image carries the script's hash as a label.
set -euo pipefail
tag=${1:-localhost/uicap/debian-base:bookworm}
release=${DEBIAN_RELEASE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
engine=${CONTAINER_ENGINE:-podman}
recipe=$(sha256sum "$0" | cut -c1-16)

if [ "$($engine image inspect --format '{{ index .Labels "org.uicap.base-recipe" }}' "$tag" 2>/dev/null)" = "$recipe" ]; then
  echo "base: $tag is up to date (recipe $recipe)"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "base: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
# minbase: dpkg, apt and essentials; python3-venv brings ensurepip (no system-wide pip:
# Debian's python refuses it, and the images install into /opt/venv anyway).
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$release" "$work/rootfs.tar" "$mirror"
$engine import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.uicap.base-recipe=$recipe" \
  --change "LABEL org.opencontainers.image.description=Debian $release python3 from Debian's packages (uicap's local base)" \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "base: built $tag from Debian $release in $(( $(date +%s) - start ))s ($($engine image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec))"
