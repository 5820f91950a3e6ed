#!/usr/bin/env bash
# The GPU check (README, "On a GPU"): CUDA-marked tests, then the paper profile's features, surrogate
# and a short meta-training timed on the CPU and the GPU in one run. About 5 minutes; exits 1
# without CUDA or when a GPU result disagrees with the CPU's.
set -euo pipefail
cd "$(dirname "$0")/.."
export TQDM_DISABLE=1 PGX_CACHE="${PGX_CACHE:-$(mktemp -d)}"
timeout 480 python benchmarks/gpu_check.py --out "${1:-benchmarks/gpu_check.json}"
