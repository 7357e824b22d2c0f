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
# Set up the PyPI-wheel ROS 2 Kilted environment of this workspace and build it.
#
#   tools/setup_env.sh            # idempotent: redoes only what changed
#   tools/setup_env.sh --build    # also force the colcon build of src/
#   tools/setup_env.sh --force    # redo every step (pip, overlay, build)
#
# Steps, each skipped while the hash of its inputs matches its stamp in .stamps/:
#   1. .venv/            python3.11 -m venv (KP_PYTHON overrides the interpreter)
#   2. pip               torch (exact pin) first, then requirements.txt
#   3. CMake fix         the ROS wheels' exported CMake targets name the include
#                        folders of the machine that built them
#                        (/opt/python/cp311-cp311/...); they are rewritten, inside
#                        .venv only, to this interpreter's and numpy's folders
#   4. compat overlay    tools/ros_compat: tf2_msgs built with colcon into
#                        .venv/ros_compat/install; the Python stand-ins
#                        (message_filters, tf2_ros, cv_bridge) put on the venv's
#                        path by a .pth file
#   5. workspace         colcon build --symlink-install of src/ into build/, install/
#
# Only for the PyPI-wheel environment: with a real ROS 2 installation sourced,
# use its colcon and packages instead (the script refuses to run then).
# Extra pip arguments for the torch install (e.g. an index URL on a machine
# without the local CPU wheel) can be given in KP_TORCH_PIP_ARGS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMPS="$ROOT/.stamps"
COMPAT_SRC="$ROOT/tools/ros_compat"
COMPAT_PREFIX="$VENV/ros_compat"
PYTHON_BIN="${KP_PYTHON:-python3.11}"
FORCE=0
FORCE_BUILD=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --build) FORCE_BUILD=1 ;;
    -h|--help) sed -n '16,38s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_env.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

START_S=$SECONDS
log() { printf '[setup %3ds] %s\n' "$((SECONDS - START_S))" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of the given strings (one per line).
hash_text() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# Hash of the given files: names and contents.
hash_files() {
  local f
  for f in "$@"; do
    printf '%s\n' "$f"
    if [ -f "$f" ]; then sha256sum < "$f"; fi
  done | sha256sum | cut -c1-16
}

stamp_ok() { [ "$FORCE" = 0 ] && [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s\n' "$2" > "$STAMPS/$1"; }

# pip prints one warning per package for the machine's file:// extra indexes
# that lack it; keep the output to what matters.
pip_quiet() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "^WARNING: Location '" || true; }
}

# Run a command in a subshell with the venv as the only ROS prefix (a workspace
# the caller sourced must not leak in), after sourcing the setup script $1 if
# it is not empty.
in_build_env() {
  local overlay="$1"
  shift
  (
    unset COLCON_PREFIX_PATH PYTHONPATH LD_LIBRARY_PATH _ROS_WHEELS_BOOTSTRAP_COMPLETE \
      ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION
    export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
    # shellcheck disable=SC2030  # on purpose: only inside this subshell
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    if [ -n "$overlay" ]; then
      set +u
      # shellcheck disable=SC1090
      source "$overlay"
      set -u
    fi
    "$@"
  )
}

# colcon warns that the venv, an ament prefix without colcon's setup files, has
# no local_setup.*: true and harmless here, so that one line is filtered out.
colcon_quiet() {
  colcon "$@" 2>&1 | { grep -v "doesn't contain any 'local_setup\.\*' files" || true; }
}

# --- 0. not with a real ROS 2 --------------------------------------------------
# shellcheck disable=SC2031  # the caller's value, not in_build_env's
case ":${AMENT_PREFIX_PATH:-}:" in
  *:/opt/ros/*)
    # shellcheck disable=SC2031
    die "a real ROS 2 installation is sourced (AMENT_PREFIX_PATH=$AMENT_PREFIX_PATH).
  This script builds the PyPI-wheel environment only; with a real ROS 2 use
  'colcon build --symlink-install' (tf2_ros, message_filters, cv_bridge come from it)."
    ;;
esac

# --- 1. virtual environment ---------------------------------------------------
if [ "$FORCE" = 1 ] || ! "$VENV/bin/python" -c \
    'import sys; sys.exit(sys.version_info[:2] != (3, 11))' > /dev/null 2>&1; then
  if ! command -v "$PYTHON_BIN" > /dev/null; then
    if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2> /dev/null; then
      PYTHON_BIN=python3
    else
      die "$PYTHON_BIN not found (set KP_PYTHON to a Python 3.11 interpreter)"
    fi
  fi
  log "creating .venv with $("$PYTHON_BIN" --version 2>&1)"
  "$PYTHON_BIN" -m venv --clear "$VENV"
  rm -rf "$STAMPS"
fi
PY_VERSION="$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
SITE="$VENV/lib/python3.11/site-packages"

# --- 2. pip requirements -----------------------------------------------------------
TORCH_REQ="$(grep -E '^torch==' requirements.txt | head -n1 | tr -d '[:space:]')"
[ -n "$TORCH_REQ" ] || die "requirements.txt must pin torch exactly (torch==...)"
PIP_KEY="$(hash_text "$PY_VERSION" "${KP_TORCH_PIP_ARGS:-}" "$(hash_files requirements.txt)")"
if stamp_ok pip "$PIP_KEY"; then
  log "pip: requirements unchanged"
else
  log "pip: installing $TORCH_REQ (CPU build; first, so nothing pulls a CUDA torch)"
  # shellcheck disable=SC2086
  pip_quiet ${KP_TORCH_PIP_ARGS:-} "$TORCH_REQ"
  log "pip: installing requirements.txt (ROS 2 Kilted wheels, colcon, numerics)"
  pip_quiet -r requirements.txt
  stamp_set pip "$PIP_KEY"
  log "pip: done"
fi

# --- 3. CMake include folders of the wheels' build machine --------------------------
if grep -rlqF '/opt/python/cp311-cp311/' "$VENV"/share/*/cmake 2> /dev/null; then
  log "cmake: rewriting the wheels' build-machine include paths inside .venv"
  "$VENV/bin/python" - "$VENV" << 'EOF'
"""Point the wheels' exported include folders at this machine's Python and numpy."""
import glob
import os
import sys
import sysconfig

import numpy

venv = sys.argv[1]
python_inc = sysconfig.get_paths()['include']
numpy_inc = numpy.get_include()
for path in (python_inc, numpy_inc):
    if not os.path.isfile(os.path.join(path, 'Python.h' if path == python_inc else
                                       'numpy/arrayobject.h')):
        sys.exit('missing headers in %s (install the Python 3.11 development files)' % path)
old_base = '/opt/python/cp311-cp311'
replacements = [
    (old_base + '/lib/python3.11/site-packages/numpy/_core/include', numpy_inc),
    (old_base + '/lib/python3.11/site-packages/numpy/core/include', numpy_inc),
    (old_base + '/include/python3.11', python_inc),
]
changed = 0
for name in glob.glob(os.path.join(venv, 'share', '*', 'cmake', '*.cmake')):
    with open(name, encoding='utf-8') as f:
        text = f.read()
    new = text
    for old, repl in replacements:
        new = new.replace(old, repl)
    if new != text:
        with open(name, 'w', encoding='utf-8') as f:
            f.write(new)
        changed += 1
left = [n for n in glob.glob(os.path.join(venv, 'share', '*', 'cmake', '*.cmake'))
        if old_base in open(n, encoding='utf-8').read()]
if left:
    sys.exit('unhandled %s paths remain in: %s' % (old_base, ', '.join(left)))
print('[setup] cmake: %d files rewritten' % changed)
EOF
fi

# --- build tools ------------------------------------------------------------------
if ! command -v cmake > /dev/null; then
  log "cmake not found: installing the cmake wheel into .venv"
  pip_quiet cmake
fi
if ! command -v g++ > /dev/null || ! command -v gcc > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    log "C/C++ compiler not found: apt-get install g++"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make
  else
    die "gcc/g++ are needed to build the message packages (install g++)"
  fi
fi

# --- 4. compat overlay ----------------------------------------------------------------
PTH="$SITE/keypoint_ros_compat.pth"
if [ "$(cat "$PTH" 2> /dev/null)" != "$COMPAT_SRC/python" ]; then
  log "compat: adding tools/ros_compat/python to the venv's path ($(basename "$PTH"))"
  printf '%s\n' "$COMPAT_SRC/python" > "$PTH"
fi

mapfile -t COMPAT_FILES < <(find "$COMPAT_SRC/tf2_msgs" -type f | LC_ALL=C sort)
COMPAT_KEY="$(hash_text "$PIP_KEY" "$(hash_files "${COMPAT_FILES[@]}" colcon.meta)")"
if stamp_ok compat "$COMPAT_KEY" && [ -f "$COMPAT_PREFIX/install/setup.bash" ]; then
  log "compat: tf2_msgs overlay unchanged"
else
  log "compat: building tf2_msgs into .venv/ros_compat (about a minute)"
  rm -rf "$COMPAT_PREFIX"
  in_build_env "" colcon_quiet --log-base "$COMPAT_PREFIX/log" build \
    --base-paths "$COMPAT_SRC/tf2_msgs" \
    --build-base "$COMPAT_PREFIX/build" --install-base "$COMPAT_PREFIX/install" \
    --event-handlers status- desktop_notification- \
    || die "colcon build of the compat overlay failed (log in $COMPAT_PREFIX/log)"
  stamp_set compat "$COMPAT_KEY"
  rm -f "$STAMPS/workspace"
  log "compat: done"
fi

# --- 5. workspace -------------------------------------------------------------------
# Inputs: every file name under src/ (new or removed files need a build), and the
# contents of the files that define packages, interfaces and installed files.
mapfile -t SRC_FILES < <(find src launch config rviz -name __pycache__ -prune -o -name '*.egg-info' -prune \
  -o -name .pytest_cache -prune -o -type f -print | LC_ALL=C sort)
BUILD_FILES=()
for f in "${SRC_FILES[@]}"; do
  case "$f" in
    */package.xml|*/CMakeLists.txt|*/setup.py|*/setup.cfg|*.msg|*.srv|*.action|*/resource/*)
      BUILD_FILES+=("$f") ;;
  esac
done
WS_KEY="$(hash_text "$COMPAT_KEY" "$(hash_text "${SRC_FILES[@]}")" \
  "$(hash_files "${BUILD_FILES[@]}" colcon.meta)")"
if [ "$FORCE_BUILD" = 0 ] && stamp_ok workspace "$WS_KEY" && [ -f install/setup.bash ]; then
  log "colcon: workspace unchanged (src/ built in install/)"
else
  log "colcon: building src/ into install/ (symlink install)"
  in_build_env "$COMPAT_PREFIX/install/setup.bash" \
    colcon_quiet build --base-paths src --build-base build --install-base install \
    --symlink-install \
    --event-handlers status- desktop_notification- \
    || die "colcon build of src/ failed (log in log/latest_build)"
  stamp_set workspace "$WS_KEY"
  log "colcon: done"
fi

# --- 6. real test data ----------------------------------------------------------------
# OpenCV's real stereo calibration sequence (Debian opencv-doc) and the chessboard
# corners cv2.findChessboardCorners finds in it (ground truth for evaluation).
bash tools/fetch_data.sh || die "could not fetch the real stereo data (tools/fetch_data.sh)"
if [ ! -f data/opencv_stereo/ground_truth.json ]; then
  log "data: detecting chessboard corners for the ground truth"
  "$VENV/bin/python" tools/calibrate_opencv_stereo.py --ground-truth-only >/dev/null \
    || die "tools/calibrate_opencv_stereo.py --ground-truth-only failed"
fi

# --- 7. console scripts in .venv/bin -------------------------------------------------
# keypoints-demo, keypoints-train, keypoints-eval and sim-datagen run from .venv/bin
# with the workspace environment (tools/env.sh) set up around them.
for entry in keypoint_perception/keypoints-demo keypoint_perception/keypoints-train \
    keypoint_perception/keypoints-eval sim_datagen/sim-datagen; do
  pkg="${entry%%/*}" tool="${entry#*/}"
  cat > "$VENV/bin/$tool" <<EOF_WRAPPER
#!/usr/bin/env bash
# Generated by tools/setup_env.sh: run $tool inside the workspace environment.
source "$ROOT/tools/env.sh" || exit 1
exec "$ROOT/install/$pkg/lib/$pkg/$tool" "\$@"
EOF_WRAPPER
  chmod +x "$VENV/bin/$tool"
done

log "ready: run 'source tools/env.sh'"
