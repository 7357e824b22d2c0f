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
# Source this file (bash) to use the workspace in the PyPI-wheel ROS 2
# environment built by tools/setup_env.sh:
#
#   source tools/env.sh
#
# It activates .venv, sources the compat overlay (.venv/ros_compat) and the
# workspace (install/setup.bash), and sets the ROS network defaults of this
# project: discovery on localhost only, a domain id (a value already set by
# the caller is kept) and Fast DDS as the middleware. Safe under `set -u`.

# Print a colon-separated list without empty or repeated entries.
_kp_clean_path() {
  local out='' p
  local -a parts
  IFS=':' read -r -a parts <<< "$1"
  for p in "${parts[@]}"; do
    case ":$out:" in
      *":$p:"*) ;;
      *) [ -n "$p" ] && out="${out:+$out:}$p" ;;
    esac
  done
  printf '%s' "$out"
}

_kp_env_main() {
  local root venv site d lib_path
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "tools/env.sh: $venv is missing; run tools/setup_env.sh (or make setup) first" >&2
    return 1
  fi
  case ":${AMENT_PREFIX_PATH:-}:" in
    *:/opt/ros/*)
      echo "tools/env.sh: warning: a real ROS 2 installation is sourced too; this file is" \
        "for the PyPI-wheel environment (its stand-in packages are shadowed by the real" \
        "ones)" >&2 ;;
  esac

  # shellcheck disable=SC1091
  source "$venv/bin/activate"

  # The venv is an ament prefix of its own (share/ament_index, share/*/cmake).
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
  case ":${CMAKE_PREFIX_PATH:-}:" in
    *":$venv:"*) ;;
    *) export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;;
  esac

  # Colcon's setup scripts are not written for `set -u`: source them without it.
  local had_u=0
  case "$-" in *u*) had_u=1; set +u ;; esac
  if [ -f "$venv/ros_compat/install/setup.bash" ]; then
    # shellcheck disable=SC1091
    source "$venv/ros_compat/install/setup.bash"
  fi
  if [ -f "$root/install/setup.bash" ]; then
    # shellcheck disable=SC1091
    source "$root/install/setup.bash"
  else
    echo "tools/env.sh: warning: $root/install is not built yet; run tools/setup_env.sh" >&2
  fi
  if [ "$had_u" = 1 ]; then set -u; fi

  # The ROS wheels find their shared libraries by re-executing Python once with
  # LD_LIBRARY_PATH set (ros_wheels_bootstrapper). Set it here, in a fixed
  # order, so every Python process starts directly.
  site="$venv/lib/python3.11/site-packages"
  lib_path="$venv/lib"
  for d in "$site"/ros_*.libs; do
    [ -d "$d" ] && lib_path="$lib_path:$d"
  done
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$venv/lib:"*) ;;
    *) export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
  export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1

  # Without ros2cli (not on PyPI) there is no `ros2 run`: put each package's
  # executables folder (install/<pkg>/lib/<pkg>) on PATH instead.
  for d in "$root"/install/*/lib/*; do
    if [ -d "$d" ] && [ "$(basename "$d")" = "$(basename "$(dirname "$(dirname "$d")")")" ]; then
      case ":$PATH:" in
        *":$d:"*) ;;
        *) PATH="$d:$PATH" ;;
      esac
    fi
  done
  export PATH

  # Colcon's scripts leave empty entries (meaning the current folder): drop them.
  LD_LIBRARY_PATH="$(_kp_clean_path "$LD_LIBRARY_PATH")"
  PYTHONPATH="$(_kp_clean_path "${PYTHONPATH:-}")"
  export LD_LIBRARY_PATH PYTHONPATH

  # Network safety: never send discovery traffic beyond this machine.
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
  export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
  export KEYPOINTS_WS="$root"
  return 0
}

if _kp_env_main; then
  unset -f _kp_env_main _kp_clean_path
else
  unset -f _kp_env_main _kp_clean_path
  # shellcheck disable=SC2317  # exit only when executed instead of sourced
  return 1 2> /dev/null || exit 1
fi
