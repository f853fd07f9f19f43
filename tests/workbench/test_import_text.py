"""import-text: text pairs -> token files that decode back to the text, vocabularies
from the training split only, drops counted, and every broken file refused by line
with no file left behind."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.datasets import SequenceDataset
from workbench.errors import ConfigError, DatasetError
from workbench.importers import ImportCancelled, TextOptions, import_text, scan_text
from workbench.importers.text import UNK, UNK_ID, decode, normalise

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PHRASES = EXAMPLES / "phrases.tsv"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def decoded(out: Path, level: str) -> dict[str, list[tuple[str, str]]]:
    """Every split's (source, target) texts, decoded from the stored ids."""
    with h5py.File(out) as f:
        vocab_in = [v.decode() for v in f["input_vocab" if "input_vocab" in f else "vocab"][:]]
        vocab_out = [v.decode() for v in f["target_vocab" if "target_vocab" in f else "vocab"][:]]
        result = {}
        for split in ("train", "val", "test"):
            if split in f:
                g = f[split]
                result[split] = [(decode(x[:lx], vocab_in, level), decode(y[:ly], vocab_out, level))
                                 for x, lx, y, ly in zip(g["inputs"][:], g["input_lengths"][:],
                                                         g["targets"][:], g["target_lengths"][:])]
    return result


def source_pairs(path: Path, **norm) -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(normalise(a, **norm), normalise(b, **norm)) for a, b in rows]


@pytest.mark.parametrize("level", ["word", "char"])
def test_pairs_decode_back_to_the_normalised_text_in_file_order(tmp_path, level):
    out = tmp_path / "phrases.h5"
    summary = import_text(PHRASES, out, TextOptions(level=level, lowercase=True, min_count=1,
                                                    val_fraction=0.0, test_fraction=0.0))
    expected = source_pairs(PHRASES, lowercase=True, level=level)
    assert decoded(out, level) == {"train": expected}
    assert summary.pairs == len(expected) == 44
    assert summary.unknown_tokens == {"input": 0, "target": 0}


def test_a_split_file_holds_every_pair_once_and_unseen_tokens_are_unk(tmp_path):
    out = tmp_path / "phrases.h5"
    summary = import_text(PHRASES, out, TextOptions(lowercase=True, seed=3))
    splits = decoded(out, "word")
    assert {k: len(v) for k, v in splits.items()} == summary.splits == \
        {"train": 36, "val": 4, "test": 4}
    train_words = {w for src, _ in splits["train"] for w in src.split()}
    with h5py.File(out) as f:
        vocab = {v.decode() for v in f["input_vocab"][:]}
        assert f["input_vocab"].attrs["pad_id"] == 0 and f["input_vocab"].attrs["end_id"] == 2
    # the vocabulary is exactly the training words (plus the reserved and <unk>)
    assert vocab == train_words | {"<pad>", "<s>", "</s>", UNK}
    assert UNK not in " ".join(src for src, _ in splits["train"])
    expected = dict(source_pairs(PHRASES, lowercase=True, level="word"))
    unknown = 0
    for src, _tgt in splits["val"] + splits["test"]:
        words = src.split()
        unknown += words.count(UNK)
        match = [s for s in expected if len(s.split()) == len(words) and all(
            w in (UNK, o) for w, o in zip(words, s.split()))]
        assert match, src  # each held-out pair is a source pair with unseen words as <unk>
    assert unknown == summary.unknown_tokens["input"] > 0


def test_the_split_is_exact_and_seeded(tmp_path):
    a, b, c = (tmp_path / f"{n}.h5" for n in "abc")
    import_text(PHRASES, a, TextOptions(seed=1))
    import_text(PHRASES, b, TextOptions(seed=1))
    import_text(PHRASES, c, TextOptions(seed=2))
    assert decoded(a, "word") == decoded(b, "word") != decoded(c, "word")


def test_reader_opens_the_file_with_its_split_groups(tmp_path):
    out = tmp_path / "p.h5"
    import_text(PHRASES, out, TextOptions(level="char"))
    with SequenceDataset.open(out, safe_check=False) as ds:
        s = ds.summary
        assert s.splits == {"train": 36, "val": 4, "test": 4} and not s.val_from_seed
        assert s.inputs.kind == s.targets.kind == "tokens"
        assert s.inputs.vocab[UNK_ID] == UNK
        assert ds.check_values() == 44


def test_drops_are_counted_max_length_and_empty_fields(tmp_path):
    src = write(tmp_path / "p.tsv", "a b\tx\n \ty\nc\t\na b c d\tz\ne\tf g h i\nk\tl\n")
    summary = import_text(src, tmp_path / "p.h5", TextOptions(max_length=3, val_fraction=0,
                                                              test_fraction=0))
    assert summary.dropped == {"over_max_length": 2, "empty": 2, "bad_lines": 0}
    assert summary.pairs == 2 and summary.rows == 6
    assert decoded(tmp_path / "p.h5", "word") == {"train": [("a b", "x"), ("k", "l")]}


def test_min_count_sends_rare_training_tokens_to_unk(tmp_path):
    src = write(tmp_path / "p.tsv", "a\tx\na\tx\nb\ty\n")
    import_text(src, tmp_path / "p.h5", TextOptions(min_count=2, val_fraction=0,
                                                    test_fraction=0))
    assert decoded(tmp_path / "p.h5", "word")["train"] == [("a", "x"), ("a", "x"), (UNK, UNK)]


@pytest.mark.parametrize("mode,target", [("autoencode", "hello world"),
                                         ("reverse", "dlrow olleh")])
def test_single_column_targets(tmp_path, mode, target):
    src = write(tmp_path / "t.txt", "Hello World\n")
    import_text(src, tmp_path / "t.h5", TextOptions(level="char", single=mode, lowercase=True,
                                                    target_col=None, val_fraction=0,
                                                    test_fraction=0))
    assert decoded(tmp_path / "t.h5", "char") == {"train": [("hello world", target)]}


def test_header_names_columns_and_quoted_fields_hold_the_delimiter(tmp_path):
    src = write(tmp_path / "d.csv", 'id,written,iso\n1,"Nov 25, 2026",2026-11-25\n'
                                    '2,"March 3,\n1999",1999-03-03\n')
    import_text(src, tmp_path / "d.h5", TextOptions(level="char", header=True,
                                                    source_col="written", target_col="iso",
                                                    val_fraction=0, test_fraction=0))
    assert decoded(tmp_path / "d.h5", "char")["train"] == [
        ("Nov 25, 2026", "2026-11-25"), ("March 3,\n1999", "1999-03-03")]
    with pytest.raises(ConfigError, match=r"'when': no such column; the columns are 'id', "
                                          r"'written', 'iso'"):
        import_text(src, tmp_path / "e.h5", TextOptions(header=True, source_col="when",
                                                        target_col="iso"))


def test_utf8_bom_nfc_and_other_encodings(tmp_path):
    decomposed = unicodedata.normalize("NFD", "été")
    src = write(tmp_path / "bom.tsv", b"\xef\xbb\xbf" + f"{decomposed}\tsummer\n".encode())
    import_text(src, tmp_path / "a.h5", TextOptions(level="char", val_fraction=0,
                                                    test_fraction=0))
    assert decoded(tmp_path / "a.h5", "char")["train"] == [("été", "summer")]
    utf16 = write(tmp_path / "u16.tsv", "été\tsummer\nhiver\twinter\n".encode("utf-16"))
    import_text(utf16, tmp_path / "b.h5", TextOptions(val_fraction=0, test_fraction=0))
    assert decoded(tmp_path / "b.h5", "word")["train"] == [("été", "summer"),
                                                            ("hiver", "winter")]
    latin = write(tmp_path / "l1.tsv", "ok\tfine\ncaf\xe9\tcoffee\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"l1\.tsv: line 2: byte 0xe9 at offset 11 is not "
                                           r"valid utf-8.*--encoding latin-1"):
        import_text(latin, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()
    import_text(latin, tmp_path / "c.h5", TextOptions(encoding="latin-1", val_fraction=0,
                                                      test_fraction=0))
    assert decoded(tmp_path / "c.h5", "word")["train"][1] == ("café", "coffee")


HOSTILE = {
    "ragged": (b"a\tb\nc\td\te\nf\tg\n", r"line 2: 3 fields, expected 2 \(as on line 1\)"),
    "open quote": (b'a\tb\n"c\td\ne\tf\n', r"line 2: a quoted field opens here and is never "
                                            r"closed"),
    "stray quote": (b'a\tb\n"c" d\te\n', r"line 2: malformed quoting"),
    "long line": (b"a\tb\n" + b"x" * (10 * 2**20) + b"\nc\td\n",
                  r"line 2: longer than 1,048,576 bytes without a line break"),
    "nul": (b"a\tb\nc\x00\td\n", r"line 2: contains a NUL character"),
    "latin-1": ("a\tb\n\xe0 bient\xf4t\tsee you\n".encode("latin-1"),
                r"line 2: byte 0xe0 at offset 4 is not valid utf-8"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_are_refused_by_line_and_leave_no_file(tmp_path, name):
    data, message = HOSTILE[name]
    src = write(tmp_path / "bad.tsv", data)
    out = tmp_path / "bad.h5"
    with pytest.raises(DatasetError, match=r"bad\.tsv: " + message):
        import_text(src, out)
    assert list(tmp_path.iterdir()) == [src]  # no output, no temporary file


@pytest.mark.parametrize("name", list(HOSTILE))
def test_skip_bad_lines_counts_them_and_keeps_the_rest(tmp_path, name):
    data, message = HOSTILE[name]
    src = write(tmp_path / "bad.tsv", data)
    summary = import_text(src, tmp_path / "ok.h5", TextOptions(
        skip_bad_lines=True, val_fraction=0, test_fraction=0))
    assert summary.dropped["bad_lines"] == 1
    assert summary.first_bad_line is not None and summary.first_bad_line.startswith("line 2")
    pairs = decoded(tmp_path / "ok.h5", "word")["train"]
    assert pairs[0] == ("a", "b") and len(pairs) == summary.pairs >= 1


def test_a_quote_left_open_skips_one_line_not_the_rest_of_the_file(tmp_path):
    src = write(tmp_path / "q.tsv", 'a\tb\n"c\td\ne\tf\ng\th\n')
    summary = import_text(src, tmp_path / "q.h5", TextOptions(
        skip_bad_lines=True, val_fraction=0, test_fraction=0))
    assert decoded(tmp_path / "q.h5", "word")["train"] == [("a", "b"), ("e", "f"), ("g", "h")]
    assert summary.dropped["bad_lines"] == 1


@pytest.mark.parametrize("data,message", [
    (b"", r"e\.tsv: the file is empty"),
    (b"\n\n", r"e\.tsv: the file is empty"),
    (b"source\ttarget\n", r"e\.tsv: the file has a header but no rows"),
    (b"a\t\n\tb\n", r"no pairs left to import \(2 rows read; dropped 0 over --max-length, "
                    r"2 with an empty field"),
])
def test_files_without_pairs_are_refused(tmp_path, data, message):
    src = write(tmp_path / "e.tsv", data)
    with pytest.raises(DatasetError, match=message):
        import_text(src, tmp_path / "e.h5", TextOptions(header=data.startswith(b"source")))
    assert not (tmp_path / "e.h5").exists()


def test_a_failed_import_leaves_an_existing_file_untouched(tmp_path):
    out = tmp_path / "p.h5"
    import_text(PHRASES, out)
    before = out.read_bytes()
    src = write(tmp_path / "bad.tsv", b"a\tb\nc\n")
    with pytest.raises(DatasetError):
        import_text(src, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "p.h5"]


def test_cancel_stops_the_import_and_leaves_no_file(tmp_path):
    src = write(tmp_path / "big.tsv", "".join(f"w{i}\tv{i}\n" for i in range(20_000)))
    seen = []
    with pytest.raises(ImportCancelled):
        import_text(src, tmp_path / "big.h5", progress=lambda f, m: seen.append(f),
                    cancelled=lambda: len(seen) >= 2)
    assert seen and not (tmp_path / "big.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.tsv"]


def test_options_are_checked(tmp_path):
    for options, message in [
        (TextOptions(level="byte"), "--level must be one of char, word"),
        (TextOptions(val_fraction=0.6, test_fraction=0.4), "leave nothing for training"),
        (TextOptions(target_col=0), "the same column"),
        (TextOptions(target_col=None), "--single autoencode"),
        (TextOptions(max_length=0), "--max-length must be at least 1"),
        (TextOptions(source_col="name"), "without --header, columns are numbered"),
        (TextOptions(target_col=5), r"--target-col 5: line 1 has only 2 column"),
    ]:
        with pytest.raises(ConfigError, match=message):
            import_text(PHRASES, tmp_path / "x.h5", options)
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ConfigError, match="would replace the file being imported"):
        import_text(PHRASES, PHRASES.parent / ".." / "examples" / "phrases.tsv")


def test_scan_gives_the_numbers_the_import_gives(tmp_path):
    options = TextOptions(level="char", max_length=10, seed=4)
    scanned = scan_text(PHRASES, options)
    done = import_text(PHRASES, tmp_path / "p.h5", options)
    assert scanned.complete and scanned.path is None
    for key in ("pairs", "splits", "input_steps", "target_steps", "input_vocab_size",
                "target_vocab_size", "dropped", "unknown_tokens"):
        assert getattr(scanned, key) == getattr(done, key), key
    first = scan_text(PHRASES, options, max_rows=10)
    assert not first.complete and first.rows == 10 and first.estimated_rows > 30


def test_token_ids_use_the_smallest_dtype(tmp_path):
    src = write(tmp_path / "w.tsv", "".join(f"w{i}\tv{i}\n" for i in range(400)))
    import_text(src, tmp_path / "w.h5", TextOptions(val_fraction=0, test_fraction=0))
    with h5py.File(tmp_path / "w.h5") as f:
        assert f["train/inputs"].dtype == np.uint16  # 804 provisional ids need 16 bits
        assert len(f["input_vocab"]) == 404


quoted_text = st.text(alphabet=st.sampled_from('ab ,"\n\té'), max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(quoted_text, min_size=2, max_size=2), min_size=1, max_size=30),
       block=st.sampled_from([16, 64, 2**20]))
def test_the_reader_reads_what_csv_writes_whatever_the_block_size(tmp_path, monkeypatch, rows,
                                                                  block):
    """Blocks parsed at once and records that cross blocks (quoted newlines) give what
    the csv module reads from the whole text."""
    import csv
    import io

    from workbench.importers import records

    text = io.StringIO()
    csv.writer(text, delimiter="\t", lineterminator="\n").writerows(rows)
    path = tmp_path / "rows.tsv"
    path.write_text(text.getvalue(), encoding="utf-8")
    monkeypatch.setattr(records, "READ_BYTES", block)
    expected = [r for r in csv.reader(io.StringIO(text.getvalue(), newline=""), delimiter="\t")
                if r and r != [""]]
    got = [r.fields for r in records.RecordReader(path, delimiter="\t")]
    assert got == expected
