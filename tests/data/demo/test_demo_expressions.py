"""The demo's AU warps, read by a face model trained on real faces: each moves the blendshapes its AU moves.

Every AU the generator animates is drawn at full intensity on real photos (the demo's identities) and
compared with the same face unwarped, through MediaPipe's Face Landmarker and the zero-shot map
`features.mesh.AU_BLENDSHAPES`. The table of these responses:
docs/stages.md, 'Face mesh (`mesh`) and the zero-shot AU baseline'.
"""

import numpy as np
import pytest

from pipeline_lib.data.demo.identities import identity_pool, load_identity
from pipeline_lib.data.demo.render import render_portrait
from pipeline_lib.data.demo.rig import AU_TABLE, build_rig
from pipeline_lib.data.labels import AU_NAMES
from pipeline_lib.faces.mesh import FaceMesh
from pipeline_lib.features.mesh import blendshape_au_scores, mesh_features

IDENTITIES = 12


@pytest.fixture(scope="module")
def responses() -> np.ndarray:
    """(identities, 12) each AU's mapped score with the AU drawn at 1.0 minus the same face's neutral score."""
    out = []
    with FaceMesh() as mesh:
        for name in identity_pool(24)[:IDENTITIES]:
            identity, rig = load_identity(name), build_rig(name)
            faces = np.stack([render_portrait(identity, rig, aus)[0] for aus in np.eye(13, 12, k=-1)])  # neutral, AUs
            features, valid = mesh_features(mesh.run(faces))
            if valid.all():
                scores = blendshape_au_scores(features)  # (13, 12)
                out.append(np.diagonal(scores[1:]) - scores[0])
    return np.stack(out)


def test_the_landmarker_finds_nearly_every_demo_face(responses):
    assert len(responses) >= IDENTITIES - 2


@pytest.mark.parametrize("au", [a for a in AU_NAMES if AU_TABLE[a]])
def test_each_au_warp_raises_its_blendshapes(responses, au):
    rise = responses[:, AU_NAMES.index(au)]
    assert rise.mean() > 0.01, f"{au}: mean change {rise.mean():+.3f}"
    assert (rise > 0).sum() > len(rise) / 2, f"{au}: up on {(rise > 0).sum()} of {len(rise)} faces"
