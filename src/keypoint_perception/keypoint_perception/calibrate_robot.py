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
r"""Markerless camera-to-robot calibration from recorded images (``keypoints-calibrate-robot``).

::

    keypoints-calibrate-robot --model panda --images 'GLOB' --camera-info CAM.yaml \\
        --joint-states JOINTS.csv --output CALIB.json [--urdf ROBOT.urdf]

For each image the robot's keypoints are detected (mono), their base-frame
positions computed from the image's joint angles (forward kinematics of
the URDF), and ``T_camera_base`` (base frame -> camera optical frame,
metres) estimated by PnP with RANSAC; then all images of the (static)
camera are combined, outlier images rejected, with the spread of the
single-image estimates.  ``JOINTS.csv``: header ``image,<joint name>,...``
(URDF joint names, radians or metres), one row per image file name.
``CAM.yaml``: a ROS camera_info YAML of the camera that took the images.
Output JSON: ``images`` (per image ``image``, ``T_camera_base`` (4x4 or
null), ``inliers`` (names of the inlier keypoints), ``reprojection_error_px``
(RMS over the inliers) and, when null, ``failure``, e.g. an unreadable image
or too few keypoints) and ``aggregate``.  Joint columns the URDF lacks are
ignored with a warning; values beyond the URDF's limits (degrees given for
radians) are warned about, and so are fewer than 3 estimates (too few to
reject an outlier image).
See docs/robot_calibration.md.  No ROS.
"""

import csv
import json
import math
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from .cli import (ArgumentParser, checked_input, command_line, InputError, positive_float)
from .core.camera import CameraModel
from .core.files import atomic_open
from .core.kinematics import keypoint_anchors, RobotKinematics
from .core.multi_frame_calibration import combine_frames
from .core.pose_covariance import inverse_pose_covariance
from .core.robot_calibration import fit_camera_to_base_mono, MAX_RELATIVE_STD, well_determined
from .detect import add_model_options, detect_keypoints, image_files, load_detector, read_image

#: URDFs (in pybullet_data) that the shipped robot classes are rendered from.
DEFAULT_URDFS = {'panda': 'franka_panda/panda.urdf', 'kuka_iiwa': 'kuka_iiwa/model.urdf'}


def default_urdf(class_name: str) -> str:
    """Return the path of the URDF a shipped robot class was trained on.

    Raises:
        InputError: the class has no default URDF (``--urdf`` is needed).
    """
    if class_name not in DEFAULT_URDFS:
        raise InputError(f'--urdf: the class {class_name!r} has no default URDF; give --urdf')
    # optional dependency: only needed for this default (pybullet ships the URDFs)
    import pybullet_data
    return os.path.join(pybullet_data.getDataPath(), DEFAULT_URDFS[class_name])


def read_joint_states(path: str) -> Tuple[List[str], Dict[str, Dict[str, float]]]:
    """Read ``JOINTS.csv``: its joint names and {image file name: {joint name: value}}.

    The header is ``image,<joint name>,...``; empty cells are left out of
    that image's mapping.  A byte-order mark and trailing empty columns (as
    spreadsheets write them) are skipped.

    Raises:
        ValueError: no ``image`` column first, a joint named twice or an
            empty name in the header, a value in a column without a name, a
            value that is not a finite number, or an image named twice.
        OSError: the file cannot be read.
    """
    with open(path, newline='', encoding='utf-8-sig') as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0].strip() != 'image':
        raise ValueError('the header must start with "image" followed by joint names')
    joints = [name.strip() for name in rows[0][1:]]
    while joints and not joints[-1]:  # trailing commas, as spreadsheets export them
        joints.pop()
    twice = sorted({name for name in joints if joints.count(name) > 1})
    if twice or '' in joints:
        raise ValueError(f'header: joint names must be given once each and not be empty '
                         f'({twice or "an empty name"})')
    out = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if any(cell.strip() for cell in row[len(joints) + 1:]):
            raise ValueError(f'line {line}: values beyond the header\'s {len(joints) + 1} '
                             'columns')
        image = row[0].strip()
        if image in out:
            raise ValueError(f'line {line}: image {image!r} appears twice')
        values = {}
        for joint, cell in zip(joints, row[1:]):
            if cell.strip():
                try:
                    value = float(cell)
                except ValueError:
                    raise ValueError(f'line {line}, {joint}: {cell!r} is not a number') \
                        from None
                if not math.isfinite(value):
                    raise ValueError(f'line {line}, {joint}: {cell!r} is not finite')
                values[joint] = value
        out[image] = values
    return joints, out


def check_joint_columns(columns: List[str], needed: List[str], known: List[str]) -> List[str]:
    """Check ``JOINTS.csv``'s joint names against the URDF.

    Args:
        columns: the CSV's joint names.
        needed: the joints that move the keypoints' links.
        known: all movable joints of the URDF.

    Returns:
        the columns the URDF does not have (ignored; worth a warning).

    Raises:
        InputError: a needed joint has no column (naming the unknown columns,
            which may be misspelt).
    """
    unknown = [c for c in columns if c not in known]
    missing = [j for j in needed if j not in columns]
    if missing:
        raise InputError(f'--joint-states: no column for the joints {missing}'
                         + (f'; not URDF joints: {unknown}' if unknown else ''))
    return unknown


def _number(value) -> Optional[float]:
    """Return a float for JSON, None for NaN or infinity (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _matrix(T: np.ndarray) -> List[List[Optional[float]]]:
    return [[_number(x) for x in row] for row in np.asarray(T)]


@command_line('keypoints-calibrate-robot')
def main(argv: Optional[List[str]] = None) -> Optional[int]:
    """Estimate T_camera_base from images of a robot and its joint states."""
    parser = ArgumentParser(prog='keypoints-calibrate-robot',
                            description=__doc__.split('\n\n')[0])
    add_model_options(parser)
    parser.add_argument('--images', required=True, help='glob of the images (quote it)')
    parser.add_argument('--camera-info', required=True, help='ROS camera_info YAML')
    parser.add_argument('--joint-states', required=True,
                        help='CSV: image,<joint name>,... (radians), one row per image')
    parser.add_argument('--output', required=True, help='JSON file to write')
    parser.add_argument('--urdf', default='',
                        help='robot URDF (default: the one the shipped class was trained on)')
    parser.add_argument('--object-class', default='',
                        help='class YAML with the keypoints\' links (default: the shipped one)')
    parser.add_argument('--rectified', action='store_true',
                        help='the images are rectified (pixels use P, not K and D)')
    parser.add_argument('--inlier-threshold', type=positive_float, default=8.0,
                        help='largest reprojection error of an inlier keypoint, pixels '
                             '(default %(default)s)')
    parser.add_argument('--max-relative-std', type=positive_float, default=MAX_RELATIVE_STD,
                        help="largest 1-sigma translation uncertainty of an image's estimate "
                             "as a fraction of the robot base's distance; less certain images "
                             'count as failures (default %(default)s)')
    args = parser.parse_args(argv)

    paths = image_files(args.images)
    with checked_input(f'--camera-info {args.camera_info}'):
        camera = CameraModel.from_yaml(args.camera_info)
    with checked_input(f'--joint-states {args.joint_states}'):
        columns, joint_states = read_joint_states(args.joint_states)
    detector = load_detector(args.model, args.device, args.threads)
    object_class = detector.object_class
    with checked_input(f'--object-class {args.object_class or object_class.name}'):
        anchors = keypoint_anchors(object_class, args.object_class or None)
    urdf = args.urdf or default_urdf(object_class.name)
    with checked_input(f'--urdf {urdf}'):
        kinematics = RobotKinematics(urdf)
        needed = kinematics.required_joints([a.link for a in anchors])
    unknown = check_joint_columns(columns, needed, kinematics.joint_names)
    if unknown:
        print(f'warning: --joint-states: {unknown} are not joints of the URDF; ignored',
              file=sys.stderr)
    outside = sorted({j for values in joint_states.values()
                      for j in kinematics.outside_limits(values)})
    if outside:
        print(f'warning: --joint-states: values of {outside} lie outside their URDF limits; '
              'joint values must be radians (or metres)', file=sys.stderr)
    with checked_input(f'--output {args.output}'):
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)

    records, estimates, bases, observations = [], [], [], []
    for path in paths:
        name = os.path.basename(path)
        record = {'image': name, 'T_camera_base': None, 'inliers': [],
                  'reprojection_error_px': None}
        records.append(record)
        estimates.append(None)
        bases.append(np.full((object_class.num_keypoints, 3), np.nan))
        observations.append(np.full((object_class.num_keypoints, 2), np.nan))
        if name not in joint_states:
            record['failure'] = f'no row for {name!r} in --joint-states'
            continue
        missing = [j for j in needed if j not in joint_states[name]]
        if missing:
            record['failure'] = f'no joint value for {missing}'
            continue
        try:
            image = read_image(path)
        except ValueError as e:
            record['failure'] = f'unreadable image: {e}'
            continue
        if (image.shape[1], image.shape[0]) != (camera.width, camera.height):
            record['failure'] = (f'image is {image.shape[1]}x{image.shape[0]}, --camera-info '
                                 f'says {camera.width}x{camera.height}')
            continue
        detection = detect_keypoints(detector, image, args.threshold, args.roi_refinement,
                                     args.roi_scale)
        bases[-1] = kinematics.keypoint_positions(joint_states[name], anchors)
        observations[-1] = detection.uv
        estimate = fit_camera_to_base_mono(detection.uv, bases[-1], camera,
                                           rectified=args.rectified,
                                           inlier_threshold_px=args.inlier_threshold,
                                           max_relative_std=math.inf)
        if estimate is None:
            found = int(detection.found.sum())
            record['failure'] = (f'{found} keypoints detected: fewer than 4 consistent with '
                                 'one camera pose')
            continue
        if well_determined(estimate, args.max_relative_std) is None:
            record['failure'] = (f'the pose is too uncertain: {estimate.describe_uncertainty()} '
                                 f'(--max-relative-std {args.max_relative_std:g})')
            continue
        estimates[-1] = estimate
        record.update({
            'T_camera_base': _matrix(estimate.T_camera_base),
            'inliers': [n for n, ok in zip(object_class.keypoint_names, estimate.inliers)
                        if ok],
            'reprojection_error_px': _number(estimate.rms)})

    combined = combine_frames(estimates, bases, observations, camera=camera,
                              rectified=args.rectified)
    aggregate = None
    if combined is not None:
        T = combined.T_camera_base
        aggregate = {
            'T_camera_base': _matrix(T),
            'T_base_camera': _matrix(np.linalg.inv(T)),
            'images_used': [r['image'] for r, used in zip(records, combined.frames_used)
                            if used],
            'images_rejected': [r['image'] for r, e, used in
                                zip(records, estimates, combined.frames_used)
                                if e is not None and not used],
            'translation_std_m': [_number(x) for x in combined.translation_std_m],
            'rotation_std_deg': [_number(math.degrees(x)) for x in combined.rotation_std_rad],
            'covariance': _matrix(combined.covariance),
            'covariance_base_camera': _matrix(inverse_pose_covariance(T, combined.covariance)),
            'reprojection_error_px': _number(combined.rms),
            'num_keypoints': combined.num_correspondences}
    result = {'model': detector.model_path, 'class': object_class.name, 'urdf': urdf,
              'camera_frame': 'optical (REP 103)', 'base_frame': kinematics.base_link,
              'images': records, 'aggregate': aggregate}
    with checked_input(f'--output {args.output}'):
        with atomic_open(args.output, encoding='utf-8') as f:
            json.dump(result, f, indent=1, allow_nan=False)
    done = sum(e is not None for e in estimates)
    if aggregate is None:
        print(f'no image gave an estimate ({len(paths)} images) -> {args.output}')
        return 1
    if done < 3:
        print(f'warning: {done} of {len(paths)} images gave an estimate: too few to reject '
              'an outlier image', file=sys.stderr)
    std_mm = ', '.join(f'{1000 * x:.1f}' for x in combined.translation_std_m)
    print(f'{done}/{len(paths)} images gave an estimate, {len(aggregate["images_used"])} '
          f'combined; translation std per image ({std_mm}) mm -> {args.output}')
    return 0
