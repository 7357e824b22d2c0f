#!/usr/bin/env bash
# Copyright 2026 The keypoint_perception authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# The GPU figures of docs/benchmarks.md ("Inference", batch table) in one command, for a
# machine with a CUDA GPU and PyTorch but without ROS 2, pybullet or this repository's
# virtual environment: the core runs from src/ (no colcon build), the real pairs come
# from data/opencv_stereo (run tools/fetch_data.sh first where the machine is offline,
# and take the folder along). Writes the table to $OUT/batches.md (or
# output/device/batches.md) and prints it.
#
#   bash tools/device_check.sh [extra arguments of tools/benchmark_inference.py]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src/keypoint_perception:$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python3}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
fi
"$PYTHON" -c 'import torch, onnxruntime; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), "| onnxruntime", onnxruntime.__version__,
onnxruntime.get_available_providers())'
out="${OUT:-output/device}"
mkdir -p "$out"
device="cuda:0"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "device_check: no CUDA device; the batch table runs on the CPU"; device="cpu"; }
"$PYTHON" tools/benchmark_inference.py --skip network stages ros --batch-device "$device" \
  "$@" | tee "$out/batches.md"
