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
"""End-to-end demo (``keypoints-demo``): stereo files -> ROS 2 -> 3D keypoints.

Starts the perception node (``stereo_keypoint_node``) as its own process,
replays a stereo sequence with its calibration through ``stereo_replay_node``
(raw images + raw CameraInfo on ``left/image_raw`` ... remapped to the node's
``left/image_rect`` inputs), records ``keypoints_3d`` and ``keypoints_2d``,
prints a per-frame summary and writes one JSON line per stereo pair plus
annotated images (from the node's ``debug/image``).

By default it runs on OpenCV's real stereo calibration sequence
(``data/opencv_stereo``, fetched by ``tools/fetch_data.sh``) with the
calibration in ``config/camera_info/``.  Pairs are sent one at a time and each
result is awaited, so nothing is dropped and latency is measured per pair.
"""

import argparse
from dataclasses import dataclass
import json
import math
import os
import re
import subprocess
import sys
import time
from typing import List, Tuple

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
import cv2
from cv_bridge import CvBridge
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from .cli import (ArgumentParser, checked_input, command_line, InputError, positive_float,
                  repo_root)
from .core.camera import CameraModel
from .core.checkpoint import MODELS_DIR, resolve_model_path
from .core.files import atomic_open
from .core.objects import load_object_class, ObjectClass
from .core.onnx_model import model_object_class
from .nodes.stereo_replay_node import pair_files, StereoReplayNode


def node_command(name: str):
    """Command line of an installed node executable (ament index), else ``python -m``."""
    try:
        exe = os.path.join(get_package_prefix('keypoint_perception'), 'lib',
                           'keypoint_perception', name)
        if os.access(exe, os.X_OK):
            return [exe]
    except (PackageNotFoundError, ValueError):  # not installed: run from the source tree
        pass
    return [sys.executable, '-m', f'keypoint_perception.nodes.{name}']


def fastdds_profile() -> str:
    """Path of the shipped Fast DDS profile for colour images (config/dds), '' if absent.

    Without it, Fast DDS' 512 KB shared-memory segments and 3 s heartbeat
    period stall reliable 921 KB rgb8 images for seconds (issue 16, item 16).
    """
    try:
        share = get_package_share_directory('keypoint_perception')
    except (PackageNotFoundError, ValueError):  # not installed: the source tree
        share = repo_root()
    path = os.path.join(share, 'config', 'dds', 'fastdds_profile.xml')
    return path if os.path.isfile(path) else ''


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (defaults: the real OpenCV stereo sequence).

    Raises:
        SystemExit: on a usage error (one line, status 2).
    """
    root = repo_root()
    data = os.path.join(root, 'data', 'opencv_stereo')
    calibration = os.path.join(root, 'config', 'camera_info')
    p = ArgumentParser(prog='keypoints-demo', description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--left', default=os.path.join(data, 'left[0-9]*.jpg'),
                   help='glob of left images (quote it)')
    p.add_argument('--right', default=os.path.join(data, 'right[0-9]*.jpg'),
                   help='glob of right images (quote it)')
    p.add_argument('--left-info', default=os.path.join(calibration, 'opencv_stereo_left.yaml'),
                   help='left camera_info YAML')
    p.add_argument('--right-info',
                   default=os.path.join(calibration, 'opencv_stereo_right.yaml'),
                   help='right camera_info YAML')
    p.add_argument('--object', default='',
                   help="object class to detect (default: --model's class, else checkerboard)")
    p.add_argument('--model', default='',
                   help='shipped model name, checkpoint or ONNX export (default: the shipped '
                        'model of --object: <object>_lite or <object>)')
    p.add_argument('--output', default=os.path.join(root, 'output', 'demo',
                                                    'keypoints_3d.jsonl'))
    p.add_argument('--annotated-dir', default='',
                   help='annotated images (default: <output dir>/annotated)')
    p.add_argument('--no-annotate', action='store_true',
                   help='do not subscribe to debug/image (measures the bare pipeline)')
    p.add_argument('--timeout', type=positive_float, default=30.0,
                   help='seconds to wait per pair')
    p.add_argument('--node-arg', action='append', default=[],
                   help='extra "name:=value" parameter for the perception node')
    return p.parse_args(argv)


@dataclass(frozen=True)
class DemoInputs:
    """The demo's inputs, read and checked before any process starts.

    Attributes:
        pairs: (left, right) image file paths, in replay order.
        object_class: the class whose keypoints are recorded.
        model: shipped model name or checkpoint path for the node.
        annotated_dir: folder of the annotated images ('' with --no-annotate).
    """

    pairs: List[Tuple[str, str]]
    object_class: ObjectClass
    model: str
    annotated_dir: str


def shipped_model(object_name: str) -> str:
    """Return the shipped model of a class: ``<name>_lite`` if shipped, else ``<name>``."""
    lite = f'{object_name}_lite'
    return lite if os.path.isfile(os.path.join(MODELS_DIR, f'{lite}.pt')) else object_name


def validate_inputs(args: argparse.Namespace) -> DemoInputs:
    """Read and check every input of the demo; starts nothing.

    Raises:
        InputError: naming the first bad input (a camera_info YAML that is
            missing or invalid, image globs that match nothing or unequal
            numbers of files, an unknown object class,
            a missing, corrupt or unsafe model or one for another class, a
            ``--node-arg`` not of the form ``name:=value``, an output folder
            that cannot be created).
    """
    for option, path in (('--left-info', args.left_info), ('--right-info', args.right_info)):
        with checked_input(f'{option} {path}'):
            CameraModel.from_yaml(path)
    with checked_input(f'--left {args.left!r} / --right {args.right!r}'):
        try:
            pairs = pair_files(args.left, args.right)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'{e} (the default input is fetched by '
                                    'tools/fetch_data.sh; `make demo` runs it)') from e
    object_class = None
    if args.object:
        with checked_input(f'--object {args.object}'):
            object_class = load_object_class(args.object)
    model = args.model or shipped_model(args.object or 'checkerboard')
    with checked_input(f'--model {model}'):
        model_class = model_object_class(resolve_model_path(model))
    object_class = object_class or model_class
    if model_class.name != object_class.name:
        raise InputError(f'--model {model}: detects {model_class.name!r}, not --object '
                         f'{object_class.name!r}')
    for setting in args.node_arg:
        if not NODE_ARG.fullmatch(setting):
            raise InputError(f'--node-arg {setting!r}: expected name:=value')
    out_dir = os.path.dirname(os.path.abspath(args.output))
    annotated_dir = args.annotated_dir or os.path.join(out_dir, 'annotated')
    if args.no_annotate:
        annotated_dir = ''
    for folder, option in ((out_dir, '--output'), (annotated_dir, '--annotated-dir')):
        if folder:
            with checked_input(f'{option} {folder}'):
                os.makedirs(folder, exist_ok=True)
    return DemoInputs(pairs, object_class, model, annotated_dir)


#: A ``--node-arg``: a ROS parameter name, ``:=``, a value.
NODE_ARG = re.compile(r'[A-Za-z_][A-Za-z0-9_./]*:=.*')


def summary_line(index, count, name, entry, latency_ms):
    """One human-readable line per stereo pair (``entry``: the record's first object)."""
    keypoints = entry['keypoints'] if entry else []
    in_3d = sum(k['xyz'] is not None for k in keypoints)
    line = f'[{index + 1:2d}/{count}] {name:14s} {in_3d}/{len(keypoints)} keypoints in 3D'
    xyz = [k['xyz'] for k in keypoints]
    if entry and entry.get('edges_mm'):
        line += '  edges ' + '/'.join('--' if e is None else f'{e:.1f}'
                                      for e in entry['edges_mm']) + ' mm'
    errors = [k['reprojection_error_px'] for k in keypoints
              if k['reprojection_error_px'] is not None]
    if errors:
        line += f'  reproj {np.mean(errors):.2f} px'
    if any(x is not None for x in xyz):
        depth = np.mean([x[2] for x in xyz if x is not None])
        line += f'  depth {depth:.3f} m'
    return line + f'  latency {latency_ms:.0f} ms'


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate a child process (SIGTERM, then SIGKILL after ``grace_s``) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args) -> int:
    """Run the demo; returns a process exit code.

    Every input is read and checked first (:func:`validate_inputs`, then
    the images by the replay node); only then is the perception node
    started, and everything is stopped again however the run ends (error,
    Ctrl-C, SIGTERM).

    Raises:
        InputError: a bad input (the perception node was not started).
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') and fastdds_profile():
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = fastdds_profile()  # also the node's
    inputs = validate_inputs(args)
    cmd = node_command('stereo_keypoint_node') + [
        '--ros-args', '-r', 'left/image_rect:=left/image_raw',
        '-r', 'right/image_rect:=right/image_raw', '-p', f'model:={inputs.model}',
        '-p', 'input_rectified:=false', '-p', 'reliable_qos:=true']
    for setting in args.node_arg:
        cmd += ['-p', setting]
    node_process, executor, nodes = None, None, []
    try:
        rclpy.init()
        replay = StereoReplayNode(parameter_overrides=[
            Parameter('left_images', value=args.left),
            Parameter('right_images', value=args.right),
            Parameter('left_camera_info', value=args.left_info),
            Parameter('right_camera_info', value=args.right_info)])
        nodes.append(replay)
        with checked_input(f'--left {args.left!r} / --right {args.right!r}'):
            images = [replay.load_pair(i) for i in range(len(replay.pairs))]
        recorder = Node('keypoints_demo_recorder')
        nodes.append(recorder)
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        print(f'starting perception node: {" ".join(cmd)}')
        node_process = subprocess.Popen(cmd)
        return _record(args, inputs, images, node_process, replay, recorder, executor)
    finally:
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        if node_process is not None:
            _stop(node_process)


def _record(args, inputs: DemoInputs, images, node_process, replay, recorder,
            executor) -> int:
    """Replay every pair in lock-step, write the records; returns the exit code."""
    bridge = CvBridge()
    received = {}

    def on_msg(kind):
        def store(msg):
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            received.setdefault(key, {})[kind] = msg
        return store

    recorder.create_subscription(Keypoints3D, 'keypoints_3d', on_msg('3d'), 10)
    recorder.create_subscription(StereoKeypoints2D, 'keypoints_2d', on_msg('2d'), 10)
    if not args.no_annotate:
        recorder.create_subscription(Image, 'debug/image', on_msg('debug'), 10)
    needed = {'3d', '2d'} | (set() if args.no_annotate else {'debug'})
    # wait for the node to load its model and match the four inputs
    t0 = time.time()
    while any(p.get_subscription_count() == 0 for p in replay.pub.values()) or \
            recorder.count_publishers('keypoints_3d') == 0:
        executor.spin_once(timeout_sec=0.1)
        if node_process.poll() is not None:
            print('keypoints-demo: error: the perception node exited with status '
                  f'{node_process.returncode} (its log is above)', file=sys.stderr)
            return 1
        if time.time() - t0 > 60:
            print('keypoints-demo: error: the perception node did not come up within 60 s',
                  file=sys.stderr)
            return 1
    time.sleep(0.5)
    pairs, object_class = inputs.pairs, inputs.object_class
    records, latencies = [], []
    t_start = time.time()
    with atomic_open(args.output) as f:
        for i, (left_path, _) in enumerate(pairs):
            t_pub = time.time()
            stamp = replay.publish_pair(i, images=images[i])
            key = (stamp.sec, stamp.nanosec)
            while set(received.get(key, {})) < needed and time.time() - t_pub < args.timeout:
                executor.spin_once(timeout_sec=0.005)
            latency = (time.time() - t_pub) * 1e3
            msgs = received.pop(key, {})
            record = make_record(i, stamp, left_path, msgs, object_class)
            f.write(json.dumps(record) + '\n')
            records.append(record)
            if '3d' in msgs:
                latencies.append(latency)
            entry = record['objects'][0] if record['objects'] else None
            print(summary_line(i, len(pairs), os.path.basename(left_path), entry, latency)
                  + ('' if msgs else '  (no result: timeout)'), flush=True)
            if 'debug' in msgs:
                img = bridge.imgmsg_to_cv2(msgs['debug'], 'bgr8')
                name = os.path.splitext(os.path.basename(left_path))[0]
                cv2.imwrite(os.path.join(inputs.annotated_dir, f'{i:03d}_{name}.jpg'), img)
    elapsed = time.time() - t_start
    full = sum(1 for r in records if r['objects'] and
               all(k['xyz'] is not None for k in r['objects'][0]['keypoints']))
    print(f'\n{full}/{len(records)} stereo pairs with all {object_class.num_keypoints} '
          f'keypoints in 3D; {len(records) / elapsed:.1f} pairs/s in lock-step '
          f'(median latency {np.median(latencies) if latencies else float("nan"):.0f} ms)')
    print(f'wrote {args.output}' + ('' if args.no_annotate else
                                    f' and {inputs.annotated_dir}/'))
    return 0 if len(latencies) == len(records) else 1


def _rounded(value):
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def make_record(index, stamp, left_path, msgs, object_class) -> dict:
    """JSON-ready record of one stereo pair (schema in the README)."""
    record = {'index': index, 'stamp': stamp.sec + stamp.nanosec * 1e-9,
              'left_image': os.path.basename(left_path), 'objects': []}
    if '3d' not in msgs:
        return record
    objects_2d = {}
    if '2d' in msgs:
        for left_obj, right_obj in zip(msgs['2d'].left.objects, msgs['2d'].right.objects):
            objects_2d[(left_obj.class_name, left_obj.instance_id)] = (left_obj, right_obj)
    for obj in msgs['3d'].objects:
        left_obj, right_obj = objects_2d.get((obj.class_name, obj.instance_id), (None, None))
        keypoints = []
        for j, kp in enumerate(obj.keypoints):
            left_kp = left_obj.keypoints[j] if left_obj else None
            right_kp = right_obj.keypoints[j] if right_obj else None
            keypoints.append({
                'name': kp.name,
                'left_uv': [_rounded(left_kp.x), _rounded(left_kp.y)]
                if left_kp and left_kp.valid else None,
                'right_uv': [_rounded(right_kp.x), _rounded(right_kp.y)]
                if right_kp and right_kp.valid else None,
                'xyz': [_rounded(kp.position.x), _rounded(kp.position.y),
                        _rounded(kp.position.z)] if kp.valid else None,
                'confidence': _rounded(kp.confidence),
                'reprojection_error_px': _rounded(kp.reprojection_error) if kp.valid else None})
        edges = []
        for a, b in object_class.skeleton:
            xyz_a, xyz_b = keypoints[a]['xyz'], keypoints[b]['xyz']
            edges.append(None if xyz_a is None or xyz_b is None else
                         round(1000 * float(np.linalg.norm(np.subtract(xyz_a, xyz_b))), 2))
        entry = {'class': obj.class_name, 'instance': obj.instance_id, 'keypoints': keypoints,
                 'edges_mm': edges}
        if obj.pose_valid:
            pose = obj.pose
            entry['pose'] = {'position': [pose.position.x, pose.position.y, pose.position.z],
                             'orientation_xyzw': [pose.orientation.x, pose.orientation.y,
                                                  pose.orientation.z, pose.orientation.w],
                             'fit_rmse_m': _rounded(obj.pose_fit_rmse)}
        record['objects'].append(entry)
    return record


@command_line('keypoints-demo')
def main(argv=None):
    """Console entry point ``keypoints-demo``; returns the exit status."""
    return run(parse_args(argv))


if __name__ == '__main__':
    raise SystemExit(main())
