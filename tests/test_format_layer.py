"""The format layer: one registry, options checked, one verifier that catches a tampered output.

Every format is exercised the same way: an option it does not support is a usage error (never
ignored), a progress callback is called, and an output changed after it was written — by the
writer itself (write-time verification) or later (``verify``) — is caught, per tensor.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import h5py
import pytest

import ckptfix
from ckptfix import formats
from ckptfix.checkpoint import H5Location
from ckptfix.errors import ExitCode
from ckptfix.formats.base import Written
from ckptfix.h5util import member_offset
from ckptfix.layout import ModelShapes
from tests.conftest import FIXTURES, sha256

K2, K3 = FIXTURES / "keras2", FIXTURES / "keras3"

#: (source, destination name) per format: a parallel file and what it converts to.
CASES = {
    "keras2-h5-weights": (K2 / "dense_bn" / "parallel_weights.h5", "single.h5"),
    "keras2-h5-model": (K2 / "dense_bn" / "parallel_model.h5", "single.h5"),
    "keras3-weights": (K3 / "parallel" / "wrapper.weights.h5", "single.weights.h5"),
    "keras3-archive": (K3 / "parallel" / "wrapper.keras", "single.keras"),
}


def test_registry_reads_every_documented_format() -> None:
    ids = {fid for f in formats.registry() for fid in f.ids}
    assert set(CASES) <= ids
    for fid, (src, _) in CASES.items():
        fmt, got = formats.sniff(src)
        assert got == fid and fid in fmt.ids
        assert fmt.read_options and "template" in fmt.read_options
        assert "progress" in fmt.write_options


@pytest.mark.parametrize("fid", sorted(CASES))
def test_progress_is_called_for_every_format(tmp_path: Path, fid: str) -> None:
    src, name = CASES[fid]
    calls: list[tuple[int, int]] = []
    r = ckptfix.convert_checkpoint(src, tmp_path / name, progress=lambda d, t: calls.append((d, t)))
    assert r.verified and r.output_format is not None
    assert calls and calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 0


@pytest.mark.parametrize("fid", ["keras3-weights", "keras3-archive"])
@pytest.mark.parametrize(
    "option",
    [{"reference": "/nonexistent.json"}, {"model": ModelShapes(layers=())}],  # a model as data
    ids=["reference", "model"],
)
def test_keras3_refuses_options_it_cannot_use(tmp_path: Path, fid: str, option: dict) -> None:
    src, name = CASES[fid]
    with pytest.raises(ckptfix.OptionNotSupportedError) as exc:
        ckptfix.convert_checkpoint(src, tmp_path / name, **option)
    assert exc.value.exit_code == ExitCode.USAGE
    assert f"found {next(iter(option))}=" in str(exc.value)
    assert "object paths" in str(exc.value)  # why it does not apply
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ckptfix.OptionNotSupportedError):
        ckptfix.inspect_checkpoint(src, reference="/nonexistent.json")


def test_keras2_takes_every_layout_option(tmp_path: Path) -> None:
    src = K2 / "dense_bn" / "parallel_weights.h5"
    r = ckptfix.convert_checkpoint(
        src, tmp_path / "a.h5", reference=K2 / "dense_bn" / "template.json", template="model"
    )
    assert (r.layout, r.layout_source) == ("exact", "reference")
    with pytest.raises(ckptfix.InputError):  # a reference that is not there: bad input (5)
        ckptfix.convert_checkpoint(src, tmp_path / "b.h5", reference=tmp_path / "none.json")


def test_cli_reports_an_unsupported_option_as_usage(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ckptfix.cli import app

    src, _ = CASES["keras3-weights"]
    ref = K2 / "dense_bn" / "template.json"
    dst = tmp_path / "o.weights.h5"
    r = CliRunner().invoke(app, ["convert", str(src), str(dst), "-r", str(ref)])
    assert r.exit_code == 2
    assert "found --reference" in r.output and "\n" not in r.output.strip()


# --- tampering ----------------------------------------------------------------------------------


def _first_weight(ck: ckptfix.Checkpoint) -> H5Location:
    loc = next(layer for layer in ck.model.leaves() if layer.weights).weights[0].tensor.location
    assert isinstance(loc, H5Location)
    return loc


def _first_tensor(written: Written) -> tuple[str, str | None]:
    t = written.tensors[0]
    return t.path, written.member


def _flip_tensor(path: Path, dataset: str, member: str | None) -> None:
    """Flip one stored byte of ``dataset`` in ``path`` (inside its zip member for .keras)."""
    base = 0
    if member is not None:
        with zipfile.ZipFile(path) as zf:
            base = member_offset(path, zf.getinfo(member))
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            import io

            data = io.BytesIO(fh.read())
        with h5py.File(data, "r") as f:
            ds = f[dataset]
            offset = base + f.userblock_size + ds.id.get_offset()
    else:
        with h5py.File(path, "r") as f:
            ds = f[dataset]
            offset = f.userblock_size + ds.id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize("fid", sorted(CASES))
def test_a_writer_that_corrupts_its_output_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fid: str
) -> None:
    """Write-time verification: nothing is renamed into place, the tensor is named."""
    src, name = CASES[fid]
    before = sha256(src)
    fmt = formats.by_id(formats.writer_for(tmp_path / name, ckptfix.read_checkpoint(src))[1])
    real = type(fmt).write

    def corrupting(self, ck, tmp, options):  # type: ignore[no-untyped-def]
        written = real(self, ck, tmp, options)
        dataset, member = _first_tensor(written)
        _flip_tensor(tmp, dataset, member)
        return written

    monkeypatch.setattr(type(fmt), "write", corrupting)
    with pytest.raises(ckptfix.VerificationError) as exc:  # in this process: the patch applies
        ckptfix.convert_checkpoint(src, tmp_path / name, timeout=None)
    assert "bytes differ" in str(exc.value) or "fails its CRC" in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary left
    assert sha256(src) == before


@pytest.mark.parametrize("fid", sorted(CASES))
def test_verify_catches_a_tensor_changed_later(tmp_path: Path, fid: str) -> None:
    src, name = CASES[fid]
    out = tmp_path / name
    ckptfix.convert_checkpoint(src, out)
    assert ckptfix.verify_conversion(src, out).ok
    ck = ckptfix.read_checkpoint(out)
    loc = _first_weight(ck)
    _flip_tensor(out, loc.path, loc.member)
    v = ckptfix.verify_conversion(src, out)
    assert not v.ok and any("bytes differ" in m for m in v.mismatches), v.mismatches


@pytest.mark.parametrize("fid", ["keras3-weights", "keras2-h5-weights"])
def test_verify_catches_a_stray_and_a_missing_tensor(tmp_path: Path, fid: str) -> None:
    src, name = CASES[fid]
    out = tmp_path / name
    ckptfix.convert_checkpoint(src, out)
    loc = _first_weight(ckptfix.read_checkpoint(out))
    with h5py.File(out, "r+") as f:
        f.create_dataset("smuggled", data=[1.0])
    v = ckptfix.verify_conversion(src, out)
    assert not v.ok and "/smuggled: not in the template" in v.mismatches
    with h5py.File(out, "r+") as f:
        del f["smuggled"]
        f.move(loc.path, loc.path + "_moved")
    # Keras 2: weight_names lists it; Keras 3: a vars group holds a non-numbered key. Either
    # way DST is damaged: bad input (exit 5), not a mismatch.
    with pytest.raises(ckptfix.CorruptCheckpointError):
        ckptfix.verify_conversion(src, out)


def test_verification_counts_optimizer_tensors_apart(tmp_path: Path) -> None:
    src = K2 / "dense_bn" / "parallel_model.h5"
    out = tmp_path / "single.h5"
    ckptfix.convert_checkpoint(src, out)
    v = ckptfix.verify_conversion(src, out)
    ck = ckptfix.read_checkpoint(src)
    assert ck.optimizer is not None
    assert v.ok and v.tensors == 8 and v.optimizer_tensors == len(ck.optimizer.variables)


def test_checkpoint_is_format_neutral() -> None:
    """Every reader gives the same shape of answer: layers in load order, handles, no values."""
    for fid, (src, _) in CASES.items():
        ck = ckptfix.read_checkpoint(src)
        assert ck.format == fid and ck.template is not None and ck.pattern.parallel
        leaves = [layer for layer in ck.template.leaves() if layer.weights]
        assert {layer.name for layer in leaves} >= {"dense"} or {"hidden", "probs"} <= {
            layer.name for layer in leaves
        }
        for layer in leaves:
            for w in layer.weights:
                assert w.tensor.nbytes == w.tensor.size * (2 if "16" in w.tensor.dtype else 4)
                assert isinstance(w.tensor.location, H5Location)
        assert replace(ck, notes=()).pattern == ck.pattern  # frozen, comparable
