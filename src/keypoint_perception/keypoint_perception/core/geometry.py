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
"""Stereo camera geometry: camera models, undistortion, triangulation, rigid fits.

No ROS import: camera models are built from anything shaped like
``sensor_msgs/CameraInfo`` (duck typing) or from ROS camera_info YAML files.

Frames and conventions (REP 103/105, ROS ``sensor_msgs/CameraInfo``):

* *Optical frame* of a camera: +x right, +y down, +z forward, metres; the
  ``header.frame_id`` of its CameraInfo.
* *Rectified frame* of a camera: its optical frame rotated by the
  rectification matrix ``R``: ``X_rect = R @ X_optical``.  For a stereo pair
  the two rectified frames are parallel; ``P_left`` and ``P_right`` both
  project points given in the LEFT rectified frame.
* *Raw pixels*: pixels of the image as captured (distorted, ``image_raw``),
  described by ``K`` and ``D``.  *Rectified pixels*: pixels of the rectified
  image (``image_rect``), described by ``P``.  Pixel (0, 0) is the centre of
  the top-left pixel (OpenCV convention).
* The right camera's ``P[0, 3] = -fx' * B`` (``P[1, 3] = -fy' * B`` for a
  vertical rig), B the baseline in metres.

All arrays are float64 numpy arrays; N is a number of points.  Missing 2D
keypoints are NaN rows and propagate as NaN / invalid.
"""

from dataclasses import dataclass
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml

#: Distortion models of ``sensor_msgs/distortion_models.hpp`` and the number of
#: coefficients in ``D`` each requires ('' = no distortion).  An empty ``D``
#: is accepted for every model and means "no distortion".
DISTORTION_LENGTHS = {
    'plumb_bob': (5,),
    'rational_polynomial': (8,),
    'equidistant': (4,),
    '': (),
}

#: Reasons for rejecting a triangulated point (``StereoTriangulation.reason``).
REASON_VALID = ''
REASON_NON_FINITE_INPUT = 'non_finite_input'
REASON_DEGENERATE = 'degenerate'
REASON_BEHIND_CAMERA = 'behind_camera'
REASON_REPROJECTION_ERROR = 'reprojection_error'
REASON_TEMPLATE_OUTLIER = 'template_outlier'  # set by the pipeline's leave-one-out check

# Termination of OpenCV's iterative undistortion; its default is only 5
# iterations, which leaves errors of ~0.1 px for strong distortion.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


class CalibrationError(ValueError):
    """Camera calibration that cannot be used (missing, malformed or non-finite)."""


def _as_matrix(name, values, shape):
    """Return ``values`` as a finite float64 array of ``shape`` or raise CalibrationError."""
    try:
        arr = np.array(values, dtype=np.float64)  # a copy: the model is immutable
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f'{name} is not numeric: {exc}') from None
    if arr.size != int(np.prod(shape)):
        raise CalibrationError(
            f'{name} must have {int(np.prod(shape))} values, got {arr.size}')
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f'{name} contains non-finite values (NaN or inf)')
    return arr


def _as_points(name, uv, dim=2):
    """Return ``uv`` as an (N, dim) float64 array or raise ValueError."""
    arr = np.asarray(uv, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f'{name} must have shape (N, {dim}), got {arr.shape}')
    return arr


def normalize_symmetries(symmetries, num):
    """Return identity followed by the distinct valid permutations, as tuples.

    Raises:
        ValueError: if an entry is not a permutation of ``range(num)``.
    """
    identity = tuple(range(num))
    perms = [identity]
    for perm in symmetries or ():
        perm = tuple(int(i) for i in perm)
        if sorted(perm) != list(identity):
            raise ValueError(f'symmetry {list(perm)} is not a permutation of {num} keypoints')
        if perm not in perms:
            perms.append(perm)
    return perms


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Pinhole camera with lens distortion and stereo rectification (ROS CameraInfo).

    Attributes:
        width: image width in pixels (the size the calibration refers to).
        height: image height in pixels.
        K: (3, 3) intrinsic matrix of the raw (distorted) image, pixels.
        D: (n,) distortion coefficients; n = 5 (plumb_bob: k1 k2 p1 p2 k3),
            8 (rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6), 4 (equidistant:
            k1 k2 k3 k4), or 0 (no distortion).
        distortion_model: 'plumb_bob', 'rational_polynomial', 'equidistant'
            or '' (no distortion).
        R: (3, 3) rectification rotation, optical frame -> rectified frame.
        P: (3, 4) projection matrix of the rectified image, from the (left)
            rectified frame in metres to rectified pixels.
        frame_id: the camera's optical frame (CameraInfo ``header.frame_id``).

    Raises:
        CalibrationError: from the constructor on wrong shapes or lengths,
            non-finite values, all-zero K or P, non-positive focal lengths or
            image size, an unknown distortion model, or an R that is not a
            rotation.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    R: np.ndarray
    P: np.ndarray
    frame_id: str = ''

    def __post_init__(self):
        """Convert to float64 arrays and validate (see the class docstring)."""
        model = str(self.distortion_model or '')
        if model not in DISTORTION_LENGTHS:
            raise CalibrationError(
                f'unsupported distortion model {model!r}; expected one of '
                f'{sorted(m for m in DISTORTION_LENGTHS if m)} or empty')
        K = _as_matrix('K', self.K, (3, 3))
        P = _as_matrix('P', self.P, (3, 4))
        R = _as_matrix('R', self.R, (3, 3))
        try:
            D = np.array(self.D, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f'D is not numeric: {exc}') from None
        if not np.all(np.isfinite(D)):
            raise CalibrationError('D contains non-finite values (NaN or inf)')
        if D.size and model == '' and np.any(D != 0):
            raise CalibrationError('distortion model is empty but D is not all zeros')
        if D.size and model and D.size not in DISTORTION_LENGTHS[model]:
            raise CalibrationError(
                f'distortion model {model!r} needs {DISTORTION_LENGTHS[model][0]} '
                f'coefficients in D, got {D.size}')
        if not np.any(K):
            raise CalibrationError('K is all zeros: the camera is not calibrated')
        if not np.any(P):
            raise CalibrationError('P is all zeros: the camera is not calibrated')
        if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] != 0):
            raise CalibrationError(f'K has non-positive focal lengths or K[2,2] = 0: {K.tolist()}')
        if not (P[0, 0] > 0 and P[1, 1] > 0 and P[2, 2] != 0):
            raise CalibrationError(f'P has non-positive focal lengths or P[2,2] = 0: {P.tolist()}')
        if not np.any(R):
            R = np.eye(3)  # many monocular drivers leave R zero: means "no rectification"
        if (not np.allclose(R @ R.T, np.eye(3), atol=1e-4)) or np.linalg.det(R) <= 0:
            raise CalibrationError(f'R is not a rotation matrix: {R.tolist()}')
        try:
            width, height = int(self.width), int(self.height)
        except (TypeError, ValueError):
            raise CalibrationError('width and height must be integers') from None
        if width <= 0 or height <= 0:
            raise CalibrationError(f'image size must be positive, got {width}x{height}')
        for name, value in (('width', width), ('height', height), ('K', K), ('D', D),
                            ('distortion_model', model), ('R', R), ('P', P),
                            ('frame_id', str(self.frame_id or ''))):
            object.__setattr__(self, name, value)
        for arr in (K, D, R, P):
            arr.setflags(write=False)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_camera_info(cls, msg) -> 'CameraModel':
        """Build from a ``sensor_msgs/msg/CameraInfo`` or any object with its fields.

        Reads ``width``, ``height``, ``distortion_model``, ``d``, ``k``, ``r``,
        ``p`` and ``header.frame_id`` (ROS 1 upper-case ``D/K/R/P`` are also
        accepted).  ``binning_x/binning_y`` > 1 are applied with
        :meth:`scaled`; a region of interest smaller than the image is
        rejected.  An all-zero ``r`` is taken as identity.

        Raises:
            CalibrationError: on missing fields, zero K or P (uncalibrated
                camera), wrong lengths (k: 9, r: 9, p: 12, d: see
                ``DISTORTION_LENGTHS``), non-finite values, or an ROI.
        """
        def field(name):
            for attr in (name, name.upper()):
                if hasattr(msg, attr):
                    return getattr(msg, attr)
            raise CalibrationError(f'CameraInfo has no field {name!r}')

        header = getattr(msg, 'header', None)
        cam = cls(width=field('width'), height=field('height'), K=field('k'), D=field('d'),
                  distortion_model=field('distortion_model'), R=field('r'), P=field('p'),
                  frame_id=getattr(header, 'frame_id', '') if header is not None else '')
        roi = getattr(msg, 'roi', None)
        if roi is not None:
            rw, rh = int(getattr(roi, 'width', 0)), int(getattr(roi, 'height', 0))
            ox, oy = int(getattr(roi, 'x_offset', 0)), int(getattr(roi, 'y_offset', 0))
            full = (rw, rh) in ((0, 0), (cam.width, cam.height)) and ox == 0 and oy == 0
            if not full:
                raise CalibrationError(
                    f'CameraInfo region of interest {rw}x{rh}+{ox}+{oy} is not supported')
        bx = int(getattr(msg, 'binning_x', 0) or 1)
        by = int(getattr(msg, 'binning_y', 0) or 1)
        if bx > 1 or by > 1:
            cam = cam.scaled(1.0 / bx, 1.0 / by)
        return cam

    @classmethod
    def from_camera_info_dict(cls, data: dict, frame_id: str = '') -> 'CameraModel':
        """Build from a parsed ROS camera_info YAML mapping (camera_calibration_parsers).

        Keys: ``image_width``, ``image_height``, ``camera_matrix``,
        ``distortion_model`` (default 'plumb_bob'), ``distortion_coefficients``,
        ``rectification_matrix`` (default identity), ``projection_matrix``;
        matrices are ``{rows, cols, data}``.

        Raises:
            CalibrationError: on missing keys, rows * cols != len(data), or
                any constructor check.
        """
        if not isinstance(data, dict):
            raise CalibrationError('camera_info YAML must be a mapping')

        def block(key, required=True):
            if key not in data:
                if required:
                    raise CalibrationError(f'camera_info YAML has no {key!r}')
                return None
            b = data[key]
            try:
                rows, cols, values = int(b['rows']), int(b['cols']), list(b['data'])
            except (KeyError, TypeError, ValueError):
                raise CalibrationError(f'{key!r} must be a mapping with rows, cols, data') \
                    from None
            if rows * cols != len(values):
                raise CalibrationError(
                    f'{key!r}: rows * cols = {rows * cols} but data has {len(values)} values')
            return values

        for key in ('image_width', 'image_height'):
            if key not in data:
                raise CalibrationError(f'camera_info YAML has no {key!r}')
        R = block('rectification_matrix', required=False)
        return cls(width=data['image_width'], height=data['image_height'],
                   K=block('camera_matrix'), D=block('distortion_coefficients'),
                   distortion_model=data.get('distortion_model', 'plumb_bob'),
                   R=np.eye(3) if R is None else R, P=block('projection_matrix'),
                   frame_id=frame_id)

    @classmethod
    def from_yaml(cls, path: str, frame_id: str = '') -> 'CameraModel':
        """Load a ROS camera_info YAML file (see :meth:`from_camera_info_dict`).

        Raises:
            OSError: if the file cannot be read.
            CalibrationError: on malformed content.
        """
        with open(path, 'r', encoding='utf-8') as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise CalibrationError(f'{path}: invalid YAML: {exc}') from None
        try:
            return cls.from_camera_info_dict(data, frame_id=frame_id)
        except CalibrationError as exc:
            raise CalibrationError(f'{path}: {exc}') from None

    def to_camera_info_dict(self) -> dict:
        """Return the ``sensor_msgs/CameraInfo`` fields as plain Python values.

        Keys: ``width``, ``height``, ``distortion_model``, ``d`` (list),
        ``k`` (9), ``r`` (9), ``p`` (12), ``frame_id``; ready to assign to a
        message (``msg.k = d['k']`` ...).
        """
        return {'width': self.width, 'height': self.height,
                'distortion_model': self.distortion_model,
                'd': [float(v) for v in self.D], 'k': [float(v) for v in self.K.ravel()],
                'r': [float(v) for v in self.R.ravel()],
                'p': [float(v) for v in self.P.ravel()], 'frame_id': self.frame_id}

    def to_yaml_dict(self, camera_name: str = 'camera') -> dict:
        """Return the ROS camera_info YAML mapping (inverse of :meth:`from_camera_info_dict`)."""
        def block(m):
            m = np.atleast_2d(m)
            return {'rows': int(m.shape[0]), 'cols': int(m.shape[1]),
                    'data': [float(v) for v in m.ravel()]}

        return {'image_width': self.width, 'image_height': self.height,
                'camera_name': camera_name, 'camera_matrix': block(self.K),
                'distortion_model': self.distortion_model or 'plumb_bob',
                'distortion_coefficients': block(self.D.reshape(1, -1)),
                'rectification_matrix': block(self.R), 'projection_matrix': block(self.P)}

    # ---------------------------------------------------------------- properties
    @property
    def has_distortion(self) -> bool:
        """Return whether any distortion coefficient is non-zero."""
        return bool(np.any(self.D != 0))

    @property
    def is_rectified(self) -> bool:
        """Return whether D is all zero (or empty) and R is the identity."""
        return (not self.has_distortion) and bool(np.allclose(self.R, np.eye(3), atol=1e-12))

    def scaled(self, sx: float, sy: float) -> 'CameraModel':
        """Return the model of the image resized by ``sx`` (x) and ``sy`` (y).

        Uses the pixel-centre convention of ``cv2.resize``: a pixel coordinate
        u maps to ``sx * (u + 0.5) - 0.5`` (same for v with sy).  K and P rows
        are transformed accordingly (including ``P[0, 3] = -fx' * B``); D and
        R are unchanged; width/height become ``round(width * sx)`` etc.

        Raises:
            ValueError: if sx or sy is not a positive finite number.
        """
        sx, sy = float(sx), float(sy)
        if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
            raise ValueError(f'scale factors must be positive and finite, got {sx}, {sy}')
        A = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return CameraModel(width=max(1, int(round(self.width * sx))),
                           height=max(1, int(round(self.height * sy))),
                           K=A @ self.K, D=self.D.copy(), distortion_model=self.distortion_model,
                           R=self.R.copy(), P=A @ self.P, frame_id=self.frame_id)


# ----------------------------------------------------------------- projections
def camera_center(P: np.ndarray) -> np.ndarray:
    """Return the (3,) centre C of a finite projective camera P (3, 4): P @ [C; 1] = 0.

    C = -M^-1 p4 with P = [M | p4] (Hartley & Zisserman, 2nd ed., 6.2.2), in
    the frame P projects from (metres).

    Raises:
        ValueError: if P is not (3, 4) or M is singular.
    """
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (3, 4):
        raise ValueError(f'P must be (3, 4), got {P.shape}')
    try:
        return -np.linalg.solve(P[:, :3], P[:, 3])
    except np.linalg.LinAlgError:
        raise ValueError('P[:, :3] is singular: not a finite camera') from None


def project(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Project points X (N, 3) with P (3, 4); return (N, 2) pixels (NaN/inf where w = 0)."""
    X = _as_points('X', X, 3)
    h = X @ np.asarray(P, dtype=np.float64)[:, :3].T + np.asarray(P, dtype=np.float64)[:, 3]
    with np.errstate(divide='ignore', invalid='ignore'):
        return h[:, :2] / h[:, 2:3]


def point_depth(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Return the (N,) depth of points X (N, 3) in front of camera P (3, 4), metres.

    depth = sign(det M) * w / ||m3|| with w = P[2] @ [X; 1] and M = P[:, :3]
    (Hartley & Zisserman, 2nd ed., 6.2.3); negative behind the camera.
    """
    P = np.asarray(P, dtype=np.float64)
    X = _as_points('X', X, 3)
    M = P[:, :3]
    w = X @ P[2, :3] + P[2, 3]
    return np.sign(np.linalg.det(M)) * w / np.linalg.norm(M[2])


def reprojection_error(P: np.ndarray, X: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Return the (N,) Euclidean distance in pixels between project(P, X) and uv (N, 2).

    P (3, 4) and uv must refer to the same image (for a stereo pair: rectified
    pixels).  NaN where X or uv is NaN.  Cheirality (points behind the camera)
    is not checked here; see :func:`point_depth`.
    """
    uv = _as_points('uv', uv)
    return np.linalg.norm(project(P, X) - uv, axis=1)


def unrectify_points(camera: CameraModel, X_rect: np.ndarray) -> np.ndarray:
    """Project 3D points of the left rectified frame into this camera's RAW image.

    The inverse path of :func:`rectify_points` + triangulation: the point is
    moved into this camera's rectified frame (``X + M^-1 p4`` with
    ``P = [M | p4]``, zero for the left camera), rotated into its optical
    frame by ``R^T`` and projected with ``K`` and the distortion ``D``
    (``cv2.projectPoints``, or ``cv2.fisheye.projectPoints`` for
    'equidistant'), i.e. the camera model of ROS ``image_geometry``
    (``PinholeCameraModel.unrectifyPoint`` composed with ``project3dToPixel``).

    Args:
        camera: the camera whose raw image is wanted.
        X_rect: (N, 3) points in the left rectified frame (the frame of
            ``P``), metres; NaN rows allowed.

    Returns:
        (N, 2) float64 raw pixel coordinates; NaN for NaN input or points at
        or behind the camera.

    Raises:
        ValueError: if X_rect is not (N, 3).
    """
    X = _as_points('X_rect', X_rect, 3)
    out = np.full((X.shape[0], 2), np.nan)
    t = np.linalg.solve(camera.P[:, :3], camera.P[:, 3])
    x_cam = (X + t) @ camera.R  # rows: R^T @ (X + t)
    ok = np.all(np.isfinite(x_cam), axis=1) & (x_cam[:, 2] > 1e-9)
    if not np.any(ok):
        return out
    pts = x_cam[ok].reshape(-1, 1, 3)
    zero = np.zeros(3)
    if camera.distortion_model == 'equidistant':
        uv, _ = cv2.fisheye.projectPoints(pts, zero, zero, camera.K, camera.D)
    else:
        uv, _ = cv2.projectPoints(pts, zero, zero, camera.K,
                                  camera.D if camera.has_distortion else None)
    out[ok] = uv.reshape(-1, 2)
    return out


def rectify_points(camera: CameraModel, uv: np.ndarray) -> np.ndarray:
    """Map raw (distorted) pixels to pixels of the rectified image defined by P.

    For each point: normalize with K, undistort with D (iteratively, as
    ``cv2.undistortPoints`` / ``cv2.fisheye.undistortPoints`` for
    'equidistant'), rotate by R, project with ``P[:, :3]``.  Without
    distortion this is the homography ``P[:, :3] @ R @ K^-1`` (identity for a
    rectified camera whose K equals ``P[:, :3]``).

    Args:
        camera: the camera the pixels come from.
        uv: (N, 2) raw pixel coordinates (u right, v down); NaN rows allowed.

    Returns:
        (N, 2) float64 rectified pixel coordinates; NaN where the input is NaN.

    Raises:
        ValueError: if uv is not (N, 2).
    """
    uv = _as_points('uv', uv)
    out = np.full(uv.shape, np.nan)
    ok = np.all(np.isfinite(uv), axis=1)
    if not np.any(ok):
        return out
    pts = uv[ok]
    if not camera.has_distortion:
        H = camera.P[:, :3] @ camera.R @ np.linalg.inv(camera.K)
        H = H / H[2, 2]
        if np.allclose(H, np.eye(3), rtol=0.0, atol=1e-12):
            out[ok] = pts
            return out
        h = pts @ H[:, :2].T + H[:, 2]
        out[ok] = h[:, :2] / h[:, 2:3]
        return out
    src = pts.reshape(-1, 1, 2)
    if camera.distortion_model == 'equidistant':
        try:
            dst = cv2.fisheye.undistortPoints(src, camera.K, camera.D, R=camera.R, P=camera.P,
                                              criteria=_UNDISTORT_CRITERIA)
        except TypeError:  # OpenCV < 4.7 has no criteria argument
            dst = cv2.fisheye.undistortPoints(src, camera.K, camera.D, R=camera.R, P=camera.P)
    else:
        undistort = getattr(cv2, 'undistortPointsIter', None)  # OpenCV 4.x spelling
        if undistort is not None:
            dst = undistort(src, camera.K, camera.D, camera.R, camera.P, _UNDISTORT_CRITERIA)
        else:
            dst = cv2.undistortPoints(src, camera.K, camera.D, R=camera.R, P=camera.P,
                                      criteria=_UNDISTORT_CRITERIA)
    out[ok] = dst.reshape(-1, 2)
    return out


def stereo_baseline(left: CameraModel, right: CameraModel) -> float:
    """Return the stereo baseline in metres: the distance between the cameras' centres.

    For ROS rectified pairs this is ``B = -P_right[0, 3] / P_right[0, 0]``
    (horizontal rig) or ``-P_right[1, 3] / P_right[1, 1]`` (vertical rig); the
    general formula uses the centres of ``P_left`` and ``P_right``
    (:func:`camera_center`), so any rig layout works.  0.0 means the two P
    describe the same viewpoint (not a stereo pair).
    """
    return float(np.linalg.norm(camera_center(right.P) - camera_center(left.P)))


def stereo_point_sigma(depth: np.ndarray, focal_px: float, baseline_m: float,
                       sigma_px: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return the standard deviations (m) of a triangulated point from its pixel noise.

    First-order propagation for a rectified rig (Hartley and Zisserman, 2nd
    ed., 12.6; e.g. Chang and Chatterjee 1992): with depth ``z = f B / d``
    and independent noise ``sigma_px`` on the left and right image positions,
    the disparity ``d`` has noise ``sqrt(2) sigma_px``, so the point moves
    along its viewing ray by ``sigma_z = z^2 sqrt(2) sigma_px / (f B)`` and
    across it by ``sigma_xy = z sigma_px / f`` per axis.

    Args:
        depth: (...,) float depths z in metres (rectified left frame).
        focal_px: f, rectified focal length in pixels (``P[0, 0]``).
        baseline_m: B, stereo baseline in metres (> 0).
        sigma_px: standard deviation of one view's keypoint position, pixels.

    Returns:
        ``(sigma_z, sigma_xy)``, each (...,) float64 metres (NaN where depth
        is): along the viewing ray, and per axis across it.

    Raises:
        ValueError: if ``focal_px`` or ``baseline_m`` is not positive.
    """
    if not focal_px > 0 or not baseline_m > 0:
        raise ValueError(f'need a positive focal length and baseline, got {focal_px} px '
                         f'and {baseline_m} m')
    z = np.asarray(depth, dtype=np.float64)
    return z * z * np.sqrt(2.0) * sigma_px / (focal_px * baseline_m), \
        np.abs(z) * sigma_px / focal_px


# --------------------------------------------------------------- triangulation
def triangulate_dlt(P_left: np.ndarray, P_right: np.ndarray, uv_left: np.ndarray,
                    uv_right: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of N point pairs, vectorized.

    Homogeneous method of Hartley & Zisserman, *Multiple View Geometry*, 2nd
    ed., section 12.2: for each pair, A X = 0 with rows
    ``u p3 - p1, v p3 - p2`` of both cameras (p_i = rows of P), X the right
    singular vector of A (4, 4) for the smallest singular value.  Same
    algorithm as ``cv2.triangulatePoints``.

    Args:
        P_left, P_right: (3, 4) projection matrices (pixels per metre), both
            projecting from the same 3D frame.
        uv_left, uv_right: (N, 2) pixel coordinates in the images of P_left
            and P_right.

    Returns:
        (N, 3) float64 points in the frame the P project from, metres.  NaN
        for pairs with NaN input; inf/huge for points at infinity (W = 0).

    Raises:
        ValueError: on wrong shapes.
    """
    P1 = np.asarray(P_left, dtype=np.float64)
    P2 = np.asarray(P_right, dtype=np.float64)
    if P1.shape != (3, 4) or P2.shape != (3, 4):
        raise ValueError('P_left and P_right must be (3, 4)')
    uv1 = _as_points('uv_left', uv_left)
    uv2 = _as_points('uv_right', uv_right)
    if uv1.shape != uv2.shape:
        raise ValueError(f'uv_left {uv1.shape} and uv_right {uv2.shape} differ in shape')
    X = np.full((uv1.shape[0], 3), np.nan)
    ok = np.all(np.isfinite(uv1), axis=1) & np.all(np.isfinite(uv2), axis=1)
    if not np.any(ok):
        return X
    a, b = uv1[ok], uv2[ok]
    A = np.stack([a[:, :1] * P1[2] - P1[0], a[:, 1:] * P1[2] - P1[1],
                  b[:, :1] * P2[2] - P2[0], b[:, 1:] * P2[2] - P2[1]], axis=1)  # (M, 4, 4)
    _, _, vt = np.linalg.svd(A)
    Xh = vt[:, -1, :]
    with np.errstate(divide='ignore', invalid='ignore'):
        X[ok] = Xh[:, :3] / Xh[:, 3:4]
    return X


def refine_triangulation(P_left: np.ndarray, P_right: np.ndarray, uv_left: np.ndarray,
                         uv_right: np.ndarray, X0: np.ndarray, iterations: int = 10,
                         tol_px: float = 1e-8) -> np.ndarray:
    """Refine triangulated points by minimizing the reprojection error in both views.

    Levenberg-Marquardt (Hartley & Zisserman, 2nd ed., A6.2) on the 4
    residuals ``project(P_v, X) - uv_v`` of each point independently,
    vectorized over points, starting from X0 (e.g. :func:`triangulate_dlt`).
    A step is kept only where it lowers that point's squared error.

    Args:
        P_left, P_right: (3, 4) projection matrices.
        uv_left, uv_right: (N, 2) observed pixels.
        X0: (N, 3) initial points, metres.
        iterations: maximum number of LM iterations.
        tol_px: stop once every step changes the reprojection of every point
            by less than this (pixels).

    Returns:
        (N, 3) refined points; rows with non-finite input or X0 are returned
        unchanged.
    """
    Ps = np.stack([np.asarray(P_left, dtype=np.float64), np.asarray(P_right, dtype=np.float64)])
    uv = np.stack([_as_points('uv_left', uv_left), _as_points('uv_right', uv_right)], axis=1)
    X = _as_points('X0', X0, 3).copy()
    ok = np.all(np.isfinite(X), axis=1) & np.all(np.isfinite(uv), axis=(1, 2))
    if not np.any(ok):
        return X
    x, obs = X[ok], uv[ok]  # (M, 3), (M, 2, 2)

    def residuals_and_jacobian(pts):
        h = np.einsum('vij,mj->mvi', Ps[:, :, :3], pts) + Ps[:, :, 3]  # (M, 2, 3)
        w = h[..., 2:3]
        with np.errstate(divide='ignore', invalid='ignore'):
            proj = h[..., :2] / w
            # d(h_i / w) / dX = (P[i, :3] - proj_i * P[2, :3]) / w
            jac = (Ps[None, :, :2, :3] - proj[..., None] * Ps[None, :, 2:3, :3]) / w[..., None]
        r = (proj - obs).reshape(-1, 4)
        return r, jac.reshape(-1, 4, 3)

    r, J = residuals_and_jacobian(x)
    cost = np.sum(r * r, axis=1)
    lam = np.full(x.shape[0], 1e-3)
    for _ in range(int(iterations)):
        JtJ = np.einsum('mki,mkj->mij', J, J)
        Jtr = np.einsum('mki,mk->mi', J, r)
        A = JtJ + lam[:, None, None] * np.eye(3) * np.diagonal(JtJ, axis1=1, axis2=2)[:, None, :]
        good = np.all(np.isfinite(A), axis=(1, 2)) & np.all(np.isfinite(Jtr), axis=1)
        step = np.zeros_like(x)
        if np.any(good):
            try:
                step[good] = -np.linalg.solve(A[good], Jtr[good][..., None])[..., 0]
            except np.linalg.LinAlgError:
                step[good] = -(np.linalg.pinv(A[good]) @ Jtr[good][..., None])[..., 0]
        cand = x + step
        r_new, J_new = residuals_and_jacobian(cand)
        cost_new = np.sum(r_new * r_new, axis=1)
        better = np.isfinite(cost_new) & (cost_new < cost)
        x[better], r[better], J[better], cost[better] = (
            cand[better], r_new[better], J_new[better], cost_new[better])
        lam = np.clip(np.where(better, lam * 0.1, lam * 10.0), 1e-12, 1e12)
        moved = np.max(np.abs(np.einsum('mki,mi->mk', J, step)), axis=1)
        if not np.any(moved >= tol_px):  # NaN counts as converged (nothing to do)
            break
    X[ok] = x
    return X


@dataclass(frozen=True, eq=False)
class StereoTriangulation:
    """Result of :func:`triangulate_stereo` for N keypoints.

    Attributes:
        xyz: (N, 3) float64 points in metres in the LEFT camera's optical
            frame (``left.frame_id``: +x right, +y down, +z forward); NaN where
            ``valid`` is False.
        reprojection_error_px: (N,) root-mean-square of the two views'
            reprojection errors in rectified pixels; NaN for non-finite input
            or degenerate points.
        valid: (N,) bool.
        reason: (N,) tuple of str, ``REASON_VALID`` ('') for valid points,
            else the first failed check: ``REASON_NON_FINITE_INPUT``,
            ``REASON_DEGENERATE`` (triangulation at infinity), ``REASON_BEHIND_CAMERA``
            (depth <= min_depth in either camera), ``REASON_REPROJECTION_ERROR``.
        uv_left_rect, uv_right_rect: (N, 2) the rectified pixels that were
            triangulated.
        xyz_rect: (N, 3) the points in the left RECTIFIED frame (the frame
            P_left projects from), NaN where ``valid`` is False.
    """

    xyz: np.ndarray
    reprojection_error_px: np.ndarray
    valid: np.ndarray
    reason: Tuple[str, ...]
    uv_left_rect: np.ndarray
    uv_right_rect: np.ndarray
    xyz_rect: np.ndarray


def triangulate_stereo(left: CameraModel, right: CameraModel, uv_left: np.ndarray,
                       uv_right: np.ndarray, refine: bool = True,
                       max_reprojection_error_px: float = 5.0, min_depth: float = 0.0,
                       points_are_rectified: bool = False) -> StereoTriangulation:
    """Triangulate corresponding keypoints of a stereo pair into the left optical frame.

    Steps: (1) raw pixels -> rectified pixels with :func:`rectify_points`
    (skipped when ``points_are_rectified``, i.e. keypoints detected in
    ``image_rect``); (2) DLT (:func:`triangulate_dlt`) with ``left.P`` and
    ``right.P``, which gives X_rect in the left RECTIFIED frame; (3) optional
    LM refinement (:func:`refine_triangulation`); (4) checks; (5) change of
    frame to the left camera's optical frame::

        xyz = R_left^T @ (X_rect - C_left)

    where ``R_left = left.R`` (optical -> rectified) and ``C_left`` is the
    centre of ``left.P`` (zero for ROS, where ``P_left[:, 3] = 0``).  The
    result is expressed in ``left.frame_id``, the frame of the left
    CameraInfo header.  (``stereo_image_proc`` point clouds skip this
    rotation, so they are in the rectified frame; the two differ by R_left,
    typically a fraction of a degree to a few degrees.)

    Args:
        left, right: the two cameras; ``right.P`` must project from the left
            rectified frame (ROS stereo convention).
        uv_left, uv_right: (N, 2) pixels of the same N keypoints in each view
            (raw pixels unless ``points_are_rectified``); NaN rows = missing.
        refine: run the LM refinement after the DLT.
        max_reprojection_error_px: reject points whose RMS reprojection error
            over the two views exceeds this (rectified pixels).
        min_depth: reject points whose depth in either camera is <= this
            (metres); 0 rejects points at or behind a camera.
        points_are_rectified: the pixels are already in the rectified images.

    Returns:
        :class:`StereoTriangulation`.

    Raises:
        ValueError: on wrong shapes.
        CalibrationError: if the baseline is zero (same P for both views).
    """
    uv_l = _as_points('uv_left', uv_left)
    uv_r = _as_points('uv_right', uv_right)
    if uv_l.shape != uv_r.shape:
        raise ValueError(f'uv_left {uv_l.shape} and uv_right {uv_r.shape} differ in shape')
    if stereo_baseline(left, right) <= 1e-12:
        raise CalibrationError('left and right P have the same centre: zero stereo baseline')
    n = uv_l.shape[0]
    finite_in = np.all(np.isfinite(uv_l), axis=1) & np.all(np.isfinite(uv_r), axis=1)
    if points_are_rectified:
        rect_l, rect_r = uv_l.copy(), uv_r.copy()
    else:
        rect_l, rect_r = rectify_points(left, uv_l), rectify_points(right, uv_r)
    finite_in &= np.all(np.isfinite(rect_l), axis=1) & np.all(np.isfinite(rect_r), axis=1)
    rect_l[~finite_in] = np.nan
    rect_r[~finite_in] = np.nan

    X = triangulate_dlt(left.P, right.P, rect_l, rect_r)
    if refine:
        X = refine_triangulation(left.P, right.P, rect_l, rect_r, X)
    finite_x = finite_in & np.all(np.isfinite(X), axis=1)
    with np.errstate(invalid='ignore', over='ignore'):
        depth = np.minimum(point_depth(left.P, X), point_depth(right.P, X))
        err = np.sqrt(0.5 * (reprojection_error(left.P, X, rect_l) ** 2
                             + reprojection_error(right.P, X, rect_r) ** 2))
    err[~finite_x] = np.nan

    reason = np.full(n, REASON_VALID, dtype=object)
    with np.errstate(invalid='ignore'):
        reason[finite_in & ~finite_x] = REASON_DEGENERATE
        reason[finite_x & ~(depth > min_depth)] = REASON_BEHIND_CAMERA
        reason[finite_x & (depth > min_depth) & ~(err <= max_reprojection_error_px)] = \
            REASON_REPROJECTION_ERROR
    reason[~finite_in] = REASON_NON_FINITE_INPUT
    valid = reason == REASON_VALID

    X_rect = np.where(valid[:, None], X, np.nan)
    xyz = (X_rect - camera_center(left.P)) @ left.R  # rows: R^T @ (X - C)
    return StereoTriangulation(xyz=xyz, reprojection_error_px=err, valid=valid.astype(bool),
                               reason=tuple(str(r) for r in reason), uv_left_rect=rect_l,
                               uv_right_rect=rect_r, xyz_rect=X_rect)


def match_stereo_symmetry(left: CameraModel, right: CameraModel, uv_left: np.ndarray,
                          uv_right: np.ndarray, symmetries: Sequence[Sequence[int]],
                          points_are_rectified: bool = False) -> Tuple[int, ...]:
    """Pick the labelling of the RIGHT view's keypoints that agrees with the LEFT view.

    A symmetric object's keypoints may be labelled differently in each view
    (e.g. a chessboard rotated by 180 degrees).  For each candidate
    permutation p (identity first, then ``symmetries``), keypoint j of the
    left view is paired with keypoint ``p[j]`` of the right view and scored
    by the epipolar constraint of the rectified pair:

    1. fewest pairs with non-positive disparity (the point would be at
       infinity or behind the rig), then
    2. smallest mean squared difference across the epipolar lines (rows for a
       horizontal rig, columns for a vertical one).

    Disparity is measured along the baseline direction, so it is positive for
    every point in front of the rig.  Ties keep the earlier candidate
    (identity first).

    Args:
        left, right: the cameras.
        uv_left, uv_right: (J, 2) keypoints of each view (raw pixels unless
            ``points_are_rectified``); NaN rows = missing.
        symmetries: permutations of range(J) that leave the object unchanged
            (identity implied).

    Returns:
        The permutation p as a tuple; ``uv_right[list(p)]`` is aligned with
        ``uv_left``.  Identity when no pair of keypoints is visible in both
        views.

    Raises:
        ValueError: on wrong shapes or a symmetry that is not a permutation.
    """
    uv_l = _as_points('uv_left', uv_left)
    uv_r = _as_points('uv_right', uv_right)
    if uv_l.shape != uv_r.shape:
        raise ValueError(f'uv_left {uv_l.shape} and uv_right {uv_r.shape} differ in shape')
    perms = normalize_symmetries(symmetries, uv_l.shape[0])
    if not points_are_rectified:
        uv_l, uv_r = rectify_points(left, uv_l), rectify_points(right, uv_r)
    # Direction of the baseline in the rectified frame: disparity axis and its sign.
    b = camera_center(right.P) - camera_center(left.P)
    axis = 0 if abs(b[0]) >= abs(b[1]) else 1
    sign = 1.0 if b[axis] > 0 else -1.0
    best, best_key = perms[0], None
    for perm in perms:
        r = uv_r[list(perm)]
        ok = np.all(np.isfinite(uv_l), axis=1) & np.all(np.isfinite(r), axis=1)
        if not np.any(ok):
            continue
        disparity = sign * (uv_l[ok, axis] - r[ok, axis])
        across = uv_l[ok, 1 - axis] - r[ok, 1 - axis]
        key = (int(np.sum(disparity <= 0)), float(np.mean(across ** 2)))
        if best_key is None or key < best_key:
            best, best_key = perm, key
    return best


# ----------------------------------------------------------------- rigid fits
def fit_rigid_transform(src: np.ndarray, dst: np.ndarray, weights: Optional[np.ndarray] = None,
                        with_scale: bool = False) -> Tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity/rigid transform with ``dst ~ s * R @ src + t``.

    Umeyama, "Least-squares estimation of transformation parameters between
    two point patterns", IEEE TPAMI 13(4), 1991 (eqs. 38-43), with optional
    non-negative weights: minimizes ``sum_i w_i ||dst_i - (s R src_i + t)||^2``.
    R is always a proper rotation (det +1): if the best orthogonal matrix is
    a reflection, the sign of the smallest singular direction is flipped
    (Umeyama's S matrix).

    Args:
        src: (N, 3) source points (e.g. template, object frame), N >= 3.
        dst: (N, 3) destination points (e.g. observed, camera frame).
        weights: (N,) non-negative weights, or None for equal weights.
        with_scale: also estimate the scale s (else s = 1).

    Returns:
        R (3, 3), t (3,), s (float).

    Raises:
        ValueError: on shape mismatch, N < 3, non-finite values, negative or
            all-zero weights, or (with_scale) coincident source points.
    """
    src = _as_points('src', src, 3)
    dst = _as_points('dst', dst, 3)
    if src.shape != dst.shape:
        raise ValueError(f'src {src.shape} and dst {dst.shape} differ in shape')
    if src.shape[0] < 3:
        raise ValueError(f'need at least 3 point pairs, got {src.shape[0]}')
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError('src and dst must be finite')
    if weights is None:
        w = np.full(src.shape[0], 1.0 / src.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (src.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError('weights must be (N,) finite and non-negative')
        if w.sum() <= 0:
            raise ValueError('weights must not all be zero')
        w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    sc, dc = src - mu_s, dst - mu_d
    sigma_s = float(w @ np.sum(sc * sc, axis=1))
    cov = (dc * w[:, None]).T @ sc  # Sigma_xy of Umeyama (x = src, y = dst)
    U, d, Vt = np.linalg.svd(cov)
    S = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2] = -1.0
    R = (U * S) @ Vt
    if with_scale:
        if sigma_s <= 0:
            raise ValueError('source points coincide: scale undefined')
        s = float(np.sum(d * S) / sigma_s)
    else:
        s = 1.0
    t = mu_d - s * R @ mu_s
    return R, t, s


@dataclass(frozen=True, eq=False)
class TemplateFit:
    """Pose of an object template fitted to observed 3D keypoints.

    Attributes:
        R: (3, 3) rotation, object frame -> observation frame.
        t: (3,) translation (object origin in the observation frame), metres.
        scale: estimated scale (1.0 unless fitted ``with_scale``).
        rmse: root-mean-square distance in metres between the transformed
            template keypoints and the observed keypoints used.
        permutation: p with ``observed[j] ~ s R template[p[j]] + t``.
        num_points: number of keypoints used.
    """

    R: np.ndarray
    t: np.ndarray
    scale: float
    rmse: float
    permutation: Tuple[int, ...]
    num_points: int

    @property
    def quaternion(self) -> np.ndarray:
        """Orientation as (x, y, z, w), ROS order."""
        return quaternion_from_matrix(self.R)


def fit_template_pose(template: np.ndarray, observed: np.ndarray,
                      valid: Optional[np.ndarray] = None,
                      symmetries: Sequence[Sequence[int]] = (),
                      with_scale: bool = False,
                      collinear_tol: float = 1e-3) -> Optional[TemplateFit]:
    """Fit the object's keypoint template to observed 3D keypoints, trying its symmetries.

    For each permutation p (identity first, then ``symmetries``), fits
    ``observed[j] ~ R template[p[j]] + t`` over the valid keypoints with
    :func:`fit_rigid_transform` and keeps the lowest RMSE (ties keep the
    earlier permutation).

    Args:
        template: (J, 3) keypoints in the object frame, metres.
        observed: (J, 3) keypoints in the camera frame, metres (NaN allowed).
        valid: (J,) bool, or None for "all finite rows".
        symmetries: permutations of range(J) (identity implied).
        with_scale: also fit a scale factor.
        collinear_tol: the points count as collinear when the second singular
            value of the centred points is below ``collinear_tol`` times the
            first.

    Returns:
        :class:`TemplateFit`, or None when fewer than 3 valid keypoints
        remain or they are (nearly) collinear.

    Raises:
        ValueError: on shape mismatch or a symmetry that is not a permutation.
    """
    template = _as_points('template', template, 3)
    observed = _as_points('observed', observed, 3)
    if template.shape != observed.shape:
        raise ValueError(f'template {template.shape} and observed {observed.shape} differ')
    num = template.shape[0]
    mask = np.all(np.isfinite(observed), axis=1)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool).ravel()
        if valid.shape != (num,):
            raise ValueError(f'valid must be ({num},), got {valid.shape}')
        mask &= valid
    if mask.sum() < 3:
        return None
    obs = observed[mask]
    sv = np.linalg.svd(obs - obs.mean(axis=0), compute_uv=False)
    if sv[0] <= 0 or sv[1] < collinear_tol * sv[0]:
        return None
    best = None
    for perm in normalize_symmetries(symmetries, num):
        src = template[list(perm)][mask]
        if not np.all(np.isfinite(src)):
            continue
        sv = np.linalg.svd(src - src.mean(axis=0), compute_uv=False)
        if sv[0] <= 0 or sv[1] < collinear_tol * sv[0]:
            continue
        R, t, s = fit_rigid_transform(src, obs, with_scale=with_scale)
        res = obs - (s * src @ R.T + t)
        rmse = float(np.sqrt(np.mean(np.sum(res * res, axis=1))))
        if best is None or rmse < best.rmse:
            best = TemplateFit(R=R, t=t, scale=s, rmse=rmse, permutation=perm,
                               num_points=int(mask.sum()))
    return best


def refine_pose_reprojection(template: np.ndarray, R: np.ndarray, t: np.ndarray,
                             left: CameraModel, right: CameraModel, uv_left_rect: np.ndarray,
                             uv_right_rect: np.ndarray, iterations: int = 15
                             ) -> Tuple[np.ndarray, np.ndarray, float]:
    """Refine an object pose by minimizing its reprojection error in both views.

    A pose fitted to triangulated points (:func:`fit_template_pose`) inherits
    the stereo depth error, which grows with the square of the distance; the
    image positions are measured directly.  This minimizes
    ``sum_j ||P_left x_j - uv_left_j||^2 + ||P_right x_j - uv_right_j||^2``
    with ``x_j = R_rect (R template_j + t) + C_left`` (left rectified frame)
    over the 6 pose parameters by Levenberg-Marquardt with a numeric
    Jacobian (Hartley & Zisserman, 2nd ed., A6.2; rotation updated by a
    left-multiplied Rodrigues vector).

    Args:
        template: (N, 3) object-frame points (already permuted to match the
            observations), metres.
        R: (3, 3) initial rotation, object -> left optical frame.
        t: (3,) initial translation, metres.
        left, right: the stereo cameras (``P`` and the left ``R``).
        uv_left_rect, uv_right_rect: (N, 2) observed rectified pixels; rows
            with NaN in either view are ignored.
        iterations: most LM iterations.

    Returns:
        (R (3, 3), t (3,), RMS reprojection error in pixels); the initial
        pose when fewer than 3 points are observed in both views.

    Raises:
        ValueError: on shape mismatch.
    """
    template = _as_points('template', template, 3)
    uv_l = _as_points('uv_left_rect', uv_left_rect)
    uv_r = _as_points('uv_right_rect', uv_right_rect)
    if not (len(template) == len(uv_l) == len(uv_r)):
        raise ValueError(f'{len(template)} template points, {len(uv_l)} and {len(uv_r)} '
                         'observations')
    ok = np.all(np.isfinite(uv_l), axis=1) & np.all(np.isfinite(uv_r), axis=1)
    R, t = np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64).ravel()
    if ok.sum() < 3:
        return R, t, float('nan')
    X0, obs = template[ok], np.concatenate([uv_l[ok], uv_r[ok]]).ravel()
    C = camera_center(left.P)

    def residual(params):
        Rp = cv2.Rodrigues(params[:3])[0] @ R
        x = (X0 @ Rp.T + t + params[3:]) @ left.R.T + C
        return np.concatenate([project(left.P, x), project(right.P, x)]).ravel() - obs

    params, lam = np.zeros(6), 1e-3
    err = residual(params)
    for _ in range(iterations):
        J = np.empty((err.size, 6))
        for k in range(6):
            d = np.zeros(6)
            d[k] = 1e-6
            J[:, k] = (residual(params + d) - residual(params - d)) / 2e-6
        A, g = J.T @ J, J.T @ err
        step = -np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), g)
        new_err = residual(params + step)
        if new_err @ new_err < err @ err:
            params, err, lam = params + step, new_err, lam * 0.3
            if np.linalg.norm(step) < 1e-10:
                break
        else:
            lam *= 10.0
    R_out = cv2.Rodrigues(params[:3])[0] @ R
    rms = float(np.sqrt(np.mean(err.reshape(-1, 2) ** 2) * 2))
    return R_out, t + params[3:], rms


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Convert a rotation matrix (3, 3) to a unit quaternion (x, y, z, w), ROS order.

    Shepperd's method (numerically stable branch on the largest diagonal
    term); the result has w >= 0.

    Raises:
        ValueError: if R is not a finite (3, 3) array.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError('R must be a finite (3, 3) matrix')
    tr = np.trace(R)
    diag = np.diag(R)
    k = int(np.argmax(diag))
    if tr >= diag[k]:
        w = 0.5 * math.sqrt(max(1.0 + tr, 0.0))
        f = 0.25 / w
        q = [(R[2, 1] - R[1, 2]) * f, (R[0, 2] - R[2, 0]) * f, (R[1, 0] - R[0, 1]) * f, w]
    else:
        i, j, m = k, (k + 1) % 3, (k + 2) % 3
        v = 0.5 * math.sqrt(max(1.0 + R[i, i] - R[j, j] - R[m, m], 0.0))
        f = 0.25 / v
        q = [0.0, 0.0, 0.0, (R[m, j] - R[j, m]) * f]
        q[i] = v
        q[j] = (R[j, i] + R[i, j]) * f
        q[m] = (R[m, i] + R[i, m]) * f
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


__all__: List[str] = [
    'CalibrationError', 'CameraModel', 'DISTORTION_LENGTHS', 'StereoTriangulation',
    'TemplateFit', 'camera_center', 'fit_rigid_transform', 'fit_template_pose',
    'match_stereo_symmetry', 'normalize_symmetries', 'point_depth', 'project',
    'quaternion_from_matrix', 'rectify_points', 'refine_triangulation',
    'reprojection_error', 'stereo_baseline', 'triangulate_dlt', 'triangulate_stereo',
    'REASON_VALID', 'REASON_NON_FINITE_INPUT', 'REASON_DEGENERATE', 'REASON_BEHIND_CAMERA',
    'REASON_REPROJECTION_ERROR',
]
