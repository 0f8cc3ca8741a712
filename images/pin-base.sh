#!/usr/bin/env bash
# Re-pins both Dockerfiles' default BASE_IMAGE to the digest its tag names on the registry
# today (`make base-digest`; then review `git diff images/` and commit). Needs a host that
# reaches Docker Hub; skopeo reads the manifest list's digest without pulling anything.
set -euo pipefail
cd "$(dirname "$0")/.."
current=$(sed -n 's/^ARG BASE_IMAGE=//p' images/runtime.Dockerfile)
tag=${current%@*}
command -v skopeo >/dev/null || { apt-get update -qq && apt-get install -y -qq skopeo >/dev/null; }
digest=$(skopeo inspect --format '{{.Digest}}' "docker://docker.io/library/$tag")
case "$digest" in sha256:*) ;; *) echo "pin-base: no digest for $tag: $digest" >&2; exit 1 ;; esac
for dockerfile in images/runtime.Dockerfile images/trainer.Dockerfile; do
  sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$tag@$digest|" "$dockerfile"
done
echo "pin-base: $tag is $digest (was ${current#*@})"
