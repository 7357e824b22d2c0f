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
"""Procedural URDF families: parameters in, URDF file (and meshes) out.

A family is a function ``family(params, out_dir, stem) -> urdf_path`` that
writes a URDF made of primitives and generated OBJ meshes.  Every family
names its links so that an object-class YAML can put keypoints on them
(``link`` + ``position`` in that link's frame); points whose place depends
on the parameters get an empty *frame link* of their own (fixed joint, no
geometry), so the class YAML stays free of numbers that vary per instance.

Units are metres and radians; +z is up in every family's base frame.
Parameters not given take the family's default (:data:`FAMILY_DEFAULTS`);
an unknown parameter name raises ``ValueError``.

Families:

``mug``
    Base frame: origin at the centre of the outer bottom, +z up, handle
    towards +y (as pybullet_data's ``objects/mug.urdf``).  Links:
    ``base_link`` (body + handle mesh), frame links ``handle_point`` (middle
    of the handle's centre line), ``rim_center`` (centre of the rim circle),
    ``bottom_center`` (centre of the outer bottom).
``cabinet``
    Base frame: origin on the floor below the centre of the carcass, +z up,
    the front faces +x, width along y.  Links: ``base_link`` (carcass, other
    drawer fronts, doors, legs), ``drawer`` (the labelled drawer: front
    panel + box; prismatic joint ``drawer_joint`` along +x, 0 = closed,
    upper limit 80 % of the carcass depth; its frame is at the centre of the
    front panel's outer face), ``drawer_handle`` (handle; frame at the
    front-most centre of the grip), frame links ``front_top_left``,
    ``front_top_right``, ``front_bottom_right``, ``front_bottom_left`` (the
    drawer front's outer corners as seen from the front, viewer's left =
    -y).  Variants (``variant``): 0 nightstand (one drawer over an open
    shelf, legs), 1 dresser (three wide drawers), 2 desk pedestal (three
    drawers, plinth), 3 kitchen base unit (drawer over a door, worktop), 4
    filing cabinet (two tall drawers), 5 chest (two drawers side by side,
    the left one labelled).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

#: default parameters per family (also the list of accepted names)
FAMILY_DEFAULTS: Dict[str, Dict[str, float]] = {
    'mug': {'radius': 0.04, 'height': 0.095, 'wall': 0.005, 'taper': 1.0,
            'handle_shape': 0, 'handle_size': 0.6, 'handle_reach': 0.028,
            'handle_thickness': 0.006, 'segments': 32},
    'cabinet': {'variant': 0, 'width_scale': 1.0, 'height_scale': 1.0, 'depth_scale': 1.0,
                'front_style': 0, 'handle_type': 0, 'handle_length': 0.4,
                'front_thickness': 0.018, 'gap': 0.003},
}


# ---------------------------------------------------------------------------
# meshes
def _orient_faces(v: np.ndarray, n: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip triangles whose winding disagrees with their vertex normals; drop degenerate ones."""
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    area = np.linalg.norm(fn, axis=1)
    keep = area > 1e-12
    flip = np.einsum('ij,ij->i', fn, n[faces].sum(axis=1)) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces[keep]


def lathe(profile: Sequence[Tuple[float, float]], segments: int) -> Tuple[np.ndarray, ...]:
    """Surface of revolution about +z with crisp edges between profile segments.

    Args:
        profile: (r, z) points, m; each consecutive pair is one band whose
            normal is perpendicular to it, pointing to the right of the
            direction of travel in the (r, z) plane (outward for a profile
            that goes up the outside and down the inside).
        segments: number of steps around the axis.

    Returns:
        vertices (N, 3), normals (N, 3), uvs (N, 2), faces (M, 3) int.
    """
    th = np.linspace(0, 2 * np.pi, segments + 1)
    ct, st = np.cos(th), np.sin(th)
    verts, norms, uvs, faces = [], [], [], []
    total = sum(np.hypot(r1 - r0, z1 - z0) for (r0, z0), (r1, z1) in zip(profile, profile[1:]))
    acc = 0.0
    for (r0, z0), (r1, z1) in zip(profile, profile[1:]):
        dr, dz = r1 - r0, z1 - z0
        length = np.hypot(dr, dz)
        if length < 1e-12:
            continue
        nr, nz = dz / length, -dr / length
        base = len(verts)
        for r, z, vv in ((r0, z0, acc / total), (r1, z1, (acc + length) / total)):
            for i in range(segments + 1):
                verts.append([r * ct[i], r * st[i], z])
                norms.append([nr * ct[i], nr * st[i], nz])
                uvs.append([i / segments, vv])
        acc += length
        m = segments + 1
        for i in range(segments):
            a, b, c, d = base + i, base + i + 1, base + m + i, base + m + i + 1
            faces += [[a, b, d], [a, d, c]]
    v, n = np.array(verts), np.array(norms)
    return v, n, np.array(uvs), _orient_faces(v, n, np.array(faces))


def tube(path: np.ndarray, radius: float, side: np.ndarray, sides: int = 10
         ) -> Tuple[np.ndarray, ...]:
    """Tube of circular cross-section swept along a planar path (open ends).

    Args:
        path: (P, 3) centre line, m.
        radius: tube radius, m.
        side: (3,) unit vector perpendicular to the path's plane.
        sides: vertices around the tube.

    Returns:
        vertices, normals, uvs, faces as :func:`lathe`.
    """
    path = np.asarray(path, np.float64)
    tang = np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    bi = np.cross(tang, side)
    phi = np.linspace(0, 2 * np.pi, sides + 1)
    verts, norms, uvs = [], [], []
    for k, (pt, b) in enumerate(zip(path, bi)):
        for j, f in enumerate(phi):
            d = np.cos(f) * side + np.sin(f) * b
            verts.append(pt + radius * d)
            norms.append(d)
            uvs.append([k / (len(path) - 1), j / sides])
    m = sides + 1
    faces = []
    for k in range(len(path) - 1):
        for j in range(sides):
            a, b2, c, d = k * m + j, k * m + j + 1, (k + 1) * m + j, (k + 1) * m + j + 1
            faces += [[a, b2, d], [a, d, c]]
    v, n = np.array(verts), np.array(norms)
    return v, n, np.array(uvs), _orient_faces(v, n, np.array(faces))


def write_obj(path: str, parts: Sequence[Tuple[np.ndarray, ...]]) -> None:
    """Write meshes (vertices, normals, uvs, faces) into one OBJ file."""
    # one %-format per block (C speed; a per-line f-string cost ~12 ms per mug)
    chunks, off = [], 0
    for v, n, uv, f in parts:
        v, n, uv = (np.asarray(a, np.float64) for a in (v, n, uv))
        f = np.repeat(np.asarray(f, np.int64).reshape(-1, 3) + 1 + off, 3, axis=1)
        chunks += [('v %.6f %.6f %.6f\n' * len(v)) % tuple(v.ravel().tolist()),
                   ('vt %.5f %.5f\n' * len(uv)) % tuple(uv.ravel().tolist()),
                   ('vn %.5f %.5f %.5f\n' * len(n)) % tuple(n.ravel().tolist()),
                   ('f %d/%d/%d %d/%d/%d %d/%d/%d\n' * len(f)) % tuple(f.ravel().tolist())]
        off += len(v)
    with open(path, 'w') as fh:
        fh.write(''.join(chunks))


# ---------------------------------------------------------------------------
# URDF text
def _xyz(p) -> str:
    return ' '.join(f'{float(x):.6f}' for x in p)


def _material(rgba) -> str:
    """URDF material; named after its colour (PyBullet reuses materials by name)."""
    name = 'c' + ''.join(f'{int(round(255 * float(c))):02x}' for c in rgba)
    return f'<material name="{name}"><color rgba="{_xyz(rgba)}"/></material>'


def _box(he, xyz, rgba) -> str:
    """``<visual>`` + ``<collision>`` of a box given by half extents at ``xyz``."""
    size = _xyz(2 * np.asarray(he, np.float64))
    return (f'<visual><origin xyz="{_xyz(xyz)}"/><geometry><box size="{size}"/></geometry>'
            f'{_material(rgba)}</visual>'
            f'<collision><origin xyz="{_xyz(xyz)}"/><geometry><box size="{size}"/>'
            '</geometry></collision>')


def _cylinder(r, length, xyz, rpy, rgba) -> str:
    g = f'<geometry><cylinder radius="{r:.6f}" length="{length:.6f}"/></geometry>'
    o = f'<origin xyz="{_xyz(xyz)}" rpy="{_xyz(rpy)}"/>'
    return (f'<visual>{o}{g}{_material(rgba)}'
            f'</visual><collision>{o}{g}</collision>')


_INERTIAL = ('<inertial><mass value="0.1"/><inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" '
             'iyz="0" izz="1e-4"/></inertial>')


def _link(name: str, body: str = '') -> str:
    return f'<link name="{name}">{_INERTIAL}{body}</link>'


def _fixed(name: str, parent: str, child: str, xyz) -> str:
    return (f'<joint name="{name}" type="fixed"><parent link="{parent}"/>'
            f'<child link="{child}"/><origin xyz="{_xyz(xyz)}"/></joint>')


def _robot(name: str, parts: List[str]) -> str:
    return f'<?xml version="1.0"?>\n<robot name="{name}">\n' + '\n'.join(parts) + '\n</robot>\n'


def _params(family: str, params: Dict[str, float]) -> Dict[str, float]:
    d = dict(FAMILY_DEFAULTS[family])
    bad = sorted(set(params) - set(d))
    if bad:
        raise ValueError(f'procedural family {family!r}: unknown parameter(s) {bad}; '
                         f'known: {sorted(d)}')
    d.update({k: float(v) for k, v in params.items()})
    return d


# ---------------------------------------------------------------------------
def mug_urdf(params: Dict[str, float], out_dir: str, stem: str) -> str:
    """Write a mug (lathed body + swept handle) URDF; see the module docstring.

    Args:
        params: ``radius`` (outer radius at the bottom, m), ``height`` (m),
            ``wall`` (m), ``taper`` (top radius / bottom radius),
            ``handle_shape`` (0 round, 1 square, 2 ear; rounded down),
            ``handle_size`` (handle height / mug height), ``handle_reach``
            (m the handle's centre line reaches out from the wall),
            ``handle_thickness`` (tube radius, m), ``segments``.
        out_dir: folder for ``<stem>.urdf`` and ``<stem>.obj``.
        stem: file name stem (unique per call: PyBullet caches meshes by
            file name).

    Returns:
        Path of the URDF.

    Raises:
        ValueError: unknown parameter.
    """
    q = _params('mug', params)
    rb, h, w = q['radius'], q['height'], q['wall']
    rt = rb * q['taper']
    seg = int(q['segments'])
    prof = [(0.0, 0.0), (rb, 0.0), (rt, h), (rt - w, h), (rb - w, w), (0.0, w)]
    body = lathe(prof, seg)
    # handle centre line: superellipse in the y-z plane, attached to the wall
    shape = int(q['handle_shape'])
    expo, lean = ((2.0, 0.0), (6.0, 0.0), (2.0, 0.35))[min(max(shape, 0), 2)]
    half = 0.5 * q['handle_size'] * h
    zc = 0.55 * h if shape != 2 else 0.5 * h + 0.1 * half
    half = min(half, 0.95 * min(zc, h - zc))
    reach, thick = q['handle_reach'], q['handle_thickness']
    t = np.linspace(np.pi / 2, -np.pi / 2, 41)   # odd: t = 0 is the middle sample
    ct, st = np.cos(t), np.sin(t)
    # superellipse profile: |cos|^(2/e), |sin|^(2/e) with their signs
    super_cos = np.sign(ct) * np.abs(ct) ** (2 / expo)
    super_sin = np.sign(st) * np.abs(st) ** (2 / expo)
    z = zc + half * super_sin
    r_wall = rb + (rt - rb) * z / h
    y = r_wall - 0.5 * thick + (reach + 0.5 * thick) * super_cos * (1 + lean * super_sin)
    path = np.c_[np.zeros_like(y), y, z]
    handle = tube(path, thick, np.array([1.0, 0, 0]))
    obj = os.path.join(out_dir, f'{stem}.obj')
    write_obj(obj, [body, handle])
    mid = path[len(path) // 2]     # t = 0: the handle's outer middle, on the centre line
    white = (0.92, 0.92, 0.9, 1.0)
    ymax = float(path[:, 1].max()) + thick
    base = (f'<visual><geometry><mesh filename="{os.path.basename(obj)}"/></geometry>'
            f'{_material(white)}</visual>'
            f'<collision><origin xyz="0 0 {h / 2:.6f}"/><geometry><cylinder '
            f'radius="{max(rb, rt):.6f}" length="{h:.6f}"/></geometry></collision>'
            + f'<collision><origin xyz="0 {(rb + ymax) / 2:.6f} {zc:.6f}"/><geometry><box '
            f'size="{2 * thick:.6f} {ymax - rb:.6f} {2 * half + 2 * thick:.6f}"/>'
            '</geometry></collision>')
    parts = [_link('base_link', base)]
    for name, xyz in (('handle_point', mid), ('rim_center', (0, 0, h)),
                      ('bottom_center', (0, 0, 0))):
        parts += [_link(name), _fixed(f'{name}_joint', 'base_link', name, xyz)]
    out = os.path.join(out_dir, f'{stem}.urdf')
    with open(out, 'w') as f:
        f.write(_robot('procedural_mug', parts))
    return out


# nominal cabinet sizes (width y, depth x, height z), m, per variant
_CABINETS = [(0.45, 0.40, 0.55), (0.90, 0.48, 0.80), (0.42, 0.55, 0.70),
             (0.60, 0.58, 0.88), (0.46, 0.62, 1.00), (1.00, 0.45, 0.50)]


def _cabinet_layout(variant: int, W: float, H: float, base_h: float
                    ) -> Tuple[List[Tuple[float, float, float, float]], str]:
    """Drawer/door openings (y_c, z_c, width, height) and what fills the rest.

    The first opening is the labelled drawer; the others are static drawer
    fronts ("drawer") or a door ("door").
    """
    top = H - 0.03
    inner_w = W - 0.04
    body_h = top - base_h
    if variant == 0:    # nightstand: drawer on top, open shelf below
        dh = 0.3 * body_h
        return [(0.0, top - dh / 2, inner_w, dh)], 'shelf'
    if variant in (1, 2):   # dresser / pedestal: three drawers, top one shallower
        hs = np.array([0.28, 0.36, 0.36]) * body_h
        zs = top - np.cumsum(hs) + hs / 2
        return [(0.0, z, inner_w, hh) for z, hh in zip(zs, hs)], 'drawer'
    if variant == 3:    # kitchen base: drawer over a door
        dh = 0.2 * body_h
        return [(0.0, top - dh / 2, inner_w, dh),
                (0.0, base_h + (body_h - dh) / 2, inner_w, body_h - dh)], 'door'
    if variant == 4:    # filing cabinet: two tall drawers
        hh = body_h / 2
        return [(0.0, top - hh / 2, inner_w, hh), (0.0, base_h + hh / 2, inner_w, hh)], 'drawer'
    # chest: two drawers side by side, the left one (seen from the front, -y) labelled
    half = inner_w / 2
    return [(-half / 2, base_h + body_h / 2, half, body_h),
            (half / 2, base_h + body_h / 2, half, body_h)], 'drawer'


def _handle(kind: int, fw: float, fh: float, length_frac: float, rgba) -> Tuple[str, float]:
    """Handle geometry in a frame at the front panel's outer face (+x out).

    Returns:
        (URDF visual/collision text in the handle link frame, x of the
        grip's front-most point relative to the panel face).  The handle
        link frame sits at that front-most point.
    """
    if kind == 1:   # knob
        r, proud = 0.015, 0.03
        return (_cylinder(0.006, proud - r, (-(proud - r) / 2 - r, 0, 0), (0, np.pi / 2, 0),
                          rgba) + _cylinder(r, 0.012, (-0.006, 0, 0), (0, np.pi / 2, 0), rgba),
                proud)
    if kind == 2:   # edge pull: thin strip along the top edge
        L = max(length_frac * fw, 0.05)
        return _box((0.01, L / 2, 0.004), (-0.01, 0, 0), rgba), 0.02
    # bar on two standoffs
    L = max(length_frac * fw, 0.08)
    proud, rb = 0.035, 0.006
    s = (_cylinder(rb, L, (-rb, 0, 0), (np.pi / 2, 0, 0), rgba)
         + _box((proud / 2, 0.005, 0.005), (-proud / 2, -0.4 * L, 0), rgba)
         + _box((proud / 2, 0.005, 0.005), (-proud / 2, 0.4 * L, 0), rgba))
    return s, proud


def cabinet_urdf(params: Dict[str, float], out_dir: str, stem: str) -> str:
    """Write a cabinet with one labelled sliding drawer; see the module docstring.

    Args:
        params: ``variant`` (0..5, rounded down), ``width_scale``,
            ``height_scale``, ``depth_scale`` (factors on the variant's
            nominal size), ``front_style`` (0 overlay: fronts in front of the
            carcass, 1 inset: flush), ``handle_type`` (0 bar, 1 knob, 2
            edge pull), ``handle_length`` (bar length / front width),
            ``front_thickness`` (m), ``gap`` (m between fronts).
        out_dir: folder for ``<stem>.urdf``.
        stem: file name stem.

    Returns:
        Path of the URDF.

    Raises:
        ValueError: unknown parameter.
    """
    q = _params('cabinet', params)
    variant = int(np.clip(int(q['variant']), 0, len(_CABINETS) - 1))
    W0, D0, H0 = _CABINETS[variant]
    W, D, H = W0 * q['width_scale'], D0 * q['depth_scale'], H0 * q['height_scale']
    t, tf, gap = 0.018, q['front_thickness'], q['gap']
    inset = int(q['front_style']) == 1
    wood = (0.62, 0.45, 0.3, 1.0)
    front_rgba = (0.8, 0.78, 0.72, 1.0)
    metal = (0.7, 0.7, 0.72, 1.0)
    base_h = 0.1 if variant in (2, 3) else (0.12 if variant == 0 else 0.04)
    x_front = D / 2                      # carcass front edge
    openings, rest = _cabinet_layout(variant, W, H, base_h)
    # carcass: sides, top, bottom, back (+ worktop, plinth or legs)
    zb = base_h
    carcass = [((D / 2, t / 2, (H - zb) / 2), (0, -(W - t) / 2, zb + (H - zb) / 2)),
               ((D / 2, t / 2, (H - zb) / 2), (0, (W - t) / 2, zb + (H - zb) / 2)),
               ((D / 2, W / 2, t / 2), (0, 0, H - t / 2)),
               ((D / 2, W / 2 - t, t / 2), (0, 0, zb + t / 2)),
               ((t / 2, W / 2 - t, (H - zb) / 2 - t), (-(D - t) / 2, 0, zb + (H - zb) / 2))]
    if variant == 3:    # worktop overhanging the front
        carcass.append(((D / 2 + 0.02, W / 2 + 0.005, 0.015), (0.02, 0, H + 0.015)))
    body = ''.join(_box(he, xyz, wood) for he, xyz in carcass)
    if variant == 0:    # legs
        for sy in (-1, 1):
            for sx in (-1, 1):
                body += _box((0.015, 0.015, zb / 2), (sx * (D / 2 - 0.03), sy * (W / 2 - 0.03),
                                                      zb / 2), wood)
    else:               # plinth, set back
        body += _box((0.01, W / 2 - t, zb / 2), (x_front - 0.05, 0, zb / 2), wood)
    # drawer fronts: overlay ones cover the opening plus half the frame
    grow = 0.0 if inset else t - gap
    x_face = x_front if inset else x_front + tf
    fronts = []
    for (yc, zc, ow, oh) in openings:
        fronts.append((yc, zc, ow - gap + grow, oh - gap + grow))
    for (yc, zc, fw, fh) in fronts[1:]:   # static fronts / door, with the same handle kind
        body += _box((tf / 2, fw / 2, fh / 2), (x_face - tf / 2, yc, zc), front_rgba)
        hz = zc + (0.3 * fh if rest == 'door' else 0.0)
        hs, _ = _handle(int(q['handle_type']), fw, fh, q['handle_length'], metal)
        body += _offset(hs, (x_face, yc, hz))
    if rest == 'shelf':
        body += _box((D / 2 - t, W / 2 - t, t / 2), (0, 0, zb + 0.45 * (H - zb)), wood)
    yc, zc, fw, fh = fronts[0]
    # the labelled drawer: frame at the centre of the front's outer face
    depth = D - 2 * t - 0.01
    bh = max(openings[0][3] - 0.04, 0.04)
    drawer = (_box((tf / 2, fw / 2, fh / 2), (-tf / 2, 0, 0), front_rgba)
              + _box((depth / 2, openings[0][2] / 2 - 0.01, 0.006),
                     (-tf - depth / 2, 0, -bh / 2), wood)
              + ''.join(_box((depth / 2, 0.006, bh / 2), (-tf - depth / 2, s * (openings[0][2] / 2
                                                                                - 0.016), 0),
                             wood) for s in (-1, 1))
              + _box((0.006, openings[0][2] / 2 - 0.01, bh / 2), (-tf - depth, 0, 0), wood))
    hs, proud = _handle(int(q['handle_type']), fw, fh, q['handle_length'], metal)
    hz = fh / 2 - 0.03 if int(q['handle_type']) == 2 else 0.0
    parts = [_link('base_link', body), _link('drawer', drawer),
             f'<joint name="drawer_joint" type="prismatic"><parent link="base_link"/>'
             f'<child link="drawer"/><origin xyz="{_xyz((x_face, yc, zc))}"/>'
             f'<axis xyz="1 0 0"/><limit lower="0" upper="{0.8 * D:.6f}" effort="10" '
             f'velocity="1"/></joint>',
             _link('drawer_handle', _offset(hs, (-proud, 0.0, 0.0))),
             _fixed('drawer_handle_joint', 'drawer', 'drawer_handle', (proud, 0, hz))]
    corners = {'front_top_left': (0, -fw / 2, fh / 2), 'front_top_right': (0, fw / 2, fh / 2),
               'front_bottom_right': (0, fw / 2, -fh / 2),
               'front_bottom_left': (0, -fw / 2, -fh / 2)}
    for name, xyz in corners.items():
        parts += [_link(name), _fixed(f'{name}_joint', 'drawer', name, xyz)]
    out = os.path.join(out_dir, f'{stem}.urdf')
    with open(out, 'w') as f:
        f.write(_robot('procedural_cabinet', parts))
    return out


def _offset(geom: str, d) -> str:
    """Add ``d`` to every ``<origin xyz=...>`` in a URDF fragment."""
    out, key = [], '<origin xyz="'
    rest = geom
    while key in rest:
        pre, post = rest.split(key, 1)
        vals, post = post.split('"', 1)
        p = np.array([float(x) for x in vals.split()]) + np.asarray(d, np.float64)
        out.append(pre + key + _xyz(p) + '"')
        rest = post
    return ''.join(out) + rest


#: family name -> writer
FAMILIES: Dict[str, Callable[[Dict[str, float], str, str], str]] = {
    'mug': mug_urdf, 'cabinet': cabinet_urdf}
