"""How a face model trained on real faces reads the demo's AU warps: each AU's blendshape response (issue 26).

    python benchmarks/demo_expressions.py --label after     # the rig as it is now, into results/demo_expressions.json
    python benchmarks/demo_expressions.py --table           # before/after as markdown (README, docs/stages.md)

Every AU the generator animates is drawn at full intensity (`render_portrait`, the compositor's own face
drawing) on the demo's real photos and read by MediaPipe's Face Landmarker; its zero-shot score
(`features.mesh.AU_BLENDSHAPES`) is compared with the same face unwarped. Per AU: the neutral score, the mean
change and on how many faces it rises, over all identities and separately over the 12 that
tests/data/demo/test_demo_expressions.py checks (the others are where a warp may be tried out), plus the
largest change of any *other* AU's score (cross-talk: a lip warp that also reads as a smile is not faithful).
Each run is stored under its label, so a warp change keeps its before beside its after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pipeline_lib.data.demo.identities import identity_pool, load_identity  # noqa: E402
from pipeline_lib.data.demo.render import render_portrait  # noqa: E402
from pipeline_lib.data.demo.rig import AU_TABLE, build_rig  # noqa: E402
from pipeline_lib.data.labels import AU_NAMES  # noqa: E402
from pipeline_lib.faces.mesh import FaceMesh  # noqa: E402
from pipeline_lib.features.mesh import AU_BLENDSHAPES, blendshape_au_scores, mesh_features  # noqa: E402

RESULTS = HERE / "results" / "demo_expressions.json"
CHECKED = 12  # the first identities of the pool: the ones the test checks
POOL = 24


def responses(names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names the landmarker found in every drawing, neutral scores (n, 12), scores with each AU at 1.0
    (n, 12 drawn AUs, 12 scores))."""
    found, neutral, drawn = [], [], []
    with FaceMesh() as mesh:
        for name in names:
            identity, rig = load_identity(name), build_rig(name)
            faces = np.stack([render_portrait(identity, rig, aus)[0] for aus in np.eye(13, 12, k=-1)])  # neutral, AUs
            features, valid = mesh_features(mesh.run(faces))
            if valid.all():
                scores = blendshape_au_scores(features)  # (13, 12)
                found.append(name)
                neutral.append(scores[0])
                drawn.append(scores[1:])
    return found, np.stack(neutral), np.stack(drawn)


def summarise(names: list[str], neutral: np.ndarray, drawn: np.ndarray) -> dict[str, Any]:
    checked = np.array([n in identity_pool(POOL)[:CHECKED] for n in names])
    change = drawn - neutral[:, None, :]  # (n, drawn AU, score AU)
    rows = {}
    for a, au in enumerate(AU_NAMES):
        if not AU_TABLE[au]:
            continue
        own = change[:, a, a]
        others = np.delete(change[:, a].mean(0), a)
        worst = int(np.argmax(np.abs(others)))
        other_names = [n for n in AU_NAMES if n != au]
        rows[au] = {"blendshapes": " + ".join(AU_BLENDSHAPES[au]), "neutral": round(float(neutral[:, a].mean()), 3),
                    "change": round(float(own.mean()), 3), "faces_up": int((own > 0).sum()), "faces": len(own),
                    "change_checked": round(float(own[checked].mean()), 3),
                    "change_others": round(float(own[~checked].mean()), 3),
                    "cross_talk": {"au": other_names[worst], "change": round(float(others[worst]), 3)}}
    return rows


def table(results: dict[str, Any]) -> str:
    labels = list(results["runs"])
    head = "| AU | blendshapes | neutral | " + " | ".join(f"change, {lab} (faces up)" for lab in labels) + " |"
    lines = [head, "| " + " | ".join(["---"] * (3 + len(labels))) + " |"]
    last = results["runs"][labels[-1]]["aus"]
    for au, row in last.items():
        cells = []
        for lab in labels:
            r = results["runs"][lab]["aus"].get(au)
            cells.append(f"{r['change']:+.3f} ({r['faces_up']}/{r['faces']})" if r else "")
        lines.append(f"| {au} | {row['blendshapes']} | {row['neutral']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="current", help="name of this run in the results (e.g. before, after)")
    parser.add_argument("--table", action="store_true", help="print the stored runs as markdown and stop")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    if args.table:
        print(table(results))
        return
    start = time.perf_counter()
    names, neutral, drawn = responses(identity_pool(POOL))
    results["runs"][args.label] = {"identities": len(identity_pool(POOL)), "found": len(names),
                                   "seconds": round(time.perf_counter() - start, 1), "au_table": AU_TABLE,
                                   "aus": summarise(names, neutral, drawn)}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
