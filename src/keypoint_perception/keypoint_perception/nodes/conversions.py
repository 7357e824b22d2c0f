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
"""Thin converters between core values and ROS messages (no numerics here).

The one place where ROS messages and core values meet, in both directions:

* camera models: :func:`camera_info_msg` (CameraModel -> sensor_msgs/CameraInfo)
  and :func:`camera_model` (CameraInfo -> CameraModel);
* poses: :func:`pose_msg` ((4, 4) homogeneous transform -> geometry_msgs/Pose);
* pipeline results: ``keypoints_2d``, ``keypoints_3d``, TF frames and RViz markers.

Importing this module does not import torch (the pipeline result types are
needed for annotations only), so the simulator's ROS glue can use it.
"""

from __future__ import annotations

import math
from typing import List, Tuple, TYPE_CHECKING

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, TransformStamped
from keypoint_msgs.msg import (
    Keypoint2D, Keypoint3D, Keypoints3D, ObjectKeypoints2D, ObjectKeypoints3D,
    StereoKeypoints2D, ViewKeypoints2D)
import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..core.camera import CameraModel
from ..core.rotations import quaternion_from_matrix
from ..core.objects import ObjectClass

if TYPE_CHECKING:  # annotations only: the pipeline module imports torch
    from ..core.pipeline import StereoResult
    from ..core.views import ViewKeypoints


def _view(det: ViewKeypoints, oc: ObjectClass, frame_id: str, width: int, height: int,
          instance_id: str) -> ViewKeypoints2D:
    kps = []
    for name, uv, c in zip(oc.keypoint_names, det.uv, det.confidence):
        ok = bool(np.isfinite(uv).all())
        kps.append(Keypoint2D(name=name, x=float(uv[0]) if ok else math.nan,
                              y=float(uv[1]) if ok else math.nan, confidence=float(c),
                              valid=ok))
    obj = ObjectKeypoints2D(class_name=oc.name, instance_id=instance_id, keypoints=kps)
    return ViewKeypoints2D(frame_id=frame_id, width=width, height=height, objects=[obj])


def stereo_keypoints_2d(header, right_frame_id: str, result: StereoResult, oc: ObjectClass,
                        left_size, right_size, instance_id: str) -> StereoKeypoints2D:
    """``keypoints_2d`` message; sizes are (width, height) of each view."""
    return StereoKeypoints2D(
        header=header,
        left=_view(result.left, oc, header.frame_id, *left_size, instance_id),
        right=_view(result.right, oc, right_frame_id, *right_size, instance_id))


def mono_keypoints_2d(header, detection: ViewKeypoints, oc: ObjectClass, size,
                      instance_id: str) -> StereoKeypoints2D:
    """``keypoints_2d`` of one camera (mono node): the view in ``left``, ``right`` empty.

    ``header.frame_id`` is the camera's optical frame; ``size`` its image's
    (width, height).  ``right`` has no objects, an empty frame_id and size 0.
    """
    return StereoKeypoints2D(
        header=header, left=_view(detection, oc, header.frame_id, *size, instance_id),
        right=ViewKeypoints2D())


def object_keypoints(objects, oc: ObjectClass, instance_id: str = ''):
    """Return the first object of class ``oc`` (and ``instance_id`` if given), or None.

    ``objects``: ``ObjectKeypoints2D[]`` or ``ObjectKeypoints3D[]`` of a message.
    """
    for obj in objects:
        if obj.class_name == oc.name and (not instance_id or obj.instance_id == instance_id):
            return obj
    return None


def keypoint_array(obj, oc: ObjectClass) -> np.ndarray:
    """Return the keypoints of one message object as an array in the class's keypoint order.

    Args:
        obj: ``ObjectKeypoints2D`` (pixels) or ``ObjectKeypoints3D``
            (metres, the message header's frame).
        oc: the class; keypoints are matched by name.

    Returns:
        (J, 2) pixels or (J, 3) metres, float64; NaN rows for keypoints that
        are invalid or missing from the message.
    """
    is_3d = isinstance(obj, ObjectKeypoints3D)
    out = np.full((oc.num_keypoints, 3 if is_3d else 2), np.nan)
    index = {name: j for j, name in enumerate(oc.keypoint_names)}
    for kp in obj.keypoints:
        j = index.get(kp.name)
        if j is None or not kp.valid:
            continue
        out[j] = (kp.position.x, kp.position.y, kp.position.z) if is_3d else (kp.x, kp.y)
    return out


def camera_info_msg(camera: CameraModel, stamp=None) -> CameraInfo:
    """Return the ``sensor_msgs/CameraInfo`` of a camera model (inverse of :func:`camera_model`).

    Args:
        camera: the model; its ``frame_id`` (the camera's optical frame)
            becomes ``header.frame_id``.
        stamp: ``builtin_interfaces/Time`` for ``header.stamp`` (zero if None).

    Returns:
        A new message: ``width``/``height`` in pixels, ``k`` (9), ``r`` (9),
        ``p`` (12) row-major, ``d`` and ``distortion_model`` as in the model.
        A model without distortion (``distortion_model`` '') is written as
        ``plumb_bob`` with zero coefficients (5, or none if D is empty), the
        usual way drivers say "no distortion".
    """
    msg = CameraInfo()
    msg.header.frame_id = camera.frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = camera.distortion_model or 'plumb_bob'
    if camera.distortion_model:
        msg.d = [float(v) for v in camera.D]
    else:
        msg.d = [0.0] * 5 if camera.D.size else []
    msg.k = [float(v) for v in camera.K.ravel()]
    msg.r = [float(v) for v in camera.R.ravel()]
    msg.p = [float(v) for v in camera.P.ravel()]
    return msg


def binned_image_size(info: CameraInfo) -> Tuple[int, int]:
    """(width, height) of the images a CameraInfo describes, pixels.

    CameraInfo's ``width``/``height`` are the calibration's full resolution;
    a binning camera sends images ``binning_x`` (``binning_y``) times smaller,
    rounded down as image_geometry's ``PinholeCameraModel`` reduces them (0
    means 1, no binning).
    """
    return (int(info.width) // max(int(info.binning_x), 1),
            int(info.height) // max(int(info.binning_y), 1))


def camera_model(info: CameraInfo) -> CameraModel:
    """Return the camera model of a ``sensor_msgs/CameraInfo`` (inverse of camera_info_msg).

    See :meth:`CameraModel.from_camera_info
    <keypoint_perception.core.camera.CameraModel.from_camera_info>` (binning
    applied, ``header.frame_id`` kept).

    Raises:
        CalibrationError: uncalibrated (zero K or P), malformed or non-finite
            calibration, unknown distortion model, region of interest.
    """
    return CameraModel.from_camera_info(info)


def pose_msg(T: np.ndarray) -> Pose:
    """Return the ``geometry_msgs/Pose`` of a (4, 4) homogeneous transform.

    Translation in the transform's units (metres); orientation the unit
    quaternion (x, y, z, w) of ``T[:3, :3]``
    (:func:`~keypoint_perception.core.rotations.quaternion_from_matrix`).
    ``T`` may be any (4, 4) array-like (e.g. nested lists of a labels file).
    """
    T = np.asarray(T, dtype=np.float64)
    x, y, z, w = quaternion_from_matrix(T[:3, :3])
    p = Pose()
    p.position = Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3]))
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (
        float(x), float(y), float(z), float(w))
    return p


def keypoints_3d(header, result: StereoResult, oc: ObjectClass,
                 instance_id: str) -> Keypoints3D:
    """``keypoints_3d`` message in the left optical frame (``header.frame_id``)."""
    kps = []
    for j, name in enumerate(oc.keypoint_names):
        valid = bool(result.valid[j])
        xyz = result.xyz[j] if valid else (math.nan,) * 3
        kps.append(Keypoint3D(
            name=name, position=Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
            confidence=float(result.confidence[j]), valid=valid,
            reprojection_error=float(result.reprojection_error_px[j]) if valid else math.nan))
    obj = ObjectKeypoints3D(class_name=oc.name, instance_id=instance_id, keypoints=kps,
                            pose_valid=result.pose is not None,
                            pose=pose_msg(result.pose if result.pose is not None
                                          else np.eye(4)),
                            pose_fit_rmse=float(result.pose_rmse))
    return Keypoints3D(header=header, objects=[obj])


def transforms(header, result: StereoResult, oc: ObjectClass,
               prefix: str) -> List[TransformStamped]:
    """Build the TF frames of one result.

    ``<prefix>/<keypoint>`` per valid keypoint (identity rotation) and
    ``<prefix>`` for the fitted object pose, children of the left optical frame.
    """
    out = []
    for j, name in enumerate(oc.keypoint_names):
        if not result.valid[j]:
            continue
        t = TransformStamped()
        t.header = header
        t.child_frame_id = f'{prefix}/{name}'
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in result.xyz[j])
        t.transform.rotation.w = 1.0
        out.append(t)
    if result.pose is not None:
        t = TransformStamped()
        t.header = header
        t.child_frame_id = prefix
        p = pose_msg(result.pose)
        t.transform.translation.x = p.position.x
        t.transform.translation.y = p.position.y
        t.transform.translation.z = p.position.z
        t.transform.rotation = p.orientation
        out.append(t)
    return out


def markers(header, result: StereoResult, oc: ObjectClass, ns: str, scale: float,
            lifetime_s: float) -> MarkerArray:
    """Spheres per keypoint, skeleton lines and text labels (RViz)."""
    arr = MarkerArray()
    life = _duration(lifetime_s)
    green = ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0)
    spheres = Marker(header=header, ns=f'{ns}/keypoints', id=0, type=Marker.SPHERE_LIST,
                     action=Marker.ADD, lifetime=life, color=green)
    spheres.pose.orientation.w = 1.0
    spheres.scale.x = spheres.scale.y = spheres.scale.z = scale
    lines = Marker(header=header, ns=f'{ns}/skeleton', id=0, type=Marker.LINE_LIST,
                   action=Marker.ADD, lifetime=life,
                   color=ColorRGBA(r=1.0, g=0.6, b=0.1, a=1.0))
    lines.pose.orientation.w = 1.0
    lines.scale.x = scale / 3
    for j in range(oc.num_keypoints):
        if result.valid[j]:
            spheres.points.append(Point(x=float(result.xyz[j, 0]), y=float(result.xyz[j, 1]),
                                        z=float(result.xyz[j, 2])))
    for a, b in oc.skeleton:
        if result.valid[a] and result.valid[b]:
            for j in (a, b):
                lines.points.append(Point(x=float(result.xyz[j, 0]),
                                          y=float(result.xyz[j, 1]),
                                          z=float(result.xyz[j, 2])))
    arr.markers += [spheres, lines]
    for j, name in enumerate(oc.keypoint_names):
        text = Marker(header=header, ns=f'{ns}/labels', id=j, type=Marker.TEXT_VIEW_FACING,
                      lifetime=life, color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=name)
        text.action = Marker.ADD if result.valid[j] else Marker.DELETE
        if result.valid[j]:
            text.pose.position = Point(x=float(result.xyz[j, 0]),
                                       y=float(result.xyz[j, 1]) - 1.5 * scale,
                                       z=float(result.xyz[j, 2]))
        text.pose.orientation.w = 1.0
        text.scale.z = scale * 1.5
        arr.markers.append(text)
    return arr


def _duration(seconds: float) -> Duration:
    """Return ``builtin_interfaces/Duration`` of ``seconds`` (>= 0)."""
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))
