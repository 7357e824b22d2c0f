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
"""Helpers shared by the benchmark scripts in tools/ (machine line, doc sections)."""

import glob
import os
import platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    return f'{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}'


def replace_section(path: str, begin: str, end: str, section: str) -> None:
    """Replace the text from ``begin`` to ``end`` (markers included) in a Markdown file.

    ``section`` must start with ``begin`` and end with ``end``; when the file
    or the markers are missing, the section is appended.
    """
    doc = open(path).read() if os.path.isfile(path) else '# Benchmarks\n\n'
    section = section.rstrip('\n')
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + section + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip('\n') + '\n\n' + section + '\n'
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write(doc)


def load_real_pairs():
    """The OpenCV real stereo sequence and its calibration (core only, no rclpy).

    Returns:
        (pairs, (left_camera, right_camera)): pairs is a list of
        [left, right] (480, 640, 3) uint8 RGB images in file order, the
        cameras are :class:`keypoint_perception.core.camera.CameraModel`.

    Raises:
        FileNotFoundError: when the images are missing (run tools/fetch_data.sh).
    """
    import cv2
    from keypoint_perception.core.camera import CameraModel
    data = os.path.join(ROOT, 'data', 'opencv_stereo')
    lefts = sorted(glob.glob(os.path.join(data, 'left[0-9]*.jpg')))
    rights = sorted(glob.glob(os.path.join(data, 'right[0-9]*.jpg')))
    if not lefts or len(lefts) != len(rights):
        raise FileNotFoundError(f'no stereo pairs in {data} (run tools/fetch_data.sh)')
    pairs = [[cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB) for f in pr]
             for pr in zip(lefts, rights)]
    cal = os.path.join(ROOT, 'config', 'camera_info')
    cams = tuple(CameraModel.from_yaml(os.path.join(cal, f'opencv_stereo_{s}.yaml'))
                 for s in ('left', 'right'))
    return pairs, cams


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (Linux ``/proc/<pid>/stat``)."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
