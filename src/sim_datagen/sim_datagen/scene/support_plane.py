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
"""A support plane (table, floor) under a URDF object, cheaply.

TinyRenderer costs ~150 ns per covered pixel and does not clip triangles,
and a floor under the object often fills the view.  The plane is therefore
either added as a body clipped to what the cameras see
(:func:`add_support_plane`), or drawn into the renders with numpy and
OpenCV (:func:`draw_support_plane`, ~4 ms per view), with shadows from a
small shadow map of the object seen from the light (:func:`shadow_map`).

World frame: the left camera's optical frame (metres).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import itertools
from typing import Optional, Tuple

import cv2
import numpy as np

from .camera import PinholeCamera
from .layout import BuiltScene, rigid_transform, rotation_towards, SupportPlane
from .world import World

#: id of a support plane drawn into a render's segmentation (no body)
SEG_SUPPORT_ID = 1 << 30

#: a render: rgb (H, W, 3) uint8, depth buffer (H, W) float32 in [0, 1],
#: segmentation (H, W) int32 (-1: nothing drawn)
Render = Tuple[np.ndarray, np.ndarray, np.ndarray]


def clip_polygon(poly: np.ndarray, a: np.ndarray, d: float) -> np.ndarray:
    """Clip a convex polygon ((N, 3) vertices in order) to the half-space ``a . p + d >= 0``.

    Returns:
        (M, 3) float64 vertices of the clipped polygon, in order (M may be 0).
    """
    s = poly @ a + d
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if s[i] >= 0:
            out.append(poly[i])
        if (s[i] >= 0) != (s[j] >= 0):
            out.append(poly[i] + (poly[j] - poly[i]) * (s[i] / (s[i] - s[j])))
    return np.array(out).reshape(-1, 3)


def add_support_plane(world: World, support: SupportPlane, K_render: np.ndarray,
                      baseline: float, width: int, height: int, near: float,
                      margin: float = 8.0) -> Optional[int]:
    """Add the support plane as a body: the part of the square that both cameras can see.

    The square (half size ``support.half_size``, m, in the xy plane of
    ``support.T_top``, seen from its +z side) reaches far beyond the view.
    TinyRenderer does not clip triangles: one that crosses the near plane
    or leaves the image is still scanned over its whole on-screen bounding
    box, which made an unclipped plane cost about 85 ms per view.  The
    square is therefore clipped to the near plane and to the union of the
    two render frusta (``margin`` px wider), and only that polygon is
    added.  What the cameras see is the same plane; texture coordinates
    follow the unclipped square (the texture spans all of it).

    Args:
        world: the PyBullet world.
        support: the plane.
        K_render: (3, 3) intrinsics of the renders, px.
        baseline: stereo baseline, m.
        width: image width, px.
        height: image height, px.
        near: near clip plane, m.
        margin: px beyond the image borders.

    Returns:
        The body id, or ``None`` when no part of the plane is in view.
    """
    T_top, half = support.T_top, support.half_size
    fx, fy, cx, cy = K_render[0, 0], K_render[1, 1], K_render[0, 2], K_render[1, 2]
    m, W, H = margin, width, height
    # half-spaces a . p + d >= 0, p in the left optical (world) frame
    planes = [(np.array([0.0, 0.0, 1.0]), -near),                       # near
              (np.array([fx, 0.0, cx + m]), 0.0),                         # left (left cam)
              (np.array([-fx, 0.0, W - 1 + m - cx]), fx * baseline),      # right (right cam)
              (np.array([0.0, fy, cy + m]), 0.0),                         # top
              (np.array([0.0, -fy, H - 1 + m - cy]), 0.0)]                # bottom
    square = np.array([[-half, -half, 0.0], [half, -half, 0.0], [half, half, 0.0],
                       [-half, half, 0.0]])
    poly = square @ T_top[:3, :3].T + T_top[:3, 3]
    for a, d in planes:
        poly = clip_polygon(poly, a, d)
        if len(poly) < 3:
            return None
    local = (poly - T_top[:3, 3]) @ T_top[:3, :3]
    uvs = ((local[:, :2] + half) / (2 * half)).tolist()
    idx = [i for k in range(1, len(poly) - 1) for i in (0, k, k + 1)]  # +z side: CCW
    return world.add_mesh(np.eye(4), poly.tolist(), idx, uvs,
                          [T_top[:3, 2].tolist()] * len(poly), support.rgba, support.texture)


def light_above_plane(support: SupportPlane, light: dict) -> bool:
    """Return whether TinyRenderer's shadow light (a point) is above the support plane.

    ``light``: ``getCameraImage`` lighting kwargs (see
    :func:`sim_datagen.rendering.light_parameters`).
    """
    T_top = support.T_top
    pos = np.asarray(light['lightDirection'], np.float64)
    pos = pos / max(np.linalg.norm(pos), 1e-12) * float(light['lightDistance'])
    return float(T_top[:3, 2] @ (pos - T_top[:3, 3])) > 0.0


@dataclass(frozen=True)
class ShadowMap:
    """Depth of the shadow casters seen from the light.

    Attributes:
        camera: the light's camera (world frame = left optical frame).
        depth: (px, px) float32 linear depth from the light, m; inf where no body.
    """

    camera: PinholeCamera
    depth: np.ndarray


def shadow_map(world: World, scene: BuiltScene, light: dict, size_px: int
               ) -> Optional[ShadowMap]:
    """Render the shadow casters from the light, for a drawn support plane.

    TinyRenderer's shadow pass renders every body (the plane too) from a
    point light at ``lightDirection * lightDistance`` (world frame) at
    the full image size, and its shader multiplies the diffuse and
    specular terms by 0.8 where the shadow map is nearer than the
    surface.  Here the bodies (object, bar, distractors; no plane) are
    rendered once per sample from the same point, ``size_px`` square,
    with a field of view fitted to the object's bounding box: every floor
    point in the object's shadow projects into its silhouette there.
    :func:`draw_support_plane` looks the map up per pixel (a homography
    from the plane) for both views.

    Returns:
        The map, or None when the light is inside the object's bounding box.
    """
    direction = np.asarray(light['lightDirection'], np.float64)
    pos = direction / max(np.linalg.norm(direction), 1e-12) * float(light['lightDistance'])
    corners = np.array(list(itertools.product(*scene.instance.aabb().T)))
    R = rotation_towards(corners.mean(axis=0) - pos)   # light camera axes (z: to the object)
    pc = (corners - pos) @ R
    if pc[:, 2].min() <= 0.05:
        return None
    px = size_px
    tan = 1.05 * float(np.max(np.abs(pc[:, :2]) / pc[:, 2:3]))
    f = (px / 2 - 1) / max(tan, 1e-6)
    K = np.array([[f, 0, (px - 1) / 2], [0, f, (px - 1) / 2], [0, 0, 1]])
    cam = PinholeCamera(K, px, px, rigid_transform(R, pos), near=0.02,
                        far=float(2 * pc[:, 2].max() + 1.0))
    _, zbuf, seg = world.render(cam, dict(light, shadow=0))
    depth = cam.linear_depth(zbuf).astype(np.float32)
    depth[seg < 0] = np.inf
    return ShadowMap(cam, depth)


@functools.lru_cache(maxsize=1)
def _square_mask() -> np.ndarray:
    """(1024, 1024) uint8 255: the support square's extent, finer than any texture."""
    mask = np.full((1024, 1024), 255, np.uint8)
    mask.setflags(write=False)
    return mask


def draw_support_plane(render: Render, cam: PinholeCamera, support: SupportPlane, light: dict,
                       world: World, shadows: Optional[ShadowMap] = None) -> Render:
    """Draw the support plane into a render (colour, depth buffer, segmentation).

    TinyRenderer costs ~150 ns per covered pixel, and a floor under the
    object often fills the view (~45 ms per view even clipped, see
    :func:`add_support_plane`).  It is drawn here instead (~4 ms per
    view): a plane's depth buffer value is affine in the pixel coordinates
    and its texture coordinates are a homography of them, so a depth test
    against the render and one ``cv2.warpPerspective`` (nearest texel)
    give it.  Shading: TinyRenderer's shader for a flat surface, per
    channel ``texel * rgba * (ambient + s * (diffuse + specular) *
    lightColor)`` (specular = reflected light's world z), ``s`` = 0.8 in
    shadow, else 1.  Shadows (``shadows`` from :func:`shadow_map`): the
    plane's point behind each pixel is another homography away from the
    shadow map's pixel; it is in shadow where the map holds a body nearer
    the light.  The plane's segmentation id is :data:`SEG_SUPPORT_ID` (no
    body: segmentation output 0, an "other body" for the visibility test,
    as the rendered plane was).

    Args:
        render: ``(rgb, depth buffer, segmentation)`` of one view (not changed).
        cam: the camera of that render.
        support: the plane.
        light: ``getCameraImage`` lighting kwargs.
        world: the world (texture images).
        shadows: the shadow map, or None for no shadows.

    Returns:
        A new ``(rgb, depth buffer, segmentation)`` with the plane drawn
        (``render`` itself when the plane is not seen).
    """
    T_top, half, rgba, tex = support.T_top, support.half_size, support.rgba, support.texture
    W, H = cam.width, cam.height
    T_cw = np.linalg.inv(cam.T_world_cam)
    R = T_cw[:3, :3] @ T_top[:3, :3]                 # plane axes in the camera frame
    t = T_cw[:3, :3] @ T_top[:3, 3] + T_cw[:3, 3]
    nrm = R[:, 2]
    c = float(nrm @ t)                               # plane: nrm . X = c
    if c >= 0:  # camera below the plane: back face, culled as in TinyRenderer
        return render
    Kinv = np.linalg.inv(cam.K)
    near, far = cam.near, cam.far
    # depth buffer d = (1/n - 1/z) / (1/n - 1/f) with 1/z = (nrm . K^-1 [u, v, 1]) / c
    g = (nrm @ Kinv) / c * (-1.0 / (1.0 / near - 1.0 / far))
    g[2] += (1.0 / near) / (1.0 / near - 1.0 / far)
    d = ((g[0] * np.arange(W, dtype=np.float32))[None, :]
         + (g[1] * np.arange(H, dtype=np.float32) + g[2])[:, None]).astype(np.float32)
    # pixel -> texel homography: plane coordinates of the hit point, scaled
    img = (world.texture_image(tex) if tex is not None
           else np.full((2, 2, 3), 255, np.uint8))
    q0, q1 = float(R[:, 0] @ t), float(R[:, 1] @ t)
    L = np.stack([c * R[:, 0] - q0 * nrm, c * R[:, 1] - q1 * nrm, nrm]) @ Kinv
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP

    def warp(im):
        h, w = im.shape[:2]
        S = np.array([[w / (2 * half), 0, w / 2], [0, h / (2 * half), h / 2], [0, 0, 1]])
        # replicated border: nearest rounding reaches half a texel past the last one
        return cv2.warpPerspective(im, S @ L, (W, H), flags=flags,
                                   borderMode=cv2.BORDER_REPLICATE)

    texel = warp(img)
    # the square's extent: nearest-texel rounding is off by half a texel, so
    # a fine mask (2L / 1024 per texel, zero border) rather than the texture decides it
    square = _square_mask()
    h, w = square.shape
    S = np.array([[w / (2 * half), 0, w / 2], [0, h / (2 * half), h / 2], [0, 0, 1]])
    inside = cv2.warpPerspective(square, S @ L, (W, H), flags=flags)
    rgb, dbuf, seg = render
    draw = (inside > 0) & (d > 0) & (d < dbuf)
    if not draw.any():
        return render
    rgb, dbuf, seg = rgb.copy(), dbuf.copy(), seg.copy()
    ldir = np.asarray(light['lightDirection'], np.float64)
    ldir /= max(np.linalg.norm(ldir), 1e-12)
    ka, kd, ks = (light['lightAmbientCoeff'], light['lightDiffuseCoeff'],
                  light['lightSpecularCoeff'])
    n_w = T_top[:3, 2]
    refl = n_w * (2.0 * float(n_w @ ldir)) - ldir   # TinyRenderer: specular = r.z (world)
    refl /= max(np.linalg.norm(refl), 1e-12)
    lit = kd * max(0.0, float(n_w @ ldir)) + ks * max(0.0, float(refl[2]))
    rgba3, lc = np.asarray(rgba[:3], np.float64), np.asarray(light['lightColor'], np.float64)

    def shade(s):
        colour = rgba3 * (ka + s * lit * lc)
        return cv2.multiply(texel, tuple(float(x) for x in colour) + (0.0,))

    cv2.copyTo(shade(1.0), draw.view(np.uint8), rgb)
    if shadows is not None:
        lcam, ldepth = shadows.camera, shadows.depth
        T_lw = np.linalg.inv(lcam.T_world_cam)
        # plane (x, y, 1) -> light camera coordinates; A: pixel -> w * light coordinates
        M = T_lw[:3, :3] @ np.c_[T_top[:3, 0], T_top[:3, 1],
                                 T_top[:3, 3] - lcam.T_world_cam[:3, 3]]
        A = M @ L
        hit = cv2.warpPerspective(ldepth, lcam.K @ A, (W, H), flags=flags,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=np.inf)
        uu = np.arange(W, dtype=np.float32)[None, :]
        vv = np.arange(H, dtype=np.float32)[:, None]
        with np.errstate(divide='ignore', invalid='ignore'):
            z_l = ((A[2, 0] * uu + (A[2, 1] * vv + A[2, 2]))
                   / (L[2, 0] * uu + (L[2, 1] * vv + L[2, 2])))
        dark = draw & (hit < z_l * np.float32(0.998) - np.float32(0.003))
        if dark.any():
            cv2.copyTo(shade(0.8), dark.view(np.uint8), rgb)
    np.copyto(dbuf, d, where=draw)
    np.copyto(seg, SEG_SUPPORT_ID, where=draw)
    return rgb, dbuf, seg
