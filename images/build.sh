#!/usr/bin/env bash
# Builds both images from the Dockerfiles as shipped (`make images` runs this) and writes
# what it built to images/built.json: each image's reference, image id, size, base and
# build time, and the trainer's CUDA-kernel layer. `uicap run --runner docker` runs those
# images; `make push` adds their registry digests; `uicap compile --images` names them.
#
# Settings (environment; the Makefile passes its variables):
#   REGISTRY, IMAGE_TAG      the references: $REGISTRY/runtime:$IMAGE_TAG, .../trainer:...
#   IMAGE_BASE               local: a Debian base built here (images/debian-base.sh);
#                            official: the Dockerfiles' pinned default (a registry needed)
#   CUDA_KERNELS             build | skip (the trainer's kernel layer; see its Dockerfile)
#   EXTRA_CA_CERTS           a PEM file the builds trust (a build secret, never a layer)
#   CONTAINER_ENGINE         podman (default; what CI runs) or docker
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${CONTAINER_ENGINE:-podman}
registry=${REGISTRY:?REGISTRY is not set}
tag=${IMAGE_TAG:?IMAGE_TAG is not set}
base_choice=${IMAGE_BASE:-local}
kernels=${CUDA_KERNELS:-build}
out=${IMAGES_FILE:-images/built.json}
code_version=$(git rev-parse --verify HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- components pipelines pyproject.toml README.md images 2>/dev/null)" ]; then
  code_version="$code_version+dirty"
fi

build_args=(--build-arg "CODE_VERSION=git:$code_version")
case "$base_choice" in
  local)
    base=localhost/uicap/debian-base:bookworm
    images/debian-base.sh "$base"
    build_args+=(--build-arg "BASE_IMAGE=$base") ;;
  official)
    base=$(sed -n 's/^ARG BASE_IMAGE=//p' images/runtime.Dockerfile) ;;
  *) echo "images: IMAGE_BASE must be local or official, not $base_choice" >&2; exit 2 ;;
esac
secret=()
if [ -n "${EXTRA_CA_CERTS:-}" ]; then
  secret=(--secret "id=extra-ca,src=$EXTRA_CA_CERTS")
fi
if [ "$kernels" = skip ]; then
  echo "images: CUDA_KERNELS=skip: the trainer image leaves out its CUDA-kernel layer" \
    "(flash-linear-attention, causal-conv1d, nvcc); fine for CPU runs, not for a GPU node"
fi

# podman keeps intermediate layers only when asked; docker (BuildKit) always caches.
layers=()
[ "$(basename "$engine")" = podman ] && layers=(--layers)

declare -A seconds
for image in runtime trainer; do
  start=$(date +%s)
  extra=()
  [ "$image" = trainer ] && extra=(--build-arg "CUDA_KERNELS=$kernels")
  echo "images: building $registry/$image:$tag (base $base)"
  $engine build --network host "${layers[@]}" -f "images/$image.Dockerfile" \
    "${build_args[@]}" "${extra[@]}" "${secret[@]}" -t "$registry/$image:$tag" . \
    > >(sed -u "s/^/  $image | /") 2>&1
  seconds[$image]=$(( $(date +%s) - start ))
done

python3 - "$out" "$engine" "$registry" "$tag" "$base" "$kernels" \
  "${seconds[runtime]}" "${seconds[trainer]}" <<'PY'
import json, subprocess, sys
out, engine, registry, tag, base, kernels, runtime_s, trainer_s = sys.argv[1:]
built = {}
for name, secs in (("runtime", runtime_s), ("trainer", trainer_s)):
    ref = f"{registry}/{name}:{tag}"
    info = json.loads(subprocess.check_output([engine, "image", "inspect", ref]))[0]
    built[name] = {
        "reference": ref,
        "id": info["Id"] if info["Id"].startswith("sha256:") else f"sha256:{info['Id']}",
        "size_bytes": info["Size"],
        "base": base,
        "build_seconds": int(secs),
    }
built["trainer"]["cuda_kernels"] = kernels
with open(out, "w") as handle:
    json.dump(built, handle, indent=2)
    handle.write("\n")
for name, row in built.items():
    print(f"images: {name:<8} {row['size_bytes'] / 2**30:5.2f} GiB  {row['id'][:19]}  "
          f"built in {row['build_seconds']}s  {row['reference']}")
print(f"images: wrote {out}")
PY
