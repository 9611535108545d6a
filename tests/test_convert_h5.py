"""Keras 2 HDF5 conversion on h5py-built files and the real-world checkpoints (no TF needed)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import ckptfix
from ckptfix.h5util import read_attr_list
from tests.conftest import sha256
from tests.h5build import REALWORLD_FILES, read_single, wrap_single_file, write_layers


def rng_layers(spec: list[tuple[str, list[tuple[str, tuple[int, ...]]]]], seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(n, [(w, rng.standard_normal(s).astype("float32")) for w, s in ws]) for n, ws in spec]


def assert_same_as_single(out: Path, single: Path) -> None:
    """The converted file holds the single model's weighted layers, names and bytes."""
    names, weights, _ = read_single(single)
    onames, oweights, _ = read_single(out)
    want = [(n, [w for w, _ in weights[n]]) for n in names if weights[n]]
    got = [(n, [w for w, _ in oweights[n]]) for n in onames if oweights[n]]
    assert got == want
    for n, _ws in want:
        for (w, a), (w2, b) in zip(weights[n], oweights[n], strict=True):
            assert w == w2 and a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", sorted(REALWORLD_FILES))
def test_realworld_file_is_reported_single_and_not_touched(realworld, tmp_path, name):
    src = realworld / name
    before = sha256(src)
    report = ckptfix.inspect_checkpoint(src)
    assert not report.parallel and not report.wrapped and report.convert_command is None
    with h5py.File(src) as f:
        root = f["model_weights"] if "model_weights" in f else f
        n_tensors = sum(
            len(read_attr_list(root[n], "weight_names")) for n in root.attrs["layer_names"]
        )
    assert report.tensors == n_tensors
    with pytest.raises(ckptfix.NothingToConvertError, match="already|single model"):
        ckptfix.convert_checkpoint(src, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    assert list(tmp_path.iterdir()) == []
    assert sha256(src) == before


@pytest.mark.parametrize("name", sorted(REALWORLD_FILES))
@pytest.mark.parametrize("replicas", [2, 3])
def test_parallel_version_of_realworld_file_converts_back_exactly(
    realworld, tmp_path, name, replicas
):
    outputs, inputs = REALWORLD_FILES[name]
    single = realworld / name
    par = tmp_path / "parallel.h5"
    wrap_single_file(single, par, replicas=replicas, outputs=outputs, inputs=inputs)
    before = sha256(par)
    report = ckptfix.inspect_checkpoint(par)
    assert report.parallel and report.template == "model_1"
    assert report.replicas == replicas
    out = tmp_path / "single.h5"
    weights_only = "model_weights" not in h5py.File(single, "r")
    if weights_only:  # no layout recorded: inferred by default, refused when exact is asked
        with pytest.raises(ckptfix.LayoutUnknownError, match="exact=True.*reference="):
            ckptfix.convert_checkpoint(par, out, exact=True)
        assert not out.exists()
    result = ckptfix.convert_checkpoint(par, out)
    assert result.verified and result.template == "model_1" and result.replicas == replicas
    assert_same_as_single(out, single)
    assert sha256(par) == before
    with h5py.File(single) as s, h5py.File(out) as o:
        if "model_config" in s.attrs:  # full model: exact layout from the file's own config
            assert result.layout == "exact" and result.layout_source == "config"
            assert json.loads(o.attrs["model_config"]) == json.loads(s.attrs["model_config"])
            assert o.attrs.get("training_config") == s.attrs.get("training_config")
            if "optimizer_weights" in s:
                assert read_attr_list(o["optimizer_weights"], "weight_names") == read_attr_list(
                    s["optimizer_weights"], "weight_names"
                )
        else:
            assert result.layout == "inferred" and result.layout_source == "names"
        assert o.attrs["keras_version"] == s.attrs["keras_version"]


def test_reference_single_file_makes_weights_only_exact(realworld, tmp_path):
    single = realworld / "neurowriter__chupitos.h5"
    # a weights-only parallel file: drop the config by wrapping a weights-only copy
    wonly = tmp_path / "single_weights.h5"
    names, weights, _ = read_single(single)
    with h5py.File(wonly, "w") as f:
        write_layers(f, [(n, weights[n]) for n in names])
    par = tmp_path / "parallel.h5"
    wrap_single_file(wonly, par, outputs=("dense_1",))
    result = ckptfix.convert_checkpoint(par, tmp_path / "o.h5", reference=single)
    assert (result.layout, result.layout_source) == ("exact", "reference")
    assert_same_as_single(tmp_path / "o.h5", wonly)


def test_names_without_colon_zero_and_str_attributes(tmp_path):
    layers = rng_layers(
        [
            ("dense_1", [("dense_1/kernel", (3, 4)), ("dense_1/bias", (4,))]),
            ("dense_2", [("dense_2/kernel", (4, 2)), ("dense_2/bias", (2,))]),
        ]
    )
    single = tmp_path / "single.h5"
    with h5py.File(single, "w") as f:
        write_layers(f, layers, as_bytes=False)
    par = tmp_path / "par.h5"
    wrap_single_file(single, par, outputs=("dense_2",))
    # rewrite the parallel file's names as variable-length str, like Keras 2.8 writes them
    with h5py.File(par, "r+") as f:
        names = read_attr_list(f, "layer_names")
        f.attrs["layer_names"] = np.asarray(names, dtype=h5py.string_dtype())
    out = tmp_path / "out.h5"
    r = ckptfix.convert_checkpoint(par, out)
    assert r.layout == "inferred" and r.tensors == 4
    assert_same_as_single(out, single)


def test_chunked_layer_names_and_weight_names(tmp_path):
    spec = [
        (
            f"a_rather_long_layer_name_to_force_chunking_{i:04d}",
            [(f"a_rather_long_layer_name_to_force_chunking_{i:04d}/kernel:0", (2, 2))],
        )
        for i in range(1500)
    ]
    single = tmp_path / "single.h5"
    with h5py.File(single, "w") as f:
        write_layers(f, rng_layers(spec), chunk_layer_names=True)
        assert "layer_names0" in f.attrs and "layer_names" not in f.attrs
    par = tmp_path / "par.h5"
    wrap_single_file(single, par, outputs=(spec[-1][0],))
    with h5py.File(par) as f:
        assert "weight_names0" in f["model_1"].attrs
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(par, out)
    with h5py.File(out) as f:
        assert "layer_names0" in f.attrs
        assert len(read_attr_list(f, "layer_names")) == 1500
    assert_same_as_single(out, single)


def test_dataset_options_are_kept(tmp_path):
    par = tmp_path / "par.h5"
    with h5py.File(par, "w") as f:
        write_layers(f, [("input_1", []), ("lambda_1", []), ("lambda_2", [])])
        f.attrs["layer_names"] = np.asarray(
            [b"input_1", b"lambda_1", b"lambda_2", b"model_1", b"out"]
        )
        f.create_group("out").attrs["weight_names"] = np.zeros((0,), "f8")
        g = f.create_group("model_1")
        g.attrs["weight_names"] = np.asarray([b"conv/kernel:0", b"out/kernel:0", b"out/bias:0"])
        data = np.arange(64 * 64, dtype="float16").reshape(64, 64)
        g.create_dataset(
            "conv/kernel:0", data=data, chunks=(16, 16), compression="gzip", shuffle=True
        )
        g.create_dataset("out/kernel:0", data=np.ones((64, 2), "float64"))
        g.create_dataset("out/bias:0", data=np.zeros((2,), "float64"))
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(par, out)
    with h5py.File(out) as f:
        ds = f["conv/conv/kernel:0"]
        assert ds.chunks == (16, 16) and ds.compression == "gzip" and ds.shuffle
        assert ds.dtype == np.float16 and np.array_equal(ds[()], data)
        assert read_attr_list(f, "layer_names") == ["conv", "out"]
        assert f["out/out/bias:0"].dtype == np.float64


def test_empty_groups_and_weightless_template_layers(tmp_path):
    """Weightless layers (empty weight_names stored as an empty float array) are skipped."""
    single = tmp_path / "single.h5"
    layers = rng_layers(
        [("flatten_1", []), ("dense_1", [("dense_1/kernel:0", (4, 2))]), ("dropout_1", [])]
    )
    with h5py.File(single, "w") as f:
        write_layers(f, layers)
    par = tmp_path / "par.h5"
    wrap_single_file(single, par, outputs=("dropout_1",))
    # a nested template with one layer looks like a plain layer by names: its weights are
    # stored under 'dense_1/...' in group 'model_1', which is enough to see it is nested
    r = ckptfix.convert_checkpoint(par, tmp_path / "o.h5")
    assert r.layers == 1 and r.tensors == 1


def test_several_nested_models_need_template(tmp_path):
    par = tmp_path / "ae.h5"
    with h5py.File(par, "w") as f:
        write_layers(
            f,
            rng_layers(
                [
                    ("input_1", []),
                    ("encoder", [("enc_dense/kernel:0", (4, 2)), ("enc_dense/bias:0", (2,))]),
                    ("decoder", [("dec_dense/kernel:0", (2, 4)), ("dec_dense/bias:0", (4,))]),
                ]
            ),
        )
    with pytest.raises(
        ckptfix.AmbiguousTemplateError, match=r"found 2 \(encoder, decoder\); pass template="
    ):
        ckptfix.convert_checkpoint(par, tmp_path / "o.h5")
    with pytest.raises(
        ckptfix.TemplateNotFoundError, match="nested models in the file: encoder, decoder"
    ):
        ckptfix.convert_checkpoint(par, tmp_path / "o.h5", template="nope")
    r = ckptfix.convert_checkpoint(par, tmp_path / "o.h5", template="decoder")
    assert r.template == "decoder" and r.tensors == 2 and not r.replicas
    assert any("dropped" in w for w in r.warnings)
    with h5py.File(tmp_path / "o.h5") as f:
        assert read_attr_list(f, "layer_names") == ["dec_dense"]


def test_frozen_layer_in_tail_is_refused_without_reference(tmp_path):
    """dense_2 is frozen: its weights sit after the moving statistics; its place is unknowable."""
    nested = rng_layers(
        [
            (
                "model_1",
                [
                    ("dense_1/kernel:0", (3, 4)),
                    ("bn/gamma:0", (4,)),
                    ("bn/beta:0", (4,)),
                    ("dense_3/kernel:0", (4, 2)),
                    ("bn/moving_mean:0", (4,)),
                    ("bn/moving_variance:0", (4,)),
                    ("dense_2/kernel:0", (4, 4)),
                ],
            )
        ]
    )
    par = tmp_path / "par.h5"
    with h5py.File(par, "w") as f:
        write_layers(
            f, [("input_1", []), ("lambda_1", []), ("lambda_2", []), *nested, ("dense_3", [])]
        )
    before = sha256(par)
    with pytest.raises(ckptfix.LayoutError, match="dense_2.*frozen.*reference="):
        ckptfix.convert_checkpoint(par, tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists() and sha256(par) == before
    report = ckptfix.inspect_checkpoint(par)
    assert report.parallel and report.replicas == 2 and report.layout is None
    assert "frozen" in (report.layout_note or "")
    # the template's JSON config makes it exact
    cfg = {
        "class_name": "Functional",
        "config": {
            "name": "model_1",
            "layers": [
                {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}},
                {"class_name": "Dense", "name": "dense_1", "config": {"name": "dense_1"}},
                {"class_name": "BatchNormalization", "name": "bn", "config": {"name": "bn"}},
                {
                    "class_name": "Dense",
                    "name": "dense_2",
                    "config": {"name": "dense_2", "trainable": False},
                },
                {"class_name": "Dense", "name": "dense_3", "config": {"name": "dense_3"}},
            ],
        },
    }
    ref = tmp_path / "template.json"
    ref.write_text(json.dumps(cfg))
    r = ckptfix.convert_checkpoint(par, tmp_path / "o.h5", reference=ref)
    assert (r.layout, r.layout_source) == ("exact", "reference")
    with h5py.File(tmp_path / "o.h5") as f:
        assert read_attr_list(f, "layer_names") == [
            "input_1",
            "dense_1",
            "bn",
            "dense_2",
            "dense_3",
        ]
        assert read_attr_list(f["bn"], "weight_names") == [
            "bn/gamma:0",
            "bn/beta:0",
            "bn/moving_mean:0",
            "bn/moving_variance:0",
        ]


@pytest.mark.parametrize(
    "merge,why",
    [
        # Keras 2.0.9 named the merge layers concatenate_N: only the numbers tell
        ("concatenate_1", "creation order; found .dense_1. after a later-numbered dense"),
        # later Keras named them after the outputs: dense_1 comes after the output layer
        ("dense_2", "layer 'dense_1' holds only non-trainable.*after the output layer 'dense_2'"),
    ],
)
def test_out_of_order_auto_names_are_refused(tmp_path, merge, why):
    """A frozen dense_1 at the tail start shows as a number out of creation order."""
    nested = rng_layers([("model_1", [("dense_2/kernel:0", (4, 4)), ("dense_1/kernel:0", (3, 4))])])
    par = tmp_path / "par.h5"
    with h5py.File(par, "w") as f:
        write_layers(f, [("input_1", []), ("lambda_1", []), ("lambda_2", []), *nested, (merge, [])])
    with pytest.raises(ckptfix.LayoutError, match=why):
        ckptfix.convert_checkpoint(par, tmp_path / "o.h5")


BN_LAST = [
    ("dense/kernel:0", (3, 4)),
    ("dense/bias:0", (4,)),
    ("batch_normalization/gamma:0", (4,)),
    ("batch_normalization/beta:0", (4,)),
    ("batch_normalization/moving_mean:0", (4,)),
    ("batch_normalization/moving_variance:0", (4,)),
]


@pytest.mark.parametrize(
    "merge,refused",
    [
        # the output layer holds no weights: a trainable BN at the end and a frozen BN before
        # dense store the same list, so the order is unknowable
        ("activation", "either the template's last layer with weights or a frozen layer"),
        # the BN is the output layer, so it comes last: trainable or not, its place is known
        ("batch_normalization", None),
    ],
)
def test_statistics_starting_the_tail_inside_a_run(tmp_path, merge, refused):
    nested = rng_layers([("model_1", BN_LAST)])
    par = tmp_path / "par.h5"
    with h5py.File(par, "w") as f:
        write_layers(f, [("input_1", []), ("lambda_1", []), ("lambda_2", []), *nested, (merge, [])])
    out = tmp_path / "o.h5"
    if refused:
        with pytest.raises(ckptfix.LayoutError, match=refused):
            ckptfix.convert_checkpoint(par, out)
        assert not out.exists()
        return
    r = ckptfix.convert_checkpoint(par, out)
    assert r.layout == "inferred" and r.layers == 2
    names, weights, _ = read_single(out)
    assert [n for n in names if weights[n]] == ["dense", "batch_normalization"]
    assert [w for w, _ in weights["batch_normalization"]] == [w for w, _ in BN_LAST[2:]]


def test_reference_that_does_not_match_is_refused(tmp_path, realworld):
    single = realworld / "DeepAnomaly__lstm_model.h5"
    par = tmp_path / "par.h5"
    wrap_single_file(single, par, outputs=("activation_3",))
    # another model's full-model .h5: its config names none of the template's weights
    with pytest.raises(ckptfix.ReferenceMismatchError, match="'lstm_1/kernel:0' matches none"):
        ckptfix.convert_checkpoint(
            par, tmp_path / "o.h5", reference=realworld / "neurowriter__chupitos.h5"
        )
    with pytest.raises(ckptfix.ReferenceMismatchError, match="itself a parallel"):
        ckptfix.convert_checkpoint(par, tmp_path / "o.h5", reference=par)
    assert not (tmp_path / "o.h5").exists()


def test_destination_rules(tmp_path, realworld):
    par = tmp_path / "par.h5"
    wrap_single_file(realworld / "DeepAnomaly__lstm_model.h5", par, outputs=("activation_3",))
    with pytest.raises(ckptfix.OutputError, match="other than the source"):
        ckptfix.convert_checkpoint(par, par, force=True)
    (tmp_path / "link.h5").symlink_to(par)
    with pytest.raises(ckptfix.OutputError, match="other than the source"):
        ckptfix.convert_checkpoint(par, tmp_path / "link.h5", force=True)
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(ckptfix.OutputError, match="force=True"):
        ckptfix.convert_checkpoint(par, out)
    assert out.read_bytes() == b"keep me"
    ckptfix.convert_checkpoint(par, out, force=True)
    assert ckptfix.verify_conversion(par, out).ok
    with pytest.raises(ckptfix.OutputError, match="create it first"):
        ckptfix.convert_checkpoint(par, tmp_path / "missing" / "out.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "out.h5", "par.h5"]


def test_verify_detects_a_changed_tensor(tmp_path, realworld):
    par = tmp_path / "par.h5"
    wrap_single_file(realworld / "DeepAnomaly__lstm_model.h5", par, outputs=("activation_3",))
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(par, out)
    with h5py.File(out, "r+") as f:
        ds = f["dense_2/dense_2/bias:0"]
        ds[0] = ds[0] + 1
    v = ckptfix.verify_conversion(par, out)
    assert not v.ok and any("dense_2/bias:0" in m for m in v.mismatches)
