#!/usr/bin/env bash
# Compiles the locks in images/locks/ with uv (`make lock` runs this; arguments go to the
# dev lock's `uv pip compile`, e.g. --upgrade-package transformers, and the other locks
# follow it, since each is held to dev.txt's versions). uv, because it resolves
# for a target (CPython 3.11 on manylinux x86_64, what the images and CI run) rather than
# for the machine it runs on, takes hashes from the index without downloading torch's
# multi-GB CUDA wheels, and does all five locks in seconds; pip-tools does neither.
#
#   dev.txt           what `make install` installs: every extra, torch pinned
#   trainer.txt       the trainer image: uicap[train], held to dev.txt's versions
#   runtime.txt       the runtime image: uicap's core alone (no torch), held likewise
#   cuda-toolchain.txt  nvcc of torch's CUDA release, for the trainer's kernel layer
#   cuda-kernels.txt  the trainer's CUDA-kernel layer, held to the two above
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
locks=images/locks
compile() {
  "$uv" pip compile --quiet --generate-hashes --no-header \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 "$@"
}
compile pyproject.toml "$locks/build.in" --extra dev --extra train --extra serving \
  -c "$locks/torch.in" -o "$locks/dev.txt" "${@}"
compile pyproject.toml "$locks/build.in" --extra train -c "$locks/dev.txt" -o "$locks/trainer.txt"
compile pyproject.toml "$locks/build.in" -c "$locks/dev.txt" -o "$locks/runtime.txt"
compile "$locks/cuda-toolchain.in" -c "$locks/trainer.txt" -o "$locks/cuda-toolchain.txt"
compile "$locks/cuda-kernels.in" -c "$locks/trainer.txt" -c "$locks/cuda-toolchain.txt" \
  -o "$locks/cuda-kernels.txt"
for lock in dev trainer runtime cuda-toolchain cuda-kernels; do
  echo "lock: $locks/$lock.txt: $(grep -cE '^[A-Za-z0-9]' "$locks/$lock.txt") packages"
done
