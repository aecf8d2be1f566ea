"""`mmlr simulate`: metric definitions, the whole pipeline on real data, errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli_env, run_cli

from screening.metrics import order_metrics, records_to_recall
from screening.simulate import load_dataset, simulate
from store.errors import ValidationError

KEYS = ["dataset", "n_records", "n_included", "recall_at_10", "recall_at_25", "wss_95",
        "wss_100", "n_95", "n_100", "seconds", "seed", "prior_ids"]


def test_metrics_follow_the_issue_definitions() -> None:
    # 22 records, 5 includes; priors excluded → N = 20, P = 4 (labels of the 20 in order).
    labels = [1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1] + [0] * 7
    m = order_metrics(labels, n=20, p=4)
    assert records_to_recall(labels, 4, 0.95) == 13  # ⌈0.95·4⌉ = 4 includes
    assert m.n_95 == 13 and m.n_100 == 13
    assert m.recall_at_10 == 0.25  # ⌊0.1·20⌋ = 2 screened → 1 include of 4
    assert m.recall_at_25 == 0.5  # ⌊0.25·20⌋ = 5 screened → 2 of 4
    assert m.wss_95 == pytest.approx((20 - 13) / 20 - 0.05)
    assert m.wss_100 == pytest.approx((20 - 13) / 20)
    # an order that stops once every include is found gives the same numbers
    assert order_metrics(labels[:13], n=20, p=4) == m
    # 95% of 40 includes = 38 includes
    many = [1] * 38 + [0] + [1, 1]
    assert records_to_recall(many, 40, 0.95) == 38
    assert records_to_recall(many, 40, 1.0) == 41


def test_simulate_windisch_end_to_end_is_deterministic(screening_dir: Path) -> None:
    path = screening_dir / "windisch2024_rct_oncology_test.csv.gz"
    a = simulate(path, seed=3)
    b = simulate(path, seed=3)
    assert list(a.to_json()) == KEYS
    assert a.order == b.order and a.prior_ids == b.prior_ids
    assert {k: v for k, v in a.to_json().items() if k != "seconds"} == \
        {k: v for k, v in b.to_json().items() if k != "seconds"}
    assert a.n_records == 100 and a.n_included == 6
    assert a.dataset == "windisch2024_rct_oncology_test"
    # Every include after the prior is found, and better than screening at random.
    assert a.n_100 <= 98 and a.wss_100 > 0.1
    assert a.n_95 <= a.n_100
    assert 0 <= a.recall_at_10 <= a.recall_at_25 <= 1
    data = load_dataset(path)
    labels = dict(zip(data.record_ids, data.labels.tolist(), strict=True))
    assert sum(labels[r] for r in a.order) == 5  # P = includes − 1
    assert a.prior_ids[0] not in a.order and a.prior_ids[1] not in a.order
    assert "WSS@95" in a.describe()


def test_simulate_on_a_cohen_set_beats_random_by_far(screening_dir: Path) -> None:
    r = simulate(screening_dir / "cohen2006_NSAIDS.csv.gz", seed=0)
    assert r.n_included == 41
    assert r.wss_95 > 0.5, r.to_json()
    assert r.recall_at_25 > 0.8


def test_prior_ids_are_used_and_checked(screening_dir: Path) -> None:
    path = screening_dir / "windisch2024_rct_oncology_test.csv.gz"
    data = load_dataset(path)
    pos = [r for r, y in zip(data.record_ids, data.labels, strict=True) if y == 1]
    neg = [r for r, y in zip(data.record_ids, data.labels, strict=True) if y == 0]
    r = simulate(path, prior_ids=(pos[1], neg[5]))
    assert r.prior_ids == (pos[1], neg[5])
    with pytest.raises(ValidationError, match="not an include"):
        simulate(path, prior_ids=(neg[0], neg[1]))
    with pytest.raises(ValidationError, match="not in dataset"):
        simulate(path, prior_ids=(pos[0], 999999))


def _write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_missing_column_is_named(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.csv", "record_id,title,label_included\n1,a,1\n2,b,0\n3,c,1\n")
    with pytest.raises(ValidationError) as err:
        load_dataset(bad)
    assert "bad.csv" in err.value.one_line() and "abstract" in err.value.one_line()


def test_missing_label_is_named(tmp_path: Path) -> None:
    bad = _write(tmp_path / "nolabel.csv.gz",
                 "record_id,title,abstract,label_included\n1,a,x,1\n2,b,y,\n3,c,z,1\n", gz=True)
    with pytest.raises(ValidationError) as err:
        load_dataset(bad)
    line = err.value.one_line()
    assert "nolabel.csv.gz:3" in line and "label_included" in line and "record_id 2" in line


def test_too_few_includes_and_unreadable_files(tmp_path: Path) -> None:
    one = _write(tmp_path / "one.csv",
                 "record_id,title,abstract,label_included\n1,a,x,1\n2,b,y,0\n")
    with pytest.raises(ValidationError, match="has 1 includes and 1 excludes"):
        load_dataset(one)
    with pytest.raises(ValidationError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValidationError, match="cannot be read"):
        load_dataset(broken)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("simulate", *args, env=cli_env(MMLR_DATA_DIR=str(tmp_path / "data")),
                   timeout=300)


def test_cli_json_and_error(screening_dir: Path, tmp_path: Path) -> None:
    path = screening_dir / "windisch2024_rct_oncology_test.csv.gz"
    proc = _cli(tmp_path, str(path), "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == KEYS
    assert out == {**simulate(path, seed=1).to_json(), "seconds": out["seconds"]}
    # the JSON names what replays it (it left out the seed and the drawn priors)
    assert out["seed"] == 1 and len(out["prior_ids"]) == 2
    pos, neg = out["prior_ids"]
    again = _cli(tmp_path, str(path), "--seed", "1", "--prior-ids", f"{pos},{neg}", "--json")
    assert again.returncode == 0, again.stderr
    assert {**json.loads(again.stdout), "seconds": 0} == {**out, "seconds": 0}
    bad = _write(tmp_path / "bad.csv", "record_id,title\n1,a\n")
    proc = _cli(tmp_path, str(bad))
    assert_one_line_error(proc, "bad.csv", "label_included")


def test_cli_reports_the_stopping_test_only_when_asked(screening_dir: Path,
                                                       tmp_path: Path) -> None:
    path = screening_dir / "cohen2006_NSAIDS.csv.gz"
    proc = _cli(tmp_path, str(path), "--stop-recall", "0.9", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == [*KEYS, "stop_recall_target", "n_stop", "recall_at_stop", "stopped"]
    assert out["stop_recall_target"] == 0.9 and out["stopped"] is True
    # it stops before the last record and, on this review, after 90% of the includes
    assert 0 < out["n_stop"] < out["n_records"] - 2 and out["recall_at_stop"] >= 0.9
    proc = _cli(tmp_path, str(path), "--stop-recall", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert f"stop after {out['n_stop']} records" in proc.stdout
    # the answer alone on stdout: the progress bar drew a blank line in front of it
    assert proc.stdout.startswith("cohen2006_NSAIDS: "), proc.stdout[:80]
    for bad in ("1", "0.3"):
        proc = _cli(tmp_path, str(path), "--stop-recall", bad)
        assert_one_line_error(proc, "stopping recall target", "below 1")


ROWS = "record_id,title,abstract,label_included\n" + "".join(
    f"{i},title {i},abstract {i % 5},{int(i % 4 == 0)}\n" for i in range(1, 200))


def _damaged(kind: str) -> bytes:
    """A gzip of ROWS damaged so that Python fails the way ``kind`` names (checked here, so
    the test provokes what it says)."""
    good = gzip.compress(ROWS.encode(), mtime=0)
    if kind == "zlib":  # the deflate stream itself is garbled
        raw = bytes(b ^ 0x55 if 20 <= i < 60 else b for i, b in enumerate(good))
        error: type[BaseException] = zlib.error
    elif kind == "truncated":
        raw, error = good[: len(good) // 2], EOFError
    else:  # the CRC-32 in the trailer does not match
        raw = good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]
        error = gzip.BadGzipFile
    with pytest.raises(error):
        gzip.decompress(raw)
    return raw


@pytest.mark.parametrize(("kind", "detail"), [
    ("zlib", "Error -3 while decompressing data"),
    ("truncated", "Compressed file ended before the end-of-stream marker"),
    ("crc", "CRC check failed"),
])
def test_a_damaged_gzip_is_named(tmp_path: Path, kind: str, detail: str) -> None:
    path = tmp_path / "damaged.csv.gz"
    path.write_bytes(_damaged(kind))
    with pytest.raises(ValidationError) as err:
        load_dataset(path)
    line = err.value.one_line()
    assert f"dataset {path} cannot be read: damaged gzip data ({detail}" in line


def test_a_gz_that_is_not_gzip_says_so(tmp_path: Path) -> None:
    # Even a valid CSV: the name promises gzip, so something went wrong on the way.
    path = _write(tmp_path / "plain.csv.gz", ROWS)
    with pytest.raises(ValidationError, match=r"plain\.csv\.gz is not gzip \(its name ends"):
        load_dataset(path)
    binary = tmp_path / "binary.csv.gz"
    binary.write_bytes(b"PK\x03\x04 a zip, not a gzip")
    with pytest.raises(ValidationError, match="is not gzip"):
        load_dataset(binary)
    gz_without_the_name = _write(tmp_path / "rows.csv", ROWS, gz=True)
    assert len(load_dataset(gz_without_the_name).record_ids) == 199  # told by its bytes


def test_a_field_beyond_the_csv_limit_names_its_line(tmp_path: Path) -> None:
    import csv

    long = "x" * (csv.field_size_limit() + 1)
    path = _write(tmp_path / "long.csv", ROWS.replace("abstract 1,", f'"{long}",', 1))
    with pytest.raises(ValidationError) as err:
        load_dataset(path)
    line = err.value.one_line()
    assert f"dataset {path}, line 2: not valid CSV (field larger than field limit" in line
    assert "unclosed quote" in line


def test_a_record_id_of_non_ascii_digits_is_not_a_number(tmp_path: Path) -> None:
    assert "²".isdigit()  # what let it through
    path = _write(tmp_path / "sup.csv", ROWS.replace("\n2,", "\n²,", 1))
    with pytest.raises(ValidationError, match=r"sup\.csv:3: record_id '²' is not a whole number"):
        load_dataset(path)


def test_a_folder_or_an_impossible_name_is_not_called_missing(tmp_path: Path) -> None:
    # It was "dataset … does not exist", of a folder that does.
    proc = run_cli("simulate", str(tmp_path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"dataset {tmp_path} is not a file")
    proc = run_cli("simulate", str(tmp_path / "nope.csv"),
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"dataset {tmp_path / 'nope.csv'} does not exist")
    # Path.exists() raised ENAMETOOLONG: an internal error, where mmlr meta and poll --pmids
    # said it in one line (store/infile.py, now for all three)
    long = tmp_path / f"{'a' * 300}.csv"
    proc = run_cli("simulate", str(long), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"dataset {long} cannot be read: File name too long")


def test_a_negative_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"seed -1 is negative") as err:
        simulate(_write(tmp_path / "rows.csv", ROWS), seed=-1)
    assert "--seed takes a whole number ≥ 0" in err.value.one_line()


def test_cli_damaged_gzip_and_negative_seed_are_one_line(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(_damaged("zlib"))
    assert_one_line_error(_cli(tmp_path, str(damaged)), "damaged gzip data")
    rows = _write(tmp_path / "rows.csv", ROWS)
    assert_one_line_error(_cli(tmp_path, str(rows), "--seed", "-1"), "seed -1 is negative")


def _multiline(labels: list[str]) -> str:
    """A dataset whose abstracts span 7 lines each: record k starts on line 2 + 7·(k − 1)."""
    abstract = '"' + "\n".join(f"sentence {j}" for j in range(7)) + '"'
    return "record_id,title,abstract,label_included\n" + "".join(
        f"{k},title {k},{abstract},{label}\n" for k, label in enumerate(labels, start=1))


def test_a_bad_record_is_named_by_the_file_line_it_starts_on(tmp_path: Path) -> None:
    # The fifth record starts on line 30; the message said "multiline.csv:6" (records counted).
    path = _write(tmp_path / "multiline.csv", _multiline(["1", "0", "1", "0", "x", "1"]))
    with pytest.raises(ValidationError) as err:
        load_dataset(path)
    assert err.value.one_line() == (f"{path}:30: label_included 'x' for record_id 5 is not 0 "
                                    "or 1 (every record needs a label for a simulation)")
    path = _write(tmp_path / "twice.csv", _multiline(["1", "0", "1"]) + "2,again,,1\n")
    with pytest.raises(ValidationError) as err:
        load_dataset(path)
    assert err.value.one_line() == f"{path}:23: record_id 2 appears twice"
    assert len(load_dataset(_write(tmp_path / "ok.csv", _multiline(["1", "0", "1"]))).docs) == 3


def test_a_field_beyond_the_limit_names_the_line_its_record_starts_on(tmp_path: Path) -> None:
    import csv

    # The record starts on line 3, its title on line 4 is too long: line 4 was named.
    long = "x" * (csv.field_size_limit() + 1)
    path = _write(tmp_path / "long.csv", "record_id,title,abstract,label_included\n1,a,b,1\n"
                                         f'2,"two\n{long}",c,0\n')
    proc = run_cli("simulate", str(path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc)
    assert proc.stderr.strip() == (
        f"mmlr: error: dataset {path}, line 3: not valid CSV (field larger than field limit "
        "(131072)) (look for an unclosed quote in the record starting on that line)")


def _textless(titles: str) -> str:
    # 100 labelled records whose title and abstract give no word of two letters or more
    rows = [f"{i},{titles},,{1 if i < 5 else 0}" for i in range(100)]
    return "record_id,title,abstract,label_included\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("titles", ["", "a b c"])
def test_a_dataset_without_words_is_refused_by_name(tmp_path: Path, titles: str) -> None:
    # sklearn's "Found array with 0 feature(s)" at the first fit was an internal error
    path = _write(tmp_path / "textless.csv", _textless(titles))
    with pytest.raises(ValidationError) as err:
        simulate(path)
    assert err.value.one_line().startswith(
        f"dataset {path} gives no words to learn from (columns read: title, abstract)")


def test_cli_dataset_without_words_is_one_line_and_prints_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "textless.csv", _textless(""))
    proc = _cli(tmp_path, str(path))
    assert_one_line_error(proc, f"dataset {path} gives no words to learn from")
    assert proc.stdout == ""  # no blank line left by the progress bar


def test_cli_prior_ids_not_two_ids_is_a_usage_error(tmp_path: Path) -> None:
    # read before the dataset: a malformed option, exit 2 as argparse's own (it was 1)
    proc = _cli(tmp_path, str(tmp_path / "any.csv"), "--prior-ids", "12")
    assert_one_line_error(proc, "--prior-ids takes two record_id values POS,NEG, got '12'",
                          code=2)
