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
# Fetch OpenCV's real stereo calibration sequence (13 chessboard pairs,
# stereo_calib.xml) and the Middlebury "aloe" pair from Debian's opencv-doc
# package into data/opencv_stereo/ (git-ignored).
#
# Idempotent: exits immediately when the files are already there.  Uses an
# installed opencv-doc if present, otherwise `apt-get download opencv-doc`
# and `dpkg -x` in a temporary directory (the package is NOT installed).
#
# Usage: tools/fetch_data.sh [DEST_DIR]   (default: <repo>/data/opencv_stereo)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-${REPO_ROOT}/data/opencv_stereo}"
DOC_SUBDIR="usr/share/doc/opencv-doc/examples/data"

PAIRS="01 02 03 04 05 06 07 08 09 11 12 13 14"
FILES="stereo_calib.xml aloeL.jpg aloeR.jpg aloeGT.png"
for n in ${PAIRS}; do
    FILES="${FILES} left${n}.jpg right${n}.jpg"
done

log() { echo "fetch_data: $*"; }
die() { echo "fetch_data: ERROR: $*" >&2; exit 1; }

all_present() {
    local dir="$1" f
    for f in ${FILES}; do
        [[ -s "${dir}/${f}" ]] || return 1
    done
    return 0
}

if all_present "${DEST}"; then
    log "data already present in ${DEST}"
    exit 0
fi

copy_from() {
    local src="$1"
    mkdir -p "${DEST}"
    # Every left*/right* image of the sequence, plus the named extras.
    cp -f "${src}"/left*.jpg "${src}"/right*.jpg "${DEST}/"
    local f
    for f in stereo_calib.xml aloeL.jpg aloeR.jpg aloeGT.png; do
        cp -f "${src}/${f}" "${DEST}/"
    done
    all_present "${DEST}" || die "copied from ${src} but files are still missing in ${DEST}"
    log "done: $(ls "${DEST}" | wc -l) files in ${DEST}"
}

# 1. Already installed on this machine?
if all_present "/${DOC_SUBDIR}"; then
    log "copying from installed opencv-doc (/${DOC_SUBDIR})"
    copy_from "/${DOC_SUBDIR}"
    exit 0
fi

# 2. Download the .deb and extract it (no installation).
command -v apt-get >/dev/null || die "apt-get not found; install Debian/Ubuntu package opencv-doc manually"
command -v dpkg >/dev/null || die "dpkg not found"

TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT
cd "${TMP}"
# apt-get download runs as the _apt user when possible; let it write here.
chmod 755 "${TMP}"

log "downloading opencv-doc with apt-get (into ${TMP})"
if ! apt-get download -q opencv-doc >"${TMP}/apt.log" 2>&1; then
    log "apt-get download failed; running apt-get update and retrying"
    if ! apt-get update -q >>"${TMP}/apt.log" 2>&1; then
        tail -n 5 "${TMP}/apt.log" >&2
        die "apt-get update failed (need root and network access to a Debian/Ubuntu mirror)"
    fi
    if ! apt-get download -q opencv-doc >>"${TMP}/apt.log" 2>&1; then
        tail -n 5 "${TMP}/apt.log" >&2
        die "apt-get download opencv-doc failed (see messages above)"
    fi
fi

DEB="$(ls "${TMP}"/opencv-doc_*.deb 2>/dev/null | head -n 1)"
[[ -n "${DEB}" ]] || die "apt-get reported success but no opencv-doc_*.deb was written"
log "extracting $(basename "${DEB}") with dpkg -x"
dpkg -x "${DEB}" "${TMP}/root"
[[ -d "${TMP}/root/${DOC_SUBDIR}" ]] || die "${DOC_SUBDIR} not found in $(basename "${DEB}")"

# Some Debian releases ship the examples gzip-compressed; unpack if needed.
find "${TMP}/root/${DOC_SUBDIR}" -maxdepth 1 -name '*.gz' -exec gunzip -f {} + 2>/dev/null || true

log "copying files into ${DEST}"
copy_from "${TMP}/root/${DOC_SUBDIR}"
