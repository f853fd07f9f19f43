"""Damaged files: truncated and bit-flipped copies of small valid files either open and
read completely, or raise DatasetError naming the file. Never a crash, a hang or
another exception.

Every case opens its file the way the app does, through the safe-open check in a
child process, so a crash or hang of libhdf5 there becomes a DatasetError instead of
killing pytest. The base files are small enough that the child reads every array in
full, so what the test then reads in-process was read safely once already.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.workbench.data_helpers import VOCAB, continuous_arrays, token_arrays
from workbench import safe_open
from workbench.datasets import SequenceDataset, list_arrays
from workbench.errors import DatasetError
from workbench.tasks import write_dataset

_counter = itertools.count()


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz-bases")
    c = continuous_arrays(n=24, t_in=5, f_in=2, t_out=3)
    t = token_arrays(n=24)
    paths = {
        "gzip-continuous": write_dataset(
            folder / "c.h5", c["inputs"], c["targets"], input_lengths=c["input_lengths"],
            target_lengths=c["target_lengths"], compression="gzip", chunk_rows=8),
        "tokens": write_dataset(
            folder / "t.h5", t["inputs"], t["targets"], input_lengths=t["input_lengths"],
            target_lengths=t["target_lengths"], input_vocab=VOCAB, target_vocab=VOCAB),
    }
    return {name: path.read_bytes() for name, path in paths.items()}


def _mutate(data: bytes, mutation: tuple) -> bytes:
    kind, spec = mutation
    if kind == "truncate":
        return data[: spec % len(data)]
    out = bytearray(data)
    for position, bit in spec:
        out[position % len(out)] ^= 1 << bit
    return bytes(out)


def _use(path) -> str:
    """What the app does with a file: list it, open it, read every batch, normalise."""
    try:
        list_arrays(path)
        with SequenceDataset.open(path, val_fraction=0.25) as ds:
            for name in ds.summary.splits:
                for _ in ds.split(name).iter_batches(7, seed=1, epoch=0):
                    pass
            ds.normalization()
    except DatasetError as exc:
        assert str(exc).startswith(str(path)), exc
        return "error"
    return "ok"


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 2**20)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 7)),
                                        min_size=1, max_size=6)),
)


@settings(max_examples=36, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.sampled_from(["gzip-continuous", "tokens"]), mutation=MUTATIONS)
def test_damaged_files_open_and_read_or_raise_dataset_error(bases, tmp_path, monkeypatch,
                                                           base, mutation):
    monkeypatch.setattr(safe_open, "DEFAULT_TIMEOUT_S", 20.0)
    path = tmp_path / f"case-{next(_counter)}.h5"
    path.write_bytes(_mutate(bases[base], mutation))
    assert _use(path) in ("ok", "error")


def test_the_undamaged_bases_read_fine(bases, tmp_path):
    for name, data in bases.items():
        path = tmp_path / f"{name}.h5"
        path.write_bytes(data)
        assert _use(path) == "ok"
        assert _mutate(data, ("truncate", 100)) != data
        assert np.frombuffer(_mutate(data, ("flip", [(0, 0)])), np.uint8)[0] != data[0]
