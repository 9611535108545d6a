"""Safety guarantees: atomic output under SIGKILL, disk full, paths, input never modified,
no code from a checkpoint ever runs.

Every test that reads an input checks its hash afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import ckptfix
from ckptfix.cli import app
from ckptfix.output import TEMP_MARK, clean_stale_temps

from .conftest import FIXTURES, ROOT, sha256
from .h5build import write_layers

SRC_FIXTURE = FIXTURES / "keras2" / "dense_bn" / "parallel_model.h5"


def big_parallel_file(path: Path, layers: int = 8, rows: int = 1250) -> Path:
    """A multi_gpu_model-shaped weights file of ``layers`` Dense layers, ~5 MB each."""
    rng = np.random.default_rng(0)
    weights = []
    for k in range(1, layers + 1):
        weights.append((f"dense_{k}/kernel:0", rng.standard_normal((rows, 1000), "float32")))
        weights.append((f"dense_{k}/bias:0", rng.standard_normal((1000,), "float32")))
    with h5py.File(path, "w") as f:
        write_layers(
            f,
            [
                ("input_1", []),
                ("lambda_1", []),
                ("lambda_2", []),
                ("model_1", weights),
                (f"dense_{layers}", []),
            ],
        )
    return path


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def first_line(result) -> str:
    return (result.stderr or result.output).strip().splitlines()[0]


def temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TEMP_MARK in p.name)


# --- atomic output under SIGKILL ----------------------------------------------------------------

CHILD = """
import sys, time, ckptfix
sys.stdout.write("ready\\n"); sys.stdout.flush()
ckptfix.convert_checkpoint(sys.argv[1], sys.argv[2], force=True)
sys.stdout.write("done\\n"); sys.stdout.flush()
"""


def gone_soon(pid: int) -> bool:
    """True once ``pid`` no longer runs (ended, or a zombie), within a few seconds."""
    from ckptfix.output import _pid_alive

    end = time.monotonic() + 5
    while _pid_alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_sigkill_leaves_nothing_or_a_complete_verified_file(tmp_path):
    src = big_parallel_file(tmp_path / "parallel.h5")
    before = sha256(src)
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "single.h5"
    # How long one conversion takes here, to spread the kills over all its stages.
    t0 = time.perf_counter()
    ckptfix.convert_checkpoint(src, dst)
    span = time.perf_counter() - t0
    dst.unlink()
    outcomes = {"absent": 0, "complete": 0}
    killed_pids = []
    points = 12
    for k in range(points):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(src), str(dst)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(span * 1.3 * k / (points - 1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_pids.append(proc.pid)
        if dst.exists():
            check = ckptfix.verify_conversion(src, dst)
            assert check.ok and check.tensors == 16, check.mismatches
            outcomes["complete"] += 1
            dst.unlink()
        else:
            outcomes["absent"] += 1
        for t in temps(out):  # a stray temp is named after its writer, which is gone
            pid = int(t.name.removeprefix(f".{dst.name}{TEMP_MARK}").split("-")[0])
            # the killed process, or its worker (ckptfix.deadline), which dies with it
            assert pid in killed_pids or gone_soon(pid), t.name
    assert outcomes["absent"] > 0, outcomes
    assert sha256(src) == before
    # The next run into the folder removes the strays of dead processes, then succeeds.
    stray = out / f".{dst.name}{TEMP_MARK}{killed_pids[0]}-deadbeef"
    stray.write_bytes(b"partial")
    result = ckptfix.convert_checkpoint(src, dst)
    assert result.verified and dst.is_file()
    assert temps(out) == []
    assert sorted(p.name for p in out.iterdir()) == [dst.name]
    assert sha256(src) == before


def test_temps_of_live_processes_and_other_files_are_kept(tmp_path):
    mine = tmp_path / f".x.h5{TEMP_MARK}{os.getpid()}-0000"
    dead = tmp_path / f".x.h5{TEMP_MARK}999999999-0000"
    odd = tmp_path / f"x.h5{TEMP_MARK}1-0000"  # not hidden: not ours
    user = tmp_path / "notes.txt"
    for p in (mine, dead, odd, user):
        p.write_text("x")
    assert clean_stale_temps(tmp_path) == [dead]
    assert mine.exists() and odd.exists() and user.exists() and not dead.exists()


# --- disk full ----------------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """Mount small tmpfs file systems (skips where mounting is not allowed)."""
    mounts: list[Path] = []

    def mount(size: int) -> Path:
        where = tmp_path / f"fs{len(mounts)}"
        where.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounts.append(where)
        return where

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    yield mount
    for where in mounts:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path, small_fs):
    src = big_parallel_file(tmp_path / "parallel.h5", layers=4)
    before = sha256(src)
    size = src.stat().st_size
    failures = 0
    # Too small for the copy, just too small, and a little room to spare for the rewrite.
    for cap in (256 << 10, size // 2, size - (64 << 10), size + (16 << 10), size + (256 << 10)):
        fs = small_fs(cap)
        dst = fs / "single.h5"
        try:
            result = ckptfix.convert_checkpoint(src, dst)
        except ckptfix.OutputError as exc:
            failures += 1
            msg = str(exc)
            assert msg.startswith("expected room to write single.h5; found the disk full"), msg
            assert "\n" not in msg
            assert list(fs.iterdir()) == [], list(fs.iterdir())
        else:
            assert result.verified and ckptfix.verify_conversion(src, dst).ok
            assert sorted(p.name for p in fs.iterdir()) == ["single.h5"]
    assert failures >= 3
    assert sha256(src) == before


@pytest.mark.parametrize(
    "fixture",
    [
        FIXTURES / "keras2" / "multi_io" / "parallel_model.h5",
        FIXTURES / "keras2" / "multi_io" / "parallel_weights.h5",
        FIXTURES / "keras3" / "parallel" / "wrapper.weights.h5",
        FIXTURES / "keras3" / "parallel" / "wrapper.keras",
    ],
    ids=lambda p: f"{p.parent.name}-{p.name}",
)
def test_disk_full_at_every_stage_of_every_format(tmp_path, small_fs, fixture):
    """Sizes in 8 KiB steps up to the file's size and beyond: the copy, the HDF5 rewrite, the
    close and the verification each run out of room; each ends as success or disk full."""
    src = tmp_path / fixture.name
    shutil.copyfile(fixture, src)
    before = sha256(src)
    dst_name = "single." + fixture.name.split(".", 1)[1]
    seen = {"ok": 0, "full": 0}
    for cap in range(4096, src.stat().st_size + (48 << 10), 8192):
        fs = small_fs(cap)
        try:
            ckptfix.convert_checkpoint(src, fs / dst_name)
        except ckptfix.OutputError as exc:
            assert str(exc).startswith(f"expected room to write {dst_name}; found the disk full")
            assert list(fs.iterdir()) == []
            seen["full"] += 1
        else:
            assert ckptfix.verify_conversion(src, fs / dst_name).ok
            assert [p.name for p in fs.iterdir()] == [dst_name]
            seen["ok"] += 1
    assert seen["ok"] and seen["full"], seen
    assert sha256(src) == before


def test_disk_full_through_the_cli_exits_6(tmp_path, small_fs):
    src = big_parallel_file(tmp_path / "parallel.h5", layers=2)
    fs = small_fs(1 << 20)
    res = cli("convert", str(src), str(fs / "single.h5"))
    assert res.exit_code == int(ckptfix.ExitCode.OUTPUT), res.output
    assert first_line(res).startswith("Error: expected room to write single.h5; found the disk")
    assert list(fs.iterdir()) == []


# --- paths --------------------------------------------------------------------------------------

SAME = (
    "Error: expected a destination other than the source; found {found}; choose "
    "another output path (the input is never overwritten, even with --force)"
)
#: What the refusal says was found, per spelling: the other path is named (issue 14).
FOUND = {
    "same": "both are src.h5",
    "dot": "both are src.h5",
    "symlink": "link.h5 is the source src.h5 (through a symbolic link)",
    "hardlink": "hard.h5 is the source src.h5 (a hard link to it)",
    "dotdot": "../{tmp}/src.h5 is the source src.h5 (the same file by another path)",
}


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink", "dotdot"])
def test_destination_equal_to_source_is_refused_even_with_force(tmp_path, spelling, monkeypatch):
    src = tmp_path / "src.h5"
    shutil.copyfile(SRC_FIXTURE, src)
    before = sha256(src)
    monkeypatch.chdir(tmp_path)
    if spelling == "same":
        dst = "src.h5"
    elif spelling == "dot":
        dst = "./src.h5"
    elif spelling == "dotdot":
        dst = f"../{tmp_path.name}/src.h5"
    elif spelling == "symlink":
        (tmp_path / "link.h5").symlink_to("src.h5")
        dst = "link.h5"
    else:
        os.link(src, tmp_path / "hard.h5")
        dst = "hard.h5"
    res = cli("convert", "src.h5", dst, "--force")
    assert res.exit_code == int(ckptfix.ExitCode.OUTPUT), res.output
    assert first_line(res) == SAME.format(found=FOUND[spelling].format(tmp=tmp_path.name))
    with pytest.raises(ckptfix.OutputError):
        ckptfix.convert_checkpoint("src.h5", dst, force=True)
    assert sha256(src) == before
    assert temps(tmp_path) == []


def test_existing_destination_is_kept_without_force(tmp_path):
    src = tmp_path / "src.h5"
    shutil.copyfile(SRC_FIXTURE, src)
    dst = tmp_path / "out.h5"
    dst.write_bytes(b"precious")
    res = cli("convert", str(src), str(dst))
    assert res.exit_code == int(ckptfix.ExitCode.OUTPUT), res.output
    assert first_line(res) == (
        f"Error: expected a new destination; found {dst} already exists; pass --force to replace it"
    )
    assert dst.read_bytes() == b"precious"
    res = cli("convert", str(src), str(dst), "--force")
    assert res.exit_code == 0, res.output
    assert ckptfix.verify_conversion(src, dst).ok
    assert sha256(src) == sha256(SRC_FIXTURE)


def test_missing_output_folder_is_a_clear_error(tmp_path):
    src = tmp_path / "src.h5"
    shutil.copyfile(SRC_FIXTURE, src)
    dst = tmp_path / "nowhere" / "out.h5"
    res = cli("convert", str(src), str(dst))
    assert res.exit_code == int(ckptfix.ExitCode.OUTPUT), res.output
    assert first_line(res) == (
        f"Error: expected an existing output folder; found no folder {dst.parent}; create it first"
    )
    assert not dst.parent.exists()
    assert sha256(src) == sha256(SRC_FIXTURE)


def test_failed_conversion_leaves_no_output(tmp_path):
    """A damaged tensor list is refused with exit 5 and nothing in the output folder."""
    src = tmp_path / "src.h5"
    shutil.copyfile(SRC_FIXTURE, src)
    with h5py.File(src, "r+") as f:
        del f["model_weights/model/dense/kernel:0"]
    before = sha256(src)
    res = cli("convert", str(src), str(tmp_path / "out.h5"))
    assert res.exit_code == int(ckptfix.ExitCode.BAD_INPUT), res.output
    assert first_line(res).startswith("Error: expected a dataset model/dense/kernel:0"), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.h5"]
    assert sha256(src) == before


@pytest.mark.parametrize(
    "src_fixture",
    [
        FIXTURES / "keras2" / "dense_bn" / "parallel_model.h5",
        FIXTURES / "keras3" / "parallel" / "wrapper.weights.h5",
    ],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("how", ["external_storage", "external_link"])
def test_tensors_pointing_outside_the_file_are_refused(tmp_path, src_fixture, how):
    """A forged file whose template tensor lives in another file is never converted."""
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["x"] = np.frombuffer(b"TOPSECRET-" * 100, "u1")
    src = tmp_path / src_fixture.name
    shutil.copyfile(src_fixture, src)
    with h5py.File(src, "r+") as f:
        names: list[str] = []
        f.visititems(
            lambda n, o: (
                names.append(n)
                if isinstance(o, h5py.Dataset) and ("layers/functional/" in n or "model/" in n)
                else None
            )
        )
        ds = f[names[0]]
        shape, dtype = ds.shape, ds.dtype
        del f[names[0]]
        if how == "external_storage":
            n = int(np.prod(shape)) * dtype.itemsize
            f.create_dataset(names[0], shape, dtype, external=[(str(secret), 0, n)])
        else:
            f[names[0]] = h5py.ExternalLink(str(secret), "/x")
    before = sha256(src)
    res = cli("convert", str(src), str(tmp_path / f"single_{src_fixture.name}"))
    assert res.exit_code == int(ckptfix.ExitCode.BAD_INPUT), res.output
    line = first_line(res)
    assert line.startswith("Error: expected every tensor stored inside the checkpoint; found 1"), (
        line
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([secret.name, src.name])
    assert sha256(src) == before


def test_zip_bomb_is_refused_before_it_is_read(tmp_path):
    """A .keras whose weights member expands 1000x is refused, not inflated into memory."""
    src = tmp_path / "bomb.keras"
    good = FIXTURES / "keras3" / "parallel" / "wrapper.keras"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            if name != "model.weights.h5":
                zout.writestr(name, zin.read(name))
        with zout.open("model.weights.h5", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(96):
                member.write(block)
    assert src.stat().st_size < 1 << 20
    before = sha256(src)
    res = cli("convert", str(src), str(tmp_path / "single.keras"))
    assert res.exit_code == int(ckptfix.ExitCode.BAD_INPUT), res.output
    assert "expanding to 100,663,296; refusing (a zip bomb" in first_line(res), res.output
    res = cli("inspect", str(src))
    assert res.exit_code == int(ckptfix.ExitCode.BAD_INPUT), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.keras"]
    assert sha256(src) == before


# --- no code from a checkpoint runs -------------------------------------------------------------


def test_the_converter_has_no_way_to_run_code_from_a_file():
    """No unmarshal, unpickle, eval/exec or dynamic import anywhere in the core (the trainer,
    which builds models with TensorFlow, is outside the core)."""
    import ast

    core = [p for p in (ROOT / "ckptfix").rglob("*.py") if "train" not in p.parts]
    assert len(core) > 5
    banned_modules = {"marshal", "pickle", "dill", "cloudpickle", "yaml", "shelve", "importlib"}
    for path in core:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                mods.append(getattr(node, "module", None) or "")
                bad = {m.split(".")[0] for m in mods} & banned_modules
                # importlib.util.find_spec only checks that TensorFlow is installed.
                if bad == {"importlib"} and path.name == "errors.py":
                    continue
                # deadline.py: messages between ckptfix's own processes, read back with an
                # allow-list of ckptfix's result and error types (tested in test_deadline.py).
                if bad == {"pickle"} and path.name == "deadline.py":
                    continue
                assert not bad, f"{path.name}:{node.lineno} imports {bad}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                assert name not in {"eval", "exec", "compile", "__import__"}, (
                    f"{path.name}:{node.lineno} calls {name}"
                )


EVIL = """
def evil_slice(x, i, parts):
    import pathlib
    pathlib.Path({marker!r}).write_text("the checkpoint's code ran")
    import tensorflow as tf
    step = tf.shape(x)[0] // parts
    return x[i * step:] if i == parts - 1 else x[i * step:(i + 1) * step]
"""


@pytest.mark.tf
def test_lambda_bytecode_is_never_run(tf, tf_keras, tmp_path):
    """A parallel full-model file whose slice Lambda writes a marker when run."""
    keras = tf_keras
    marker = tmp_path / "MARKER"
    scope: dict = {}
    exec(EVIL.format(marker=str(marker)), scope)  # noqa: S102 - the hostile code under test
    inp = keras.Input((6,), name="input_1")
    hidden = keras.layers.Dense(5, activation="relu", name="dense_1")(inp)
    template = keras.Model(inp, keras.layers.Dense(3, name="dense_2")(hidden), name="model_1")
    outs = []
    for i in range(2):
        with tf.device(f"/cpu:{i}"), tf.name_scope(f"replica_{i}"):
            piece = keras.layers.Lambda(
                scope["evil_slice"], output_shape=(6,), arguments={"i": i, "parts": 2}
            )(inp)
            outs.append(template(piece))
    parallel = keras.Model(inp, keras.layers.concatenate(outs, axis=0, name="dense_2"))
    parallel.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((8, 6)).astype("float32")
    parallel.fit(x, np.zeros((8, 3), "float32"), epochs=1, verbose=0)
    src = tmp_path / "parallel_model.h5"
    parallel.save(src, save_format="h5")
    assert marker.exists()  # building the model ran it, as intended
    marker.unlink()
    with h5py.File(src, "r") as f:
        assert "Lambda" in f.attrs["model_config"]  # the bytecode is in the file
    before = sha256(src)

    report = ckptfix.inspect_checkpoint(src)
    assert report.parallel and report.template == "model_1"
    dst = tmp_path / "single.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for args in (["inspect", str(src)], ["convert", str(src), str(dst)]):
        proc = subprocess.run(
            [sys.executable, "-m", "ckptfix", *args], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "inspect/convert ran code from the checkpoint"
    assert sha256(src) == before
    with h5py.File(dst, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
    assert "Lambda" not in json.dumps(cfg)

    # The converted file is the template: Keras loads it (safe mode) and predicts the same.
    loaded = keras.models.load_model(dst)
    assert not marker.exists()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), template.predict(x, verbose=0))
    # The source really was armed: Keras itself runs the bytecode when asked to.
    keras.models.load_model(src, safe_mode=False, compile=False)
    assert marker.exists()
