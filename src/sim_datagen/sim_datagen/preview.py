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
"""Contact sheets and sampled-variable histograms of a dataset."""

from __future__ import annotations

import itertools

import cv2
from keypoint_perception.core.dataset import iter_samples, read_meta
from matplotlib.figure import Figure
import numpy as np

GREEN, ORANGE, RED = (0, 200, 0), (255, 140, 0), (255, 0, 0)  # RGB


def draw_keypoints(img: np.ndarray, kp: np.ndarray, vis: np.ndarray, skeleton) -> np.ndarray:
    """Draw keypoints, skeleton lines and indices on a copy of an RGB image.

    Green = visible, orange = occluded, nothing if outside the image.
    """
    out = img.copy()
    for a, b in skeleton:
        if vis[a] > 0 and vis[b] > 0:
            cv2.line(out, tuple(int(round(x)) for x in kp[a]),
                     tuple(int(round(x)) for x in kp[b]), (255, 255, 0), 1, cv2.LINE_AA)
    for j, (p, visibility) in enumerate(zip(kp, vis)):
        if visibility == 0:
            continue
        c = GREEN if visibility == 2 else ORANGE
        pt = (int(round(p[0])), int(round(p[1])))
        cv2.circle(out, pt, 6, c, 2, cv2.LINE_AA)
        cv2.circle(out, pt, 1, c, -1)
        cv2.putText(out, str(j), (pt[0] + 6, pt[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, RED, 2)
    return out


def contact_sheet(data_dir: str, out_png: str, count: int = 16, cols: int = 4,
                  tile_w: int = 320) -> int:
    """Write a grid of left|right pairs with labels drawn. Returns #samples.

    ``tile_w``: width of one view in px.  A ``.jpg``/``.jpeg`` output is
    written at JPEG quality 85, other extensions as ``cv2.imwrite`` does.
    """
    meta = read_meta(data_dir)
    skel = meta.get('skeleton', [])
    tiles = []
    for s in itertools.islice(iter_samples(data_dir), count):
        pair = []
        for n in ('left', 'right'):
            im = draw_keypoints(s[n], s[f'kp2d_{n}'], s[f'vis_{n}'], skel)
            h = int(im.shape[0] * tile_w / im.shape[1])
            im = cv2.resize(im, (tile_w, h), interpolation=cv2.INTER_AREA)
            cv2.putText(im, f"{s['key'][-5:]} {n[0].upper()}", (4, 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
            pair.append(im)
        sep = np.full((pair[0].shape[0], 4, 3), 255, np.uint8)
        tiles.append(np.hstack([pair[0], sep, pair[1], np.zeros_like(sep)]))
    if not tiles:
        raise RuntimeError(f'no samples in {data_dir}')
    # samples may differ in size and aspect (image_size variable): pad to the tallest
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    rows = []
    for r in range(0, len(tiles), cols):
        row = tiles[r:r + cols]
        row += [np.zeros_like(tiles[0])] * (cols - len(row))
        rows.append(np.hstack(row))
    jpeg = out_png.lower().endswith(('.jpg', '.jpeg'))
    cv2.imwrite(out_png, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85] if jpeg else [])
    return len(tiles)


def variable_histograms(data_dir: str, out_png: str) -> int:
    """Histogram per sampled variable (all samples) plus visibility counts."""
    meta = read_meta(data_dir)
    vars_meta = meta['sampler_state']['variables']
    values = {k: [] for k in vars_meta}
    vis = np.zeros(3, np.int64)
    n = 0
    for s in iter_samples(data_dir, decode_images=False):
        for k, d in s['labels']['variables'].items():
            values.setdefault(k, []).append(d['value'])
        for key in ('vis_left', 'vis_right'):
            vis += np.bincount(s[key], minlength=3)[:3]
        n += 1
    names = list(values) + ['visibility']
    cols = 6
    rows = int(np.ceil(len(names) / cols))
    fig = Figure(figsize=(3 * cols, 2.2 * rows))  # no pyplot: no global backend or state
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        if name == 'visibility':
            ax.bar(['out', 'occl', 'vis'], vis, color=['gray', 'orange', 'green'])
        else:
            vm = vars_meta.get(name, {})
            edges = np.linspace(vm.get('lo', 0), vm.get('hi', 1), vm.get('bins', 1) + 1)
            if vm.get('categorical'):
                edges = np.arange(vm['bins'] + 1) - 0.5
            elif len(edges) < 8:
                edges = np.linspace(edges[0], edges[-1], 4 * (len(edges) - 1) + 1)
            ax.hist(values[name], bins=edges, color='tab:blue')
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis('off')
    fig.suptitle(f'{data_dir}: {n} samples')
    fig.tight_layout()
    fig.savefig(out_png, dpi=70)
    return n
