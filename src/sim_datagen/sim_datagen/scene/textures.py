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
"""Procedural textures and backgrounds (numpy / OpenCV, RGB uint8).

All images are ``(H, W, 3) uint8`` RGB unless stated otherwise.  Every
function draws its randomness from the ``np.random.Generator`` passed in, so
results are reproducible from a seed.
"""

from __future__ import annotations

import glob
import os
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pybullet_data

#: background types, in the order of the ``background_type`` variable's bins
BACKGROUND_TYPES = ('noise', 'gradient', 'stripes', 'shapes', 'office', 'grids', 'texture')

# skin tones (RGB) from light to dark, used for the "hands" and the person blob
SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 96],
                       [161, 102, 70], [120, 76, 50], [90, 56, 38]], dtype=np.float64)


def checker_texture(phase: int, black: int, white: int = 255, px: int = 48,
                    squares: Tuple[int, int] = (10, 7), margin: float = 1.5) -> np.ndarray:
    """Make the printed chessboard texture with a white margin.

    Args:
        phase: 0 -> the square at the -x/-y corner is black, 1 -> white.
        black, white: grey levels of the dark and light squares.
        px: texture pixels per square.
        squares: (columns, rows) of squares.
        margin: white margin in squares on every side (texture side; the
            mesh maps any physical margin width onto it).

    Returns:
        (rows*px + 2*m, cols*px + 2*m, 3) uint8, row 0 = the -y side.
    """
    nx, ny = squares
    m = int(round(margin * px))
    img = np.full((ny * px + 2 * m, nx * px + 2 * m), white, np.uint8)
    yy, xx = np.mgrid[0:ny, 0:nx]
    cells = ((yy + xx + phase) % 2 == 0)
    img[m:m + ny * px, m:m + nx * px] = np.where(
        np.kron(cells, np.ones((px, px), bool)), black, white).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def random_color(rng: np.random.Generator, sat: float = 1.0) -> np.ndarray:
    """Draw a random RGB colour, (3,) float64 in [0, 255]; ``sat`` scales saturation."""
    hsv = np.uint8([[[rng.integers(0, 180), int(rng.uniform(0, 255) * sat),
                      rng.integers(20, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def smooth_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4,
                 base: int = 4, persistence: float = 0.55) -> np.ndarray:
    """Multi-octave value noise, (h, w) float32 in [0, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * (2 ** o)
        g = rng.random((max(2, cells * h // max(h, w)), cells)).astype(np.float32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def colorize(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Blend two colours with a (h, w) weight in [0, 1] -> (h, w, 3) float32."""
    t = t[:, :, None].astype(np.float32)
    return (1 - t) * c0.astype(np.float32) + t * c1.astype(np.float32)


def bg_noise(rng, h, w):
    """Smooth coloured noise."""
    t = smooth_noise(rng, h // 2, w // 2, octaves=int(rng.integers(2, 6)),
                     base=int(rng.integers(2, 8)))
    img = colorize(t, random_color(rng), random_color(rng))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def bg_gradient(rng, h, w):
    """Linear or radial gradient between random colours."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    return colorize(t ** rng.uniform(0.5, 2.0), random_color(rng), random_color(rng))


def bg_stripes(rng, h, w):
    """Sine or square stripes at a random angle/frequency (shirts, blinds)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    period = rng.uniform(4, 80)
    ph = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / period)
    t = 0.5 + 0.5 * np.sin(ph)
    if rng.random() < 0.5:
        t = (t > rng.uniform(0.3, 0.7)).astype(np.float32)
    return colorize(t, random_color(rng), random_color(rng))


def draw_shapes(img: np.ndarray, rng, n: int, max_size: float = 0.4, fill_p: float = 0.7):
    """Draw ``n`` random rectangles / ellipses / lines into float32 ``img`` in place."""
    h, w = img.shape[:2]
    for _ in range(n):
        col = tuple(float(c) for c in random_color(rng))
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        sx = int(rng.uniform(0.02, max_size) * w)
        sy = int(rng.uniform(0.02, max_size) * h)
        th = -1 if rng.random() < fill_p else int(rng.integers(1, 6))
        kind = rng.random()
        if kind < 0.45:
            cv2.rectangle(img, (cx - sx // 2, cy - sy // 2), (cx + sx // 2, cy + sy // 2), col, th)
        elif kind < 0.8:
            cv2.ellipse(img, (cx, cy), (max(1, sx // 2), max(1, sy // 2)),
                        float(rng.uniform(0, 180)), 0, 360, col, th)
        else:
            cv2.line(img, (cx, cy), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), col,
                     int(rng.integers(1, 8)))
    return img


def bg_shapes(rng, h, w):
    """Random rectangles, ellipses and lines over a noise/gradient base."""
    img = bg_gradient(rng, h, w) if rng.random() < 0.5 else bg_noise(rng, h, w)
    return draw_shapes(img, rng, int(rng.integers(5, 40)))


def draw_grid(img: np.ndarray, rng, scale: float = 1.0):
    """Draw a chessboard-like distractor grid into float32 ``img`` in place.

    Other square counts than the target, warped by a random homography;
    sometimes a keyboard-like grid of separated keys.
    """
    h, w = img.shape[:2]
    nx, ny = int(rng.integers(2, 14)), int(rng.integers(2, 10))
    sq = 16
    tile = np.kron(((np.add.outer(np.arange(ny), np.arange(nx))) % 2).astype(np.float32),
                   np.ones((sq, sq), np.float32))
    if rng.random() < 0.3:  # keyboard-like grid of separated keys
        tile = np.zeros_like(tile)
        for i in range(ny):
            for j in range(nx):
                tile[i * sq + 2:(i + 1) * sq - 2, j * sq + 2:(j + 1) * sq - 2] = 1
    c0, c1 = random_color(rng, 0.3), random_color(rng, 0.3)
    if rng.random() < 0.6:
        c0, c1 = np.full(3, rng.uniform(0, 60)), np.full(3, rng.uniform(180, 255))
    th, tw = tile.shape
    size = rng.uniform(0.1, 0.5) * scale * w
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    s = size / tw
    a = rng.uniform(-np.pi, np.pi)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = (src - [tw / 2, th / 2]) * s
    dst = dst * rng.uniform(0.7, 1.3, size=(4, 2)) ** 0.5
    dst = (dst @ R.T + [cx, cy]).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, dst)
    mask = cv2.warpPerspective(np.ones_like(tile), H, (w, h), flags=cv2.INTER_NEAREST)
    t = cv2.warpPerspective(tile, H, (w, h), flags=cv2.INTER_LINEAR)
    col = colorize(t, c0, c1)
    m = mask[:, :, None] > 0.5
    np.copyto(img, col, where=np.broadcast_to(m, img.shape))
    return img


def bg_grids(rng, h, w):
    """Several distractor grids over another background."""
    img = [bg_noise, bg_gradient, bg_shapes][int(rng.integers(0, 3))](rng, h, w)
    for _ in range(int(rng.integers(1, 4))):
        draw_grid(img, rng)
    return img


def bg_office(rng, h, w):
    """Draw an office-like scene.

    Large flat wall/partition regions, desk, monitors (sometimes showing a
    chessboard), keyboard, whiteboard scribbles, cabinets.
    """
    wall = np.full(3, rng.uniform(120, 230)) * rng.uniform(0.85, 1.15, 3)
    img = colorize(np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)),
                   wall * rng.uniform(0.7, 1.0), wall * rng.uniform(0.9, 1.2))
    # vertical partitions / doors / cabinets
    for _ in range(int(rng.integers(1, 6))):
        x0 = int(rng.uniform(-0.2, 1.0) * w)
        x1 = x0 + int(rng.uniform(0.05, 0.5) * w)
        y0 = int(rng.uniform(-0.2, 0.6) * h)
        y1 = y0 + int(rng.uniform(0.2, 1.0) * h)
        c = np.full(3, rng.uniform(40, 240)) * rng.uniform(0.85, 1.15, 3)
        cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) for v in c), -1)
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) * 0.6 for v in c), 2)
    # desk
    if rng.random() < 0.8:
        yd = int(rng.uniform(0.45, 0.85) * h)
        c = random_color(rng, 0.4) * rng.uniform(0.4, 1.0)
        cv2.rectangle(img, (0, yd), (w, h), tuple(float(v) for v in c), -1)
    # monitors with content (sometimes a chessboard on screen)
    for _ in range(int(rng.integers(0, 3))):
        mw = int(rng.uniform(0.12, 0.35) * w)
        mh = int(mw * rng.uniform(0.6, 0.9))
        x0, y0 = int(rng.uniform(-0.1, 0.9) * w), int(rng.uniform(0.05, 0.6) * h)
        fc = float(rng.uniform(20, 200))
        cv2.rectangle(img, (x0, y0), (x0 + mw, y0 + mh), (fc, fc, fc), -1)
        b = max(2, mw // 14)
        scr = img[max(0, y0 + b):max(0, y0 + mh - b), max(0, x0 + b):max(0, x0 + mw - b)]
        if scr.size:
            scr[:] = float(rng.uniform(150, 255))
            if rng.random() < 0.5:
                draw_grid(scr, rng, scale=2.0)
            else:
                draw_shapes(scr, rng, int(rng.integers(2, 12)), 0.5)
    # keyboard
    if rng.random() < 0.5:
        sub = np.full((int(0.12 * h), int(0.3 * w), 3), float(rng.uniform(150, 240)), np.float32)
        kx, ky = int(rng.uniform(0, 0.8) * w), int(rng.uniform(0.6, 0.9) * h)
        ph, pw = img[ky:ky + sub.shape[0], kx:kx + sub.shape[1]].shape[:2]
        for i in range(0, ph - 4, 7):
            for j in range(0, pw - 4, 8):
                sub[i:i + 5, j:j + 6] = float(rng.uniform(190, 255))
        img[ky:ky + ph, kx:kx + pw] = sub[:ph, :pw]
    # whiteboard scribbles / posters
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = int(rng.uniform(0, 0.8) * w), int(rng.uniform(0, 0.5) * h)
        sub = img[y0:y0 + int(0.25 * h), x0:x0 + int(0.2 * w)]
        sub[:] = float(rng.uniform(200, 255))
        for _ in range(int(rng.integers(3, 15))):
            p0 = (int(rng.uniform(0, sub.shape[1])), int(rng.uniform(0, sub.shape[0])))
            p1 = (p0[0] + int(rng.uniform(-30, 30)), p0[1] + int(rng.uniform(-5, 5)))
            cv2.line(sub, p0, p1, tuple(float(v) for v in random_color(rng) * 0.5), 1)
    # soft shading
    if rng.random() < 0.7:
        img *= (0.7 + 0.6 * smooth_noise(rng, h // 4, w // 4, 2, 2))[:, :, None].repeat(
            4, 0).repeat(4, 1)[:h, :w]
    return img


class TextureLibrary:
    """Image files (e.g. ``pybullet_data`` textures) for backgrounds and objects.

    Files are read lazily and cached (RGB uint8).
    """

    def __init__(self, files: Sequence[str]):
        self.files = sorted(files)
        self._cache = {}

    @classmethod
    def from_pybullet_data(cls) -> 'TextureLibrary':
        """All JPG/PNG images shipped with ``pybullet_data`` (textures, not UI)."""
        root = pybullet_data.getDataPath()
        files = []
        for ext in ('jpg', 'png'):
            files += glob.glob(os.path.join(root, '**', f'*.{ext}'), recursive=True)
        files = [f for f in files if os.path.getsize(f) > 2000 and 'random_urdfs' not in f]
        return cls(files)

    def get(self, i: int) -> Optional[np.ndarray]:
        if not self.files:
            return None
        i = i % len(self.files)
        if i not in self._cache:
            im = cv2.imread(self.files[i], cv2.IMREAD_COLOR)
            if im is None or min(im.shape[:2]) < 16:
                im = np.full((16, 16, 3), 128, np.uint8)
            f = 256.0 / max(im.shape[:2])
            if f < 1:
                im = cv2.resize(im, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            self._cache[i] = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        return self._cache[i]


def bg_texture(rng, h, w, lib: Optional[TextureLibrary] = None):
    """Tile and resize a random library image to (h, w)."""
    if lib is None or not lib.files:
        return bg_noise(rng, h, w)
    im = lib.get(int(rng.integers(0, len(lib.files)))).astype(np.float32)
    reps = int(rng.integers(1, 4))
    im = np.tile(im, (reps, reps, 1))
    im = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        im = im * rng.uniform(0.6, 1.2, 3).astype(np.float32)
    return im


def make_background(kind: int, rng, h: int, w: int,
                    lib: Optional[TextureLibrary] = None, extra_grid_p: float = 0.25
                    ) -> np.ndarray:
    """Background of type ``BACKGROUND_TYPES[kind]``, (h, w, 3) uint8 RGB.

    Drawn at half resolution and upscaled (speed; the background then looks
    slightly out of focus, as behind a board held near the camera).
    """
    name = BACKGROUND_TYPES[int(kind)]
    hh, ww = (h + 1) // 2, (w + 1) // 2
    if name == 'texture':
        img = bg_texture(rng, hh, ww, lib)
    else:
        img = globals()['bg_' + name](rng, hh, ww)
    img = np.ascontiguousarray(img, dtype=np.float32)
    if name != 'grids' and rng.random() < extra_grid_p:
        draw_grid(img, rng)
    img = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def person_layer(rng, h: int, w: int, center: Tuple[float, float], scale: float
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw a person-like blob (head, neck, torso with a shirt).

    It is composited behind the board.

    Args:
        center: (u, v) pixel where the torso's upper part is centred.
        scale: torso width in pixels.

    Returns:
        rgb (h, w, 3) float32 and alpha (h, w) float32 in [0, 1].
    """
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    cx, cy = center
    tw = scale
    skin = SKIN_TONES[int(rng.integers(0, len(SKIN_TONES)))] * rng.uniform(0.7, 1.1)
    hair = np.full(3, rng.uniform(10, 120)) * rng.uniform(0.8, 1.2, 3)
    # torso = shirt (stripes / flat / noise)
    top = int(cy - 0.15 * tw)
    x0, x1 = int(cx - tw / 2), int(cx + tw / 2)
    shirt = np.zeros((h, w), np.uint8)
    cv2.rectangle(shirt, (x0, top), (x1, h + 10), 255, -1)
    cv2.ellipse(shirt, (int(cx), top + int(0.15 * tw)), (int(tw / 2), int(0.15 * tw)),
                0, 180, 360, 255, -1)
    m = shirt > 0
    kind = rng.random()
    c0, c1 = random_color(rng), random_color(rng)
    if kind < 0.4:
        yy = np.arange(h, dtype=np.float32)[:, None]
        period = rng.uniform(6, 30)
        t = np.broadcast_to(((yy // (period / 2)) % 2).astype(np.float32), (h, w))
        if rng.random() < 0.3:
            xx = np.arange(w, dtype=np.float32)[None, :]
            t = np.maximum(t, ((xx // (period / 2)) % 2))
        col = colorize(np.ascontiguousarray(t), c0, c1)
    elif kind < 0.7:
        col = np.broadcast_to(c0.astype(np.float32), (h, w, 3))
    else:
        col = colorize(smooth_noise(rng, h // 4, w // 4, 3, 3).repeat(4, 0).repeat(4, 1)[:h, :w],
                       c0, c1)
    rgb[m] = col[m]
    alpha[m] = 1
    # neck + head
    hw = 0.33 * tw
    hc = (int(cx + rng.uniform(-0.1, 0.1) * tw), int(top - 0.55 * hw))
    cv2.rectangle(rgb, (int(hc[0] - hw * 0.25), hc[1]), (int(hc[0] + hw * 0.25), top + 2),
                  tuple(float(v) for v in skin * 0.9), -1)
    cv2.rectangle(alpha, (int(hc[0] - hw * 0.25), hc[1]), (int(hc[0] + hw * 0.25), top + 2), 1, -1)
    cv2.ellipse(rgb, hc, (int(hw / 2), int(hw * 0.65)), 0, 0, 360,
                tuple(float(v) for v in skin), -1)
    cv2.ellipse(alpha, hc, (int(hw / 2), int(hw * 0.65)), 0, 0, 360, 1, -1)
    cv2.ellipse(rgb, (hc[0], hc[1] - int(hw * 0.2)), (int(hw * 0.52), int(hw * 0.5)), 0, 180, 360,
                tuple(float(v) for v in hair), -1)
    return rgb, alpha


def object_textures(rng, n: int, size: int = 128) -> List[np.ndarray]:
    """``n`` small procedural textures for distractors/clothing, (size, size, 3) uint8."""
    out = []
    gens = [bg_noise, bg_stripes, bg_shapes, bg_gradient, bg_grids]
    for i in range(n):
        out.append(np.clip(gens[i % len(gens)](rng, size, size), 0, 255).astype(np.uint8))
    return out


def marker_texture(rng, px: int = 96) -> np.ndarray:
    """Draw a fiducial marker print in the style of ArUco / AprilTag, (px, px, 3) uint8.

    A white quiet zone one cell wide, a black border one cell wide and a
    random 4x4 to 6x6 grid of black and white cells inside it (not a valid
    code of any dictionary: the network must only learn to ignore markers).
    """
    n = int(rng.integers(4, 7))
    grid = np.full((n + 4, n + 4), 255, np.uint8)
    grid[1:-1, 1:-1] = 0
    grid[2:-2, 2:-2] = rng.integers(0, 2, (n, n)) * 255
    image = cv2.resize(grid, (px, px), interpolation=cv2.INTER_NEAREST)
    return np.repeat(image[:, :, None], 3, axis=2)
