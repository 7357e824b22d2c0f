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
"""Mono 2D keypoint detection on image files (``keypoints-detect``).

::

    keypoints-detect --model NAME_OR_PATH --images 'GLOB' --output OUT.jsonl [--annotate DIR]

One JSON line per image, in sorted file-name order::

    {"image": "<file name>", "width": W, "height": H,
     "objects": [{"class": ..., "instance": ..., "keypoints":
                  [{"name": ..., "uv": [u, v] or null, "confidence": c}, ...]}]}

``uv`` is in pixels of the input image (OpenCV convention: x right, y down,
pixel centres at integers; not undistorted), keypoints in the class's order;
null where the keypoint was not found (belief below ``--threshold``).  Any
image size and aspect ratio is accepted (the network's input is a resized
copy; positions are mapped back).  An image that cannot be read gets a line
with ``"error"`` (and null size, no objects) and the exit status is
:data:`~.cli.EXIT_PARTIAL` (3); the output file is written whole, at the
end (write, then rename).  No ROS.
"""

import argparse
from collections import Counter
import glob
import json
import os
import sys
from typing import Dict, List, Optional

import cv2
import numpy as np

from .cli import (ArgumentParser, checked_input, command_line, EXIT_PARTIAL, InputError,
                  non_negative_int, positive_float, unit_interval)
from .core.config import PipelineConfig, ROI_REFINEMENTS
from .core.detector import KeypointDetector
from .core.files import atomic_open
from .core.objects import ObjectClass
from .core.views import ViewKeypoints
from .core.visualization import draw_view


def image_files(pattern: str, option: str = '--images') -> List[str]:
    """Return the files matching a glob, each once, sorted by file name (then by path).

    ``**`` matches any number of folders.  Output records name images by
    file name, so two matches with one file name are refused.

    Raises:
        InputError: nothing matches, or two matches share a file name
            (message names ``option`` and the files).
    """
    # one entry per file: 'a/**/**/*.png' lists a file once per way it matches (the
    # name given is kept: a link's name, not its target's, names the image)
    found = {}
    for p in glob.glob(os.path.expanduser(pattern), recursive=True):
        if os.path.isfile(p):
            found.setdefault(os.path.realpath(p), p)
    paths = list(found.values())
    if not paths:
        raise InputError(f'{option} {pattern!r}: no file matches')
    paths.sort(key=lambda p: (os.path.basename(p), p))
    names = Counter(os.path.basename(p) for p in paths)
    shared = [p for p in paths if names[os.path.basename(p)] > 1]
    if shared:
        raise InputError(f'{option} {pattern!r}: {len(shared)} files share a file name, which '
                         f'names them in the output: {shared[:6]}')
    return paths


def read_image(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, as the sensor stored it.

    Grey files are converted and an alpha channel dropped; 16-bit files
    are shifted down to 8 bits from the depth their colour samples use,
    rounded up to 10, 12, 14 or 16 bits (a 12-bit sensor's image keeps its
    brightness; a depth is not stored in the file); an EXIF orientation tag
    is ignored, since camera intrinsics refer to the sensor's pixel grid.

    Raises:
        ValueError: the file is not an image OpenCV can read, or has another
            sample type than 8 or 16 bits unsigned.
    """
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError('not an image OpenCV can read')
    if image.dtype == np.uint16:
        colour = image if image.ndim == 2 else image[..., :3]
        used = int(colour.max()).bit_length()
        bits = next(b for b in (10, 12, 14, 16) if used <= b)
        image = (image >> (bits - 8)).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f'{image.dtype} samples; expected 8- or 16-bit unsigned')
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def annotation_paths(paths: List[str], folder: str) -> Dict[str, str]:
    """Return {image path: annotated copy's path}, ``<folder>/<file stem>.png``.

    Raises:
        InputError: two images would share an annotated copy (same stem), or
            a copy would overwrite an input image.
    """
    out = {p: os.path.join(folder, os.path.splitext(os.path.basename(p))[0] + '.png')
           for p in paths}
    copies = Counter(out.values())
    shared = [p for p in paths if copies[out[p]] > 1]
    if shared:
        raise InputError(f'--annotate: {shared[:6]} would share annotated copies '
                         '(same file stem)')
    inputs = {os.path.realpath(p) for p in paths}
    overwritten = [p for p in paths if os.path.realpath(out[p]) in inputs]
    if overwritten:
        raise InputError(f'--annotate {folder}: the annotated copy of {overwritten[0]} would '
                         'overwrite an input image; give another folder')
    return out


def detect_keypoints(detector: KeypointDetector, image: np.ndarray,
                     peak_threshold: float, roi_refinement: str = 'off',
                     roi_scale: float = PipelineConfig.roi_scale) -> ViewKeypoints:
    """Detect one object's keypoints in one image: the one call into the detector.

    Args:
        detector: the loaded network.
        image: (H, W, 3) uint8 RGB, any size.
        peak_threshold: lowest belief of a detected keypoint, in [0, 1].
        roi_refinement, roi_scale: the second, zoomed look
            (:meth:`~.core.detector.KeypointDetector.detect`).

    Returns:
        :class:`~.core.views.ViewKeypoints`: uv (J, 2) pixels of ``image``
        (NaN where not found) and confidence (J,).
    """
    return detector.detect([image], peak_threshold, roi_refinement, roi_scale)[0]


def detection_record(file_name: str, image: np.ndarray, object_class: ObjectClass,
                     detection: ViewKeypoints, instance: str) -> dict:
    """Return the JSON record of one image (see the module docstring).

    Args:
        file_name: the image's file name (no folder).
        image: (H, W, 3) the image (for its size).
        object_class: the class detected (names, order).
        detection: its keypoints in ``image``'s pixels.
        instance: the instance id reported.
    """
    keypoints = []
    for name, uv, confidence in zip(object_class.keypoint_names, detection.uv,
                                    detection.confidence):
        found = bool(np.all(np.isfinite(uv)))
        keypoints.append({'name': name,
                          'uv': [float(uv[0]), float(uv[1])] if found else None,
                          'confidence': float(confidence)})
    return {'image': file_name, 'width': int(image.shape[1]), 'height': int(image.shape[0]),
            'objects': [{'class': object_class.name, 'instance': instance,
                         'keypoints': keypoints}]}


def load_detector(model: str, device: str, threads: int) -> KeypointDetector:
    """Load the network of ``--model`` (shipped name or checkpoint path).

    Raises:
        InputError: unknown name, unreadable or invalid checkpoint.
    """
    with checked_input(f'--model {model}'):
        detector = KeypointDetector(model, device=device, num_threads=threads)
    note, warn = detector.quality_note()
    if warn:
        print(f'warning: {note}', file=sys.stderr)
    return detector


def roi_scale(text: str) -> float:
    """Parse ``--roi-scale``: a number in the range of the node parameter ``roi_scale``.

    Raises:
        argparse.ArgumentTypeError: not a number, or outside that range.
    """
    value = positive_float(text)
    try:
        return PipelineConfig().validated(roi_scale=value).roi_scale
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_model_options(parser: ArgumentParser) -> None:
    """Add the options shared by the mono tools: model, device, threads, threshold."""
    parser.add_argument('--model', required=True,
                        help='shipped model name (e.g. panda) or checkpoint path')
    parser.add_argument('--threshold', type=unit_interval,
                        default=PipelineConfig.peak_threshold,
                        help='lowest belief of a detected keypoint, 0..1 (default '
                             '%(default)s)')
    parser.add_argument('--roi-refinement', choices=ROI_REFINEMENTS,
                        default=PipelineConfig.roi_refinement,
                        help='second, zoomed look at the object: off, incomplete (only when '
                             'the first look missed a keypoint) or always (default '
                             '%(default)s, as the nodes)')
    parser.add_argument('--roi-scale', type=roi_scale, default=PipelineConfig.roi_scale,
                        help="the zoomed look's window over the keypoints' extent (default "
                             '%(default)s)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    parser.add_argument('--threads', type=non_negative_int, default=0,
                        help='torch threads; 0 keeps the default')


@command_line('keypoints-detect')
def main(argv: Optional[List[str]] = None) -> Optional[int]:
    """Detect keypoints in every image of a glob and write one JSON line per image."""
    parser = ArgumentParser(prog='keypoints-detect', description=__doc__.split('\n\n')[0])
    add_model_options(parser)
    parser.add_argument('--images', required=True, help="glob of the images (quote it)")
    parser.add_argument('--output', required=True, help='JSON-lines file to write')
    parser.add_argument('--annotate', default='',
                        help='folder for annotated copies (<file stem>.png)')
    parser.add_argument('--instance', default='0', help='instance id reported (default 0)')
    args = parser.parse_args(argv)

    paths = image_files(args.images)
    annotated = annotation_paths(paths, args.annotate) if args.annotate else {}
    detector = load_detector(args.model, args.device, args.threads)
    for option, folder in (('--output', os.path.dirname(os.path.abspath(args.output))),
                           ('--annotate', args.annotate)):
        if folder:
            with checked_input(f'{option} {folder}'):
                os.makedirs(folder, exist_ok=True)
    object_class = detector.object_class
    found, unreadable, lines = 0, 0, []
    for path in paths:
        try:
            image = read_image(path)
        except ValueError as e:
            print(f'warning: {path}: {e}; written with "error"', file=sys.stderr)
            unreadable += 1
            lines.append({'image': os.path.basename(path), 'width': None, 'height': None,
                          'objects': [], 'error': str(e)})
            continue
        detection = detect_keypoints(detector, image, args.threshold, args.roi_refinement,
                                     args.roi_scale)
        lines.append(detection_record(os.path.basename(path), image, object_class, detection,
                                      args.instance))
        found += int(detection.found.sum())
        if path in annotated:
            picture = cv2.cvtColor(draw_view(image, detection, object_class),
                                   cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(annotated[path], picture):
                raise InputError(f'--annotate: cannot write {annotated[path]}')
    with checked_input(f'--output {args.output}'):
        with atomic_open(args.output, encoding='utf-8') as out:
            out.writelines(json.dumps(record) + '\n' for record in lines)
    read = len(paths) - unreadable
    print(f'{read} images, {found}/{read * object_class.num_keypoints} '
          f'{object_class.name} keypoints found -> {args.output}'
          + (f'; {unreadable} unreadable (lines with "error")' if unreadable else ''))
    if unreadable:
        return EXIT_PARTIAL
    return 0
