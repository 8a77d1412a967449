"""A transform's input and output line by line: every line is a record (SageMaker knows no header), so a file that
starts with a header line is refused before anything runs, and an .out file with fewer (or more) lines than its
input's records fails the transform, naming the file."""

import pytest

from sagemake.cli import UserError
from sagemake.executors.local.transform import transform_file
from sagemake.jobs.transform import TransformFailed, check_answered, input_files

REQUEST = {"MaxPayloadInMB": 6, "BatchStrategy": "MultiRecord", "MaxConcurrentTransforms": 2}


def folder_of(tmp_path, **files):
    folder = tmp_path / "in"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_file_that_starts_with_a_header_line_is_refused_naming_it_and_the_fix(tmp_path):
    folder = folder_of(tmp_path, **{"a.csv": "1,2\n", "part/rows.csv": "age,bmi\n0.1,0.2\n0.3,0.4\n0.5,0.6\n"})
    with pytest.raises(UserError) as refused:
        input_files(folder, "in")
    assert str(refused.value) == ("INPUT=in: part/rows.csv starts with a header line ('age,bmi'), which SageMaker's "
                                  "batch transform would send as a record: remove that line (tail -n +2)")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("text", [
    "1,2\n3,4\n",
    "\ufeff1,2\n3,4\n",  # a byte order mark is no header
    "a great film\nawful, truly\n",  # a text model's lines: nothing above a number
    "id-7,0.5\nid-8,0.25\n",  # a key column beside numbers, in every line
    "age,bmi\n",  # one line: nothing to tell it by (the model answers it, or refuses it)
    "\n\n1,2\n",
    "1,,3\n2,5,4\n",  # an empty cell is a missing value, not a column's name
])
def test_rows_are_never_taken_for_a_header(tmp_path, text):
    folder = folder_of(tmp_path, **{"rows.csv": text})
    assert input_files(folder, "in") == [folder / "rows.csv"]


def test_a_header_beside_an_empty_cell_is_still_one(tmp_path):
    folder = folder_of(tmp_path, **{"rows.csv": ",age,bmi\n0,0.1,0.2\n"})  # pandas' to_csv: the index's name empty
    with pytest.raises(UserError, match=r"^INPUT=in: rows.csv starts with a header line \(',age,bmi'\)"):
        input_files(folder, "in")


class Dropping:
    """A model server that answers one line short for each request: as sagemake's own did for a header line."""

    def post(self, body: bytes) -> tuple[int, bytes]:
        return 200, b"".join(b"0.5\n" for _ in body.splitlines()[1:])


class Answering:
    def post(self, body: bytes) -> tuple[int, bytes]:
        return 200, b"".join(b"0.5\n" for _ in body.splitlines())


def test_outputs_fewer_than_the_records_fail_the_file_and_leave_no_out_file(tmp_path):
    source = folder_of(tmp_path, **{"rows.csv": "1,2\n3,4\n\n5,6\n7,8\n"}) / "rows.csv"
    destination = tmp_path / "out" / "rows.csv.out"
    with pytest.raises(TransformFailed) as failed:
        transform_file(Dropping(), source, "rows.csv", destination, REQUEST)
    assert str(failed.value) == ("rows.csv: 4 record(s) in, 3 line(s) out: the model must answer each record with "
                                 "one line, in order")
    assert not list(destination.parent.iterdir())
    assert transform_file(Answering(), source, "rows.csv", destination, REQUEST) == 1
    assert destination.read_bytes() == b"0.5\n" * 4


def test_every_record_answered_passes_and_a_missing_out_file_is_none_answered(tmp_path):
    folder = folder_of(tmp_path, **{"rows.csv": "1,2\n\n3,4", "rows.csv.out": "a\nb\n"})
    check_answered(folder / "rows.csv", folder / "rows.csv.out", "rows.csv")
    with pytest.raises(TransformFailed, match=r"^rows.csv: 2 record\(s\) in, 0 line\(s\) out"):
        check_answered(folder / "rows.csv", folder / "gone.out", "rows.csv")


def test_blank_lines_out_are_no_answers_as_blank_lines_in_are_no_records(tmp_path):
    """AssembleWith Line may end each response with a newline of its own: a MultiRecord response that ends in one
    then leaves a blank line after it, which answers nothing."""
    folder = folder_of(tmp_path, **{"rows.csv": "1,2\n3,4\n\n5,6\n", "rows.csv.out": "a\nb\n\nc\n\n"})
    check_answered(folder / "rows.csv", folder / "rows.csv.out", "rows.csv")
    (folder / "rows.csv.out").write_text("a\n\nb\n\n")
    with pytest.raises(TransformFailed, match=r"^rows.csv: 3 record\(s\) in, 2 line\(s\) out"):
        check_answered(folder / "rows.csv", folder / "rows.csv.out", "rows.csv")
