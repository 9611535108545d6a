"""The fast write and verify path of Keras 2 conversion keeps every guarantee.

Conversion copies the source with the kernel, rewrites the copy's metadata through a
``WriteLog`` and verifies tensors either by proof (same offsets, copied, never written since)
or by comparing stored bytes. These tests show that the proof is only used when it holds, that
the log sees every changed byte, and that whatever is not proven is read in full. Timings live
in ``bench/``, not here.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ckptfix
from ckptfix import formats, storage
from ckptfix.convert import verify_output
from ckptfix.formats.base import WriteOptions
from ckptfix.formats.keras2_h5 import FORMAT as KERAS2
from ckptfix.h5util import read_attr_list
from tests.conftest import FIXTURES, sha256

BIG = (5 << 20) // 4  # float32 values in a 5 MiB tensor: more than one comparison block


def write_parallel(
    path: Path, *, chunked: bool = False, big: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """A Keras-2-style parallel weights file (2 replicas, template ``model_1``) built by h5py.

    Returns the template's tensors by weight name.
    """
    rng = np.random.default_rng(seed)
    tensors = {
        "dense_1/kernel:0": rng.standard_normal((BIG // 64, 64) if big else (16, 8), "f4"),
        "dense_1/bias:0": rng.standard_normal(64 if big else 8, "f4"),
        "dense_2/kernel:0": rng.standard_normal((64 if big else 8, 3), "f4"),
        "dense_2/bias:0": rng.standard_normal(3, "f4"),
    }
    with h5py.File(path, "w") as f:
        names = [b"input_1", b"lambda_1", b"lambda_2", b"model_1", b"dense_2"]
        f.attrs["layer_names"] = np.asarray(names)
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for n in names:
            f.create_group(n.decode()).attrs["weight_names"] = np.zeros((0,), "f8")
        g = f["model_1"]
        g.attrs["weight_names"] = np.asarray([w.encode() for w in tensors])
        for w, arr in tensors.items():
            if chunked and arr.ndim == 2:
                g.create_dataset(w, data=arr, chunks=(4, arr.shape[1]), compression="gzip")
            else:
                g.create_dataset(w, data=arr)
    return tensors


def tensor_extent(path: Path, layer: str, weight: str) -> tuple[int, int]:
    """(file offset, length) of a contiguous dataset's bytes."""
    with h5py.File(path, "r") as f:
        ds = f[layer][weight]
        return f.userblock_size + ds.id.get_offset(), ds.id.get_storage_size()


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bytes each side of every raw comparison reads."""
    seen: list[int] = []
    real = storage.RawFiles.same_bytes

    def counting(self: storage.RawFiles, offset_a: int, offset_b: int, length: int) -> bool:
        seen.append(length)
        return real(self, offset_a, offset_b, length)

    monkeypatch.setattr(storage.RawFiles, "same_bytes", counting)
    return seen


# --- the write log and the record ---------------------------------------------------------


@pytest.mark.parametrize(
    "src",
    [
        FIXTURES / "keras2" / "dense_bn" / "parallel_model.h5",
        FIXTURES / "keras2" / "deep600" / "parallel_weights.h5",
        FIXTURES / "keras2" / "multi_io" / "parallel_model.h5",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_write_log_sees_every_changed_byte(src: Path, tmp_path: Path) -> None:
    ck = ckptfix.read_checkpoint(src)
    out = tmp_path / "out.h5"
    before = sha256(src)
    record = write_keras2(ck, out)
    assert sha256(src) == before
    assert record is not None and record.copied == src.stat().st_size
    a, b = src.read_bytes(), out.read_bytes()
    changed = np.flatnonzero(
        np.frombuffer(a, np.uint8)[: min(len(a), len(b))]
        != np.frombuffer(b, np.uint8)[: min(len(a), len(b))]
    )
    assert len(changed) > 0  # the metadata was rewritten
    for pos in changed:
        assert not record.untouched(int(pos), int(pos) + 1), pos
    # and every tensor of the template lies where nothing was written
    with h5py.File(out, "r") as f:
        root = f["/model_weights" if ck.full_model else "/"]
        for layer in read_attr_list(root, "layer_names"):
            for w in read_attr_list(root[layer], "weight_names"):
                ext = storage.storage_extents(root[layer][w].id, f.userblock_size)
                assert ext is not None
                assert all(record.untouched(x.offset, x.offset + x.length) for x in ext)


@given(
    ranges=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=8),
    start=st.integers(0, 90),
    length=st.integers(1, 30),
)
def test_untouched_matches_brute_force(
    ranges: list[tuple[int, int]], start: int, length: int
) -> None:
    log_ranges = [(s, s + n) for s, n in ranges]
    merged: list[tuple[int, int]] = []
    for s, e in sorted(log_ranges):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    rec = storage.CopyRecord(Path("a"), Path("b"), (), (), 80, tuple(merged))
    written = {i for s, e in log_ranges for i in range(s, e)}
    expected = start + length <= 80 and not any(i in written for i in range(start, start + length))
    assert rec.untouched(start, start + length) == expected


def test_write_log_records_writes_and_shrinking(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(bytes(100))
    with storage.WriteLog(p) as log:
        log.seek(10)
        log.write(b"abc")
        log.seek(12)
        log.write(b"xyz")
        log.truncate(90)
        log.truncate(95)  # growing back adds zeros, already logged as cut
    assert log.ranges() == ((10, 15), (90, 100))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_write_log_keeps_the_disk_full_error() -> None:
    """h5py's driver reports a failed write as an unrelated error; the log keeps the real one."""
    with storage.WriteLog(Path("/dev/full")) as log:
        with pytest.raises(OSError):
            log.write(b"x" * 10)
    assert log.error is not None and log.error.errno == errno.ENOSPC


def write_keras2(ck: ckptfix.Checkpoint, out: Path) -> storage.CopyRecord | None:
    """Write ``ck``'s Keras 2 conversion to ``out``; the writer's copy record."""
    written = KERAS2.write(ck, out, WriteOptions())
    return written.copy_record


def test_record_is_dropped_when_either_file_changes(tmp_path: Path) -> None:
    src = tmp_path / "par.h5"
    write_parallel(src)
    ck = ckptfix.read_checkpoint(src)
    out = tmp_path / "out.h5"
    record = write_keras2(ck, out)
    assert record is not None and record.holds_for(src, out)
    st_before = out.stat()
    os.utime(out, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))  # ctime moves on
    assert not record.holds_for(src, out)
    out.unlink()
    record = write_keras2(ck, out)
    assert record is not None and record.holds_for(src, out)
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 1))
    assert not record.holds_for(src, out)
    record = write_keras2(ck, tmp_path / "other.h5")
    assert record is not None and record.holds_for(src, tmp_path / "other.h5")
    assert not record.holds_for(tmp_path / "copy_of_src.h5", tmp_path / "other.h5")


# --- verification: proof where it holds, every byte elsewhere ----------------------------


def test_convert_proves_untouched_tensors_without_reading_them(
    tmp_path: Path, bytes_read: list[int]
) -> None:
    src = tmp_path / "par.h5"
    tensors = write_parallel(src, big=True)
    before = sha256(src)
    # in this process (timeout=None): the counting hook sees the reads
    r = ckptfix.convert_checkpoint(src, tmp_path / "out.h5", timeout=None)
    assert r.verified and sha256(src) == before
    # the proof still compares both ends of each tensor, and nothing more
    assert bytes_read and max(bytes_read) <= storage.SAMPLE
    with h5py.File(tmp_path / "out.h5", "r") as f:
        for w, arr in tensors.items():
            got = f[w.split("/")[0]][w]
            assert got.dtype == arr.dtype and got[()].tobytes() == arr.tobytes()


def test_verify_without_record_reads_every_byte(tmp_path: Path, bytes_read: list[int]) -> None:
    src = tmp_path / "par.h5"
    tensors = write_parallel(src, big=True)
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(src, out, timeout=None)
    bytes_read.clear()
    v = ckptfix.verify_conversion(src, out, timeout=None)  # convert used up the record
    assert v.ok
    assert sum(bytes_read) == sum(a.nbytes for a in tensors.values())


def test_verify_finds_a_byte_changed_deep_inside_a_tensor(tmp_path: Path) -> None:
    src = tmp_path / "par.h5"
    write_parallel(src, big=True)
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(src, out)
    offset, length = tensor_extent(out, "dense_1", "dense_1/kernel:0")
    assert length > storage.BLOCK
    flip_byte(out, offset + storage.BLOCK + 12345)  # past the first block, far from the ends
    v = ckptfix.verify_conversion(src, out)
    assert not v.ok
    assert v.mismatches == ("dense_1/kernel:0: bytes differ in rows 16384:20480",)


def verify_with(ck: ckptfix.Checkpoint, out: Path, record: storage.CopyRecord | None):
    """The write-time verification of ``out``, with the writer's ``record``."""
    fmt, fid = formats.sniff(out)
    return verify_output(ck, fmt, fid, fmt.plan(ck), out, record)


def test_stale_record_falls_back_to_reading_every_byte(tmp_path: Path) -> None:
    src = tmp_path / "par.h5"
    write_parallel(src, big=True)
    ck = ckptfix.read_checkpoint(src)
    out = tmp_path / "out.h5"
    record = write_keras2(ck, out)
    offset, length = tensor_extent(out, "dense_1", "dense_1/kernel:0")
    flip_byte(out, offset + length // 2)  # changes the file after the record was made
    v = verify_with(ck, out, record)
    assert not v.ok and v.mismatches[0].startswith("dense_1/kernel:0: bytes differ in rows")


def test_written_range_over_a_tensor_is_read_in_full(tmp_path: Path, bytes_read: list[int]) -> None:
    """A record whose log covers a tensor proves nothing about it: that tensor is read."""
    src = tmp_path / "par.h5"
    write_parallel(src, big=True)
    out = tmp_path / "out.h5"
    ck = ckptfix.read_checkpoint(src)
    record = write_keras2(ck, out)
    assert record is not None
    offset, length = tensor_extent(out, "dense_1", "dense_1/kernel:0")
    hit = storage.CopyRecord(
        record.source,
        record.copy,
        record.source_id,
        record.copy_id,
        record.copied,
        tuple(sorted(record.written + ((offset + 100, offset + 101),))),
    )
    bytes_read.clear()
    assert verify_with(ck, out, hit).ok
    assert sum(bytes_read) >= length  # read in full, not sampled


def test_chunked_compressed_tensors_stay_bit_exact(tmp_path: Path) -> None:
    src = tmp_path / "par.h5"
    tensors = write_parallel(src, chunked=True)
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(src, out)
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fd:
        for w, arr in tensors.items():
            a, b = fs["model_1"][w], fd[w.split("/")[0]][w]
            assert (a.chunks, a.compression, a.compression_opts) == (
                b.chunks,
                b.compression,
                b.compression_opts,
            )
            assert b[()].tobytes() == arr.tobytes()
            for i in range(a.id.get_num_chunks() if a.chunks else 0):
                ca, cb = a.id.get_chunk_info(i), b.id.get_chunk_info(i)
                assert a.id.read_direct_chunk(ca.chunk_offset) == b.id.read_direct_chunk(
                    cb.chunk_offset
                )
    assert ckptfix.verify_conversion(src, out).ok  # full raw-chunk comparison


def test_changed_compressed_chunk_is_found(tmp_path: Path) -> None:
    src = tmp_path / "par.h5"
    write_parallel(src, chunked=True)
    out = tmp_path / "out.h5"
    ckptfix.convert_checkpoint(src, out)
    with h5py.File(out, "r+") as f:
        ds = f["dense_1"]["dense_1/kernel:0"]
        data = ds[()]
        data[5, 3] += 1.0
        ds[5:6] = data[5:6]
    v = ckptfix.verify_conversion(src, out)
    assert v.mismatches == ("dense_1/kernel:0: bytes differ in rows 0:16",)


def test_compare_datasets_equal_values_stored_differently(tmp_path: Path) -> None:
    """Raw bytes differ (another gzip level would be another option); values decide."""
    p = tmp_path / "x.h5"
    arr = np.arange(64, dtype="f4").reshape(8, 8)
    with h5py.File(p, "w") as f:
        a = f.create_dataset("a", data=arr, chunks=(4, 8), compression="gzip")
        b = f.create_dataset("b", data=arr, chunks=(4, 8), compression="gzip")
        c = f.create_dataset("c", data=arr, chunks=(4, 8), compression="gzip", compression_opts=9)
        d = f.create_dataset("d", data=arr.astype(">f4"))
        assert storage.compare_datasets(a, b) is None
        assert storage.compare_datasets(a, c) == "storage options differ"
        assert storage.compare_datasets(f.create_dataset("e", data=arr), d) == (
            "dtype float32 != >f4"
        )


# --- copying ------------------------------------------------------------------------------


def test_copy_file_falls_back_when_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = FIXTURES / "keras2" / "cnn" / "parallel_model.h5"

    def cross_device(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    assert storage.copy_file(src, tmp_path / "c.h5") == src.stat().st_size
    assert sha256(tmp_path / "c.h5") == sha256(src)


def test_copy_file_reports_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    monkeypatch.setattr(storage, "_copy_by_blocks", lambda *a, **k: pytest.fail("no fallback"))
    with pytest.raises(OSError) as exc:
        storage.copy_file(FIXTURES / "keras2" / "cnn" / "parallel_model.h5", tmp_path / "c.h5")
    assert exc.value.errno == errno.ENOSPC
