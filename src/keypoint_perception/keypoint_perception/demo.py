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
import json
import math
import os
import subprocess
import sys
import time

from ament_index_python.packages import get_package_prefix, PackageNotFoundError
import cv2
from cv_bridge import CvBridge
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from .cli import repo_root
from .core.objects import load_object_class
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


def parse_args(argv=None):
    """Command-line options (defaults: the real OpenCV stereo sequence)."""
    root = repo_root()
    data = os.path.join(root, 'data', 'opencv_stereo')
    cal = os.path.join(root, 'config', 'camera_info')
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--left', default=os.path.join(data, 'left[0-9]*.jpg'),
                   help='glob of left images (quote it)')
    p.add_argument('--right', default=os.path.join(data, 'right[0-9]*.jpg'),
                   help='glob of right images (quote it)')
    p.add_argument('--left-info', default=os.path.join(cal, 'opencv_stereo_left.yaml'),
                   help='left camera_info YAML')
    p.add_argument('--right-info', default=os.path.join(cal, 'opencv_stereo_right.yaml'),
                   help='right camera_info YAML')
    p.add_argument('--object', default='checkerboard', help='object class to detect')
    p.add_argument('--model', default='', help='checkpoint (default: <object>_lite)')
    p.add_argument('--output', default=os.path.join(root, 'output', 'demo',
                                                    'keypoints_3d.jsonl'))
    p.add_argument('--annotated-dir', default='',
                   help='annotated images (default: <output dir>/annotated)')
    p.add_argument('--no-annotate', action='store_true',
                   help='do not subscribe to debug/image (measures the bare pipeline)')
    p.add_argument('--timeout', type=float, default=30.0, help='seconds to wait per pair')
    p.add_argument('--node-arg', action='append', default=[],
                   help='extra "name:=value" parameter for the perception node')
    return p.parse_args(argv)


def summary_line(i, n, name, obj, latency_ms):
    """One human-readable line per stereo pair."""
    kps = obj['keypoints'] if obj else []
    n3 = sum(k['xyz'] is not None for k in kps)
    line = f'[{i + 1:2d}/{n}] {name:14s} {n3}/{len(kps)} keypoints in 3D'
    xyz = [k['xyz'] for k in kps]
    if obj and obj.get('edges_mm'):
        line += '  edges ' + '/'.join('--' if e is None else f'{e:.1f}'
                                      for e in obj['edges_mm']) + ' mm'
    errs = [k['reprojection_error_px'] for k in kps if k['reprojection_error_px'] is not None]
    if errs:
        line += f'  reproj {np.mean(errs):.2f} px'
    if any(x is not None for x in xyz):
        z = np.mean([x[2] for x in xyz if x is not None])
        line += f'  depth {z:.3f} m'
    return line + f'  latency {latency_ms:.0f} ms'


def run(args) -> int:
    """Run the demo; returns a process exit code."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    for path in (args.left_info, args.right_info):
        if not os.path.isfile(path):
            print(f'error: camera_info YAML not found: {path}', file=sys.stderr)
            return 2
    try:
        pairs = pair_files(args.left, args.right)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}\n(the default input is fetched by tools/fetch_data.sh; '
              f'`make demo` runs it)', file=sys.stderr)
        return 2
    oc = load_object_class(args.object)
    model = args.model or f'{args.object}_lite'
    out_dir = os.path.dirname(os.path.abspath(args.output))
    ann_dir = args.annotated_dir or os.path.join(out_dir, 'annotated')
    os.makedirs(out_dir, exist_ok=True)
    if not args.no_annotate:
        os.makedirs(ann_dir, exist_ok=True)

    cmd = node_command('stereo_keypoint_node') + [
        '--ros-args', '-r', 'left/image_rect:=left/image_raw',
        '-r', 'right/image_rect:=right/image_raw', '-p', f'model:={model}',
        '-p', 'input_rectified:=false', '-p', 'reliable_qos:=true']
    for kv in args.node_arg:
        cmd += ['-p', kv]
    print(f'starting perception node: {" ".join(cmd)}')
    node_proc = subprocess.Popen(cmd)
    rclpy.init()
    replay = StereoReplayNode(parameter_overrides=[
        Parameter('left_images', value=args.left), Parameter('right_images', value=args.right),
        Parameter('left_camera_info', value=args.left_info),
        Parameter('right_camera_info', value=args.right_info)])
    rec = Node('keypoints_demo_recorder')
    bridge = CvBridge()
    got = {}

    def on_msg(kind):
        def cb(msg):
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            got.setdefault(key, {})[kind] = msg
        return cb

    rec.create_subscription(Keypoints3D, 'keypoints_3d', on_msg('3d'), 10)
    rec.create_subscription(StereoKeypoints2D, 'keypoints_2d', on_msg('2d'), 10)
    if not args.no_annotate:
        rec.create_subscription(Image, 'debug/image', on_msg('debug'), 10)
    executor = SingleThreadedExecutor()
    executor.add_node(replay)
    executor.add_node(rec)
    needed = {'3d', '2d'} | (set() if args.no_annotate else {'debug'})
    code = 0
    try:
        # wait for the node to load its model and match the four inputs
        t0 = time.time()
        while any(p.get_subscription_count() == 0 for p in replay.pub.values()) or \
                rec.count_publishers('keypoints_3d') == 0:
            executor.spin_once(timeout_sec=0.1)
            if node_proc.poll() is not None:
                print('error: the perception node exited', file=sys.stderr)
                return 1
            if time.time() - t0 > 60:
                print('error: perception node did not come up within 60 s', file=sys.stderr)
                return 1
        time.sleep(0.5)
        images = [replay.load_pair(i) for i in range(len(pairs))]
        records, latencies = [], []
        t_start = time.time()
        with open(args.output + '.tmp', 'w') as f:
            for i, (lp, rp) in enumerate(pairs):
                t_pub = time.time()
                stamp = replay.publish_pair(i, images=images[i])
                key = (stamp.sec, stamp.nanosec)
                while set(got.get(key, {})) < needed and time.time() - t_pub < args.timeout:
                    executor.spin_once(timeout_sec=0.005)
                latency = (time.time() - t_pub) * 1e3
                msgs = got.pop(key, {})
                rec_ = make_record(i, stamp, lp, msgs, oc)
                f.write(json.dumps(rec_) + '\n')
                records.append(rec_)
                if '3d' in msgs:
                    latencies.append(latency)
                obj = rec_['objects'][0] if rec_['objects'] else None
                print(summary_line(i, len(pairs), os.path.basename(lp), obj, latency)
                      + ('' if msgs else '  (no result: timeout)'), flush=True)
                if 'debug' in msgs:
                    img = bridge.imgmsg_to_cv2(msgs['debug'], 'bgr8')
                    name = os.path.splitext(os.path.basename(lp))[0]
                    cv2.imwrite(os.path.join(ann_dir, f'{i:03d}_{name}.jpg'), img)
        elapsed = time.time() - t_start
        os.replace(args.output + '.tmp', args.output)
        full = sum(1 for r in records if r['objects'] and
                   all(k['xyz'] is not None for k in r['objects'][0]['keypoints']))
        print(f'\n{full}/{len(records)} stereo pairs with all {oc.num_keypoints} keypoints '
              f'in 3D; {len(records) / elapsed:.1f} pairs/s in lock-step '
              f'(median latency {np.median(latencies) if latencies else float("nan"):.0f} ms)')
        print(f'wrote {args.output}' + ('' if args.no_annotate else f' and {ann_dir}/'))
        if len(latencies) < len(records):
            code = 1
    finally:
        executor.shutdown()
        replay.destroy_node()
        rec.destroy_node()
        rclpy.try_shutdown()
        node_proc.terminate()
        try:
            node_proc.wait(10)
        except subprocess.TimeoutExpired:
            node_proc.kill()
    return code


def _f(v):
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def make_record(index, stamp, left_path, msgs, oc) -> dict:
    """JSON-ready record of one stereo pair (schema in the README)."""
    rec = {'index': index, 'stamp': stamp.sec + stamp.nanosec * 1e-9,
           'left_image': os.path.basename(left_path), 'objects': []}
    if '3d' not in msgs:
        return rec
    objs2d = {}
    if '2d' in msgs:
        m2 = msgs['2d']
        for lo, ro in zip(m2.left.objects, m2.right.objects):
            objs2d[(lo.class_name, lo.instance_id)] = (lo, ro)
    for obj in msgs['3d'].objects:
        lo, ro = objs2d.get((obj.class_name, obj.instance_id), (None, None))
        kps = []
        for j, k in enumerate(obj.keypoints):
            l2 = lo.keypoints[j] if lo else None
            r2 = ro.keypoints[j] if ro else None
            kps.append({
                'name': k.name,
                'left_uv': [_f(l2.x), _f(l2.y)] if l2 and l2.valid else None,
                'right_uv': [_f(r2.x), _f(r2.y)] if r2 and r2.valid else None,
                'xyz': [_f(k.position.x), _f(k.position.y), _f(k.position.z)]
                if k.valid else None,
                'confidence': _f(k.confidence),
                'reprojection_error_px': _f(k.reprojection_error) if k.valid else None})
        edges = []
        for a, b in oc.skeleton:
            xa, xb = kps[a]['xyz'], kps[b]['xyz']
            edges.append(None if xa is None or xb is None else
                         round(1000 * float(np.linalg.norm(np.subtract(xa, xb))), 2))
        entry = {'class': obj.class_name, 'instance': obj.instance_id, 'keypoints': kps,
                 'edges_mm': edges}
        if obj.pose_valid:
            p = obj.pose
            entry['pose'] = {'position': [p.position.x, p.position.y, p.position.z],
                             'orientation_xyzw': [p.orientation.x, p.orientation.y,
                                                  p.orientation.z, p.orientation.w],
                             'fit_rmse_m': _f(obj.pose_fit_rmse)}
        rec['objects'].append(entry)
    return rec


def main(argv=None):
    """Console entry point ``keypoints-demo``."""
    sys.exit(run(parse_args(argv)))


if __name__ == '__main__':
    main()
