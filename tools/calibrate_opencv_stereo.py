#!/usr/bin/env python3
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
"""Calibrate the real stereo rig of OpenCV's stereo sample and write ground truth.

Input: ``data/opencv_stereo/`` as written by ``tools/fetch_data.sh`` (13 pairs
of 640x480 grayscale images of a chessboard with 9 x 6 inner corners, listed in
``stereo_calib.xml``).

Steps:

1. ``cv2.findChessboardCorners`` + ``cv2.cornerSubPix`` in all images (the same
   settings as OpenCV's ``samples/cpp/stereo_calib.cpp``).
2. ``cv2.calibrateCamera`` per camera (plumb_bob, 5 coefficients).
3. ``cv2.stereoCalibrate`` starting from those intrinsics.  Both variants are
   run, intrinsics fixed (``CALIB_FIX_INTRINSIC``) and jointly refined
   (``CALIB_USE_INTRINSIC_GUESS``); the one with the lower stereo RMS is kept
   (the joint refinement, by construction of the least-squares problem).
4. ``cv2.stereoRectify`` with ``CALIB_ZERO_DISPARITY`` (same principal point in
   both rectified images, as ROS ``camera_calibration`` does) and
   ``alpha = 0``: the rectified images contain valid pixels only (no black
   border), which matches the border-free synthetic training renders and is
   ROS ``camera_calibration``'s default.  Triangulation from raw pixels uses
   K, D, R and P and does not depend on alpha.

The square size of the printed board is not published; this tool ASSUMES
0.025 m (``--square-size``), so the baseline and all 3D lengths scale with
that assumption.  Reprojection errors and 2D ground truth do not depend on it.

Outputs:

* ``config/camera_info/opencv_stereo_{left,right}.yaml``: ROS camera_info YAML
  (``camera_calibration_parsers`` format); the right projection matrix has
  ``P[0,3] = -fx' * baseline`` (metres) per the ROS convention.
* ``data/opencv_stereo/ground_truth.json``: the 54 refined corners of every
  image (pixels, float, OpenCV's order).

``--ground-truth-only`` writes just the JSON (used by the tests, which must not
rewrite tracked files).
"""

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERN_SIZE = (9, 6)  # inner corners per row (columns), per column (rows)
DEFAULT_SQUARE_SIZE = 0.025  # metres, ASSUMED (not published for this board)
FIND_FLAGS = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
SUBPIX_WINDOW = (11, 11)
SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
CALIB_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
RECTIFY_ALPHA = 0.0


def log(msg):
    """Print one progress line."""
    print(f'calibrate_opencv_stereo: {msg}', flush=True)


def read_image_list(xml_path):
    """Return the (left, right) file name pairs listed in stereo_calib.xml."""
    root = ET.parse(xml_path).getroot()
    node = root.find('imagelist')
    if node is None or not node.text:
        raise ValueError(f'{xml_path}: no <imagelist>')
    names = [tok.strip().strip('"') for tok in node.text.split()]
    names = [n for n in names if n]
    if len(names) % 2:
        raise ValueError(f'{xml_path}: odd number of images ({len(names)})')
    return list(zip(names[0::2], names[1::2]))


def detect_corners(path):
    """Return the (54, 2) float64 refined inner corners and the image size (w, h)."""
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path}')
    found, corners = cv2.findChessboardCorners(img, PATTERN_SIZE, flags=FIND_FLAGS)
    if not found:
        return None, (img.shape[1], img.shape[0])
    corners = cv2.cornerSubPix(img, corners.astype(np.float32), SUBPIX_WINDOW, (-1, -1),
                               SUBPIX_CRITERIA)
    return corners.reshape(-1, 2).astype(np.float64), (img.shape[1], img.shape[0])


def object_points(square_size):
    """Return the (54, 3) float32 board corners in OpenCV's row-major order, metres."""
    cols, rows = PATTERN_SIZE
    grid = np.zeros((rows * cols, 3), np.float32)
    grid[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_size
    return grid


def mat_block(m):
    """Return a camera_info YAML matrix mapping for a 2D numpy array."""
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    return {'rows': int(m.shape[0]), 'cols': int(m.shape[1]),
            'data': [float(v) for v in m.ravel()]}


def write_camera_info_yaml(path, name, size, K, D, R, P, header):
    """Write one ROS camera_info YAML file (camera_calibration_parsers layout)."""
    def fmt(block):
        data = ', '.join(f'{v:.9g}' for v in block['data'])
        return f"  rows: {block['rows']}\n  cols: {block['cols']}\n  data: [{data}]\n"

    text = ''.join(f'# {line}\n' if line else '#\n' for line in header)
    text += (f'image_width: {size[0]}\nimage_height: {size[1]}\ncamera_name: {name}\n'
             f'camera_matrix:\n{fmt(mat_block(K))}'
             f'distortion_model: plumb_bob\n'
             f'distortion_coefficients:\n{fmt(mat_block(np.ravel(D)[None, :]))}'
             f'rectification_matrix:\n{fmt(mat_block(R))}'
             f'projection_matrix:\n{fmt(mat_block(P))}')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main(argv=None):
    """Run the calibration; return a process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default=os.path.join(REPO_ROOT, 'data', 'opencv_stereo'))
    parser.add_argument('--config-dir',
                        default=os.path.join(REPO_ROOT, 'config', 'camera_info'))
    parser.add_argument('--square-size', type=float, default=DEFAULT_SQUARE_SIZE,
                        help='ASSUMED chessboard square size in metres (default 0.025)')
    parser.add_argument('--ground-truth-only', action='store_true',
                        help='only detect corners and write ground_truth.json')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # deterministic output: parallel reductions vary in the last digits

    xml_path = os.path.join(args.data_dir, 'stereo_calib.xml')
    if not os.path.isfile(xml_path):
        log(f'ERROR: {xml_path} not found; run tools/fetch_data.sh first')
        return 1
    pairs = read_image_list(xml_path)
    log(f'{len(pairs)} pairs listed in {xml_path}')

    corners, image_size = {}, None
    for pair in pairs:
        for name in pair:
            c, size = detect_corners(os.path.join(args.data_dir, name))
            if image_size is None:
                image_size = size
            elif size != image_size:
                log(f'ERROR: {name} is {size[0]}x{size[1]}, expected '
                    f'{image_size[0]}x{image_size[1]}')
                return 1
            corners[name] = c
    missing = [n for n, c in corners.items() if c is None]
    log(f'chessboard {PATTERN_SIZE[0]}x{PATTERN_SIZE[1]} found in '
        f'{len(corners) - len(missing)}/{len(corners)} images '
        f'({image_size[0]}x{image_size[1]})' + (f'; missing: {missing}' if missing else ''))
    good_pairs = [p for p in pairs if corners[p[0]] is not None and corners[p[1]] is not None]

    gt = {
        'description': 'Inner chessboard corners detected by cv2.findChessboardCorners '
                       '+ cv2.cornerSubPix in OpenCV\'s stereo calibration sample '
                       '(Debian opencv-doc examples/data). Corners are in OpenCV\'s '
                       'row-major order (9 per row, 6 rows), pixel coordinates with the '
                       'origin at the centre of the top-left pixel.',
        'pattern_size': list(PATTERN_SIZE),
        'square_size_m_assumed': args.square_size,
        'image_size': list(image_size),
        'pairs': [list(p) for p in pairs],
        'images': {
            name: {'camera': 'left' if i == 0 else 'right',
                   'found': corners[name] is not None,
                   'corners': ([] if corners[name] is None else
                               [[round(float(u), 4), round(float(v), 4)]
                                for u, v in corners[name]])}
            for pair in pairs for i, name in enumerate(pair)},
    }
    gt_path = os.path.join(args.data_dir, 'ground_truth.json')
    with open(gt_path, 'w', encoding='utf-8') as f:
        json.dump(gt, f, indent=1)
    log(f'wrote {gt_path}')
    if args.ground_truth_only:
        return 0
    if len(good_pairs) < 3:
        log('ERROR: fewer than 3 pairs with the board found in both images')
        return 1

    log(f'ASSUMED square size: {args.square_size} m (3D lengths and the baseline scale '
        'with it)')
    obj = [object_points(args.square_size) for _ in good_pairs]
    img_l = [corners[left].astype(np.float32).reshape(-1, 1, 2) for left, _ in good_pairs]
    img_r = [corners[right].astype(np.float32).reshape(-1, 1, 2) for _, right in good_pairs]

    rms_l, K1, D1, _, _ = cv2.calibrateCamera(obj, img_l, image_size, None, None,
                                              criteria=CALIB_CRITERIA)
    rms_r, K2, D2, _, _ = cv2.calibrateCamera(obj, img_r, image_size, None, None,
                                              criteria=CALIB_CRITERIA)
    log(f'mono RMS: left {rms_l:.4f} px, right {rms_r:.4f} px')

    results = {}
    for label, flags in (('fixed intrinsics', cv2.CALIB_FIX_INTRINSIC),
                         ('refined intrinsics', cv2.CALIB_USE_INTRINSIC_GUESS)):
        out = cv2.stereoCalibrate(obj, img_l, img_r, K1.copy(), D1.copy(), K2.copy(),
                                  D2.copy(), image_size, flags=flags, criteria=CALIB_CRITERIA)
        results[label] = out
        log(f'stereo RMS with {label}: {out[0]:.4f} px, baseline '
            f'{np.linalg.norm(out[6]):.5f} m')
    chosen = min(results, key=lambda k: results[k][0])
    rms, K1, D1, K2, D2, R, T = results[chosen][:7]
    log(f'using stereo calibration with {chosen} (RMS {rms:.4f} px)')

    R1, R2, P1, P2, _, roi1, roi2 = cv2.stereoRectify(
        K1, D1, K2, D2, image_size, R, T, flags=cv2.CALIB_ZERO_DISPARITY, alpha=RECTIFY_ALPHA)
    fx = float(P1[0, 0])
    baseline = -float(P2[0, 3]) / float(P2[0, 0])
    if abs(P2[1, 3]) > abs(P2[0, 3]):
        log('WARNING: vertical rig (P2[1,3] dominates); ROS expects a horizontal pair')

    # Sanity check of the rectification: rectified rows of corresponding corners agree.
    dy = []
    for (left, right) in good_pairs:
        ul = cv2.undistortPoints(corners[left].reshape(-1, 1, 2), K1, D1, R=R1, P=P1)
        ur = cv2.undistortPoints(corners[right].reshape(-1, 1, 2), K2, D2, R=R2, P=P2)
        dy.append((ul - ur).reshape(-1, 2)[:, 1])
    dy = np.concatenate(dy)
    log(f'rectified row difference of corresponding corners: RMS {np.sqrt(np.mean(dy**2)):.3f}'
        f' px, max {np.abs(dy).max():.3f} px')
    log(f'rectified fx = {fx:.3f} px, baseline = {baseline:.5f} m '
        f'(|T| = {np.linalg.norm(T):.5f} m), valid ROI left {tuple(roi1)}, right {tuple(roi2)}')

    header = [
        'Calibration of the real stereo rig of OpenCV\'s stereo sample',
        '(Debian opencv-doc examples/data, left/right01..14.jpg, stereo_calib.xml),',
        'computed by tools/calibrate_opencv_stereo.py with OpenCV ' + cv2.__version__ + '.',
        '',
        f'ASSUMED chessboard square size: {args.square_size} m (not published);',
        'the baseline and all 3D lengths scale with this assumption.',
        f'Mono reprojection RMS: left {rms_l:.4f} px, right {rms_r:.4f} px;',
        f'stereo RMS: {rms:.4f} px ({chosen}).',
        f'Rectification: cv2.stereoRectify, CALIB_ZERO_DISPARITY, alpha={RECTIFY_ALPHA:g}.',
        f'Rectified fx = {fx:.3f} px, baseline = {baseline:.5f} m;',
        'right P[0,3] = -fx * baseline (ROS convention).',
    ]
    left_path = os.path.join(args.config_dir, 'opencv_stereo_left.yaml')
    right_path = os.path.join(args.config_dir, 'opencv_stereo_right.yaml')
    write_camera_info_yaml(left_path, 'left', image_size, K1, D1, R1, P1, header)
    write_camera_info_yaml(right_path, 'right', image_size, K2, D2, R2, P2, header)
    log(f'wrote {left_path} and {right_path}')
    print(f'RMS mono left {rms_l:.4f} px, mono right {rms_r:.4f} px, stereo {rms:.4f} px; '
          f'fx {fx:.3f} px; baseline {baseline:.5f} m (square size {args.square_size} m '
          'assumed)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
