#!/usr/bin/env bash
# The main job on a bundled parallel checkpoint: inspect it, convert it (full model and
# weights-only), load the results into the single model with Keras, and check them: arrays bit
# for bit against the trained template's own file, predictions within a stated tolerance.
# Exits 0 when every check passes.
set -euo pipefail
# `python3 -m ckptfix` is the `ckptfix` command; it works before a shell has rehashed new scripts.
cd "$(dirname "$0")/.."
repo=$PWD
case_dir=fixtures/keras2/dense_bn
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "\$ ckptfix inspect $case_dir/parallel_model.h5"
python3 -m ckptfix inspect "$case_dir/parallel_model.h5"
cd "$out"  # the converted files are written here, a temporary folder
echo
echo "\$ ckptfix convert $case_dir/parallel_model.h5 single.h5"
python3 -m ckptfix convert "$repo/$case_dir/parallel_model.h5" single.h5
echo
echo "\$ ckptfix convert $case_dir/parallel_weights.h5 single_weights.h5"
python3 -m ckptfix convert "$repo/$case_dir/parallel_weights.h5" single_weights.h5
echo
echo "\$ ckptfix convert $case_dir/parallel_weights.h5 exact_weights.h5 --reference $case_dir/template.json"
python3 -m ckptfix convert "$repo/$case_dir/parallel_weights.h5" exact_weights.h5 \
    --reference "$repo/$case_dir/template.json"
echo
echo "\$ python examples/load_single.py $case_dir single.h5 single_weights.h5 exact_weights.h5"
python3 "$repo/examples/load_single.py" "$repo/$case_dir" single.h5 single_weights.h5 \
    exact_weights.h5
