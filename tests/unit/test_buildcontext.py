"""The build context as the engine receives it (.dockerignore with Docker's rules), and its digest.

The last test compares context_files with what a real Docker engine copies
from the same context. It runs wherever `docker info` answers; without an
engine it is skipped, unless REQUIRE_CONTAINER_TESTS=1, where it fails.
TEST_CONTAINER_FLAGS holds extra flags for `docker build` and `docker run`
(e.g. --network host).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from sagemake.buildcontext import Copied, context_digest, context_files, copied, excluded, load_patterns, read_rules

ENGINE = "docker"
BASE_IMAGE = "python:3.11-slim"


def make_tree(root: Path, files: list[str], ignore: str | None = None) -> Path:
    """root with each file (its own name as content) and, when given, a .dockerignore."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    if ignore is not None:
        (root / ".dockerignore").write_text(ignore)
    return root


def listed(tmp_path: Path, files: list[str], ignore: str) -> list[str]:
    """context_files of a fresh tree, without the .dockerignore itself."""
    return [name for name in context_files(make_tree(tmp_path / "ctx", files, ignore)) if name != ".dockerignore"]


# --- the .dockerignore rules --------------------------------------------------------------------------------


def test_no_ignore_file_lists_everything_sorted_but_empty_directories(tmp_path):
    root = make_tree(tmp_path / "ctx", ["b", "a/c", "Dockerfile", ".git/HEAD"])
    (root / "empty/deeper").mkdir(parents=True)
    assert context_files(root) == [".git/HEAD", "Dockerfile", "a/c", "b"]


def test_comments_only_when_hash_is_the_first_character(tmp_path):
    files = ["a", "# not a comment", "#x"]
    assert listed(tmp_path, files, "# a\n#a\n  #x\n") == ["# not a comment", "a"]


def test_blank_lines_whitespace_and_crlf(tmp_path):
    assert listed(tmp_path, ["a", "b", "c"], "\n   \n a  \r\n\tb\t\r\n") == ["c"]


def test_directory_excludes_everything_under_it(tmp_path):
    files = ["data/a", "data/x/y/z.bin", "database", "src/data/kept"]
    assert listed(tmp_path, files, "data\n") == ["database", "src/data/kept"]


def test_trailing_slash_and_dots_are_cleaned(tmp_path):
    assert listed(tmp_path, ["a/b", "c", "d/e", "f"], "./a/../c\nd/./\na/\n") == ["f"]


def test_exception_reincludes_a_file_under_an_excluded_directory(tmp_path):
    files = ["data/a", "data/keep.txt", "data/sub/keep.txt", "other"]
    assert listed(tmp_path, files, "data\n!data/keep.txt\n") == ["data/keep.txt", "other"]


def test_exception_reincludes_a_directory(tmp_path):
    files = ["docker/Dockerfile", "docker/sub/x", "src/a.py", "build/wheels/w.whl", "build/tmp", "README"]
    got = listed(tmp_path, files, "*\n!docker/\n!src/\n!build/wheels/\n")
    assert got == ["build/wheels/w.whl", "docker/Dockerfile", "docker/sub/x", "src/a.py"]


def test_later_rule_wins(tmp_path):
    files = ["a.md", "README.md", "CHANGES.md", "x"]
    assert listed(tmp_path, files, "*.md\n!README.md\n!CHANGES.md\nCHANGES.md\n") == ["README.md", "x"]


def test_leading_slash_is_dropped(tmp_path):
    assert listed(tmp_path, ["top.txt", "sub/top.txt"], "/top.txt\n") == ["sub/top.txt"]


def test_star_stays_within_one_directory(tmp_path):
    files = ["a.log", "logs/b.log", "x/y", "x/z/y"]
    assert listed(tmp_path, files, "*.log\n*/y\n") == ["logs/b.log", "x/z/y"]


def test_double_star_matches_any_number_of_directories(tmp_path):
    files = ["__pycache__/a.pyc", "p/__pycache__/b.pyc", "p/q/r/__pycache__/c.pyc", "p/q/m.py",
             "a/x", "a/b/c/x", "a/b/y", "b/x"]
    assert listed(tmp_path, files, "**/__pycache__\na/**/x\n") == ["a/b/y", "b/x", "p/q/m.py"]


def test_question_mark_is_one_character_but_not_a_slash(tmp_path):
    files = ["f1.c", "f22.c", "fa.c", "f/.c"]
    assert listed(tmp_path, files, "f?.c\n") == ["f/.c", "f22.c"]


def test_character_classes(tmp_path):
    files = ["x1", "x2", "x3", "xa", "xb", "y!", "ya"]
    # [^...] negates; [!...] is a class holding "!", as in Go's regular expressions
    assert listed(tmp_path, files, "x[1-2]\nx[^0-9a]\ny[!]\n") == ["x3", "xa", "ya"]


def test_backslash_escapes_a_wildcard(tmp_path):
    assert listed(tmp_path, ["st*r", "star", "q?", "qq"], "st\\*r\nq\\?\n") == ["qq", "star"]


def test_dockerfile_and_ignore_file_are_in_the_context_unless_excluded(tmp_path):
    root = make_tree(tmp_path / "ctx", ["Dockerfile", "a"], "")
    assert context_files(root) == [".dockerignore", "Dockerfile", "a"]
    (root / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    assert context_files(root) == ["a"]


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    root = make_tree(tmp_path / "ctx", ["a", "b", "docker/Dockerfile"], "a\n")
    dockerfile = root / "docker/Dockerfile"
    assert context_files(root, dockerfile=dockerfile) == [".dockerignore", "b", "docker/Dockerfile"]
    (root / "docker/Dockerfile.dockerignore").write_text("b\n")
    assert context_files(root, dockerfile=dockerfile) == [
        ".dockerignore", "a", "docker/Dockerfile", "docker/Dockerfile.dockerignore"]
    assert "a" not in context_files(root)  # without the Dockerfile: the context's own


def test_explicit_ignore_file_wins(tmp_path):
    root = make_tree(tmp_path / "ctx", ["a", "b", "Dockerfile"], "a\n")
    (root / "Dockerfile.dockerignore").write_text("Dockerfile\n")
    rules = make_tree(tmp_path / "elsewhere", [])
    (rules / "rules").write_text("b\n")
    assert context_files(root, rules / "rules", root / "Dockerfile") == [
        ".dockerignore", "Dockerfile", "Dockerfile.dockerignore", "a"]


def test_odd_names_and_symlinks(tmp_path):
    files = ["naïve café.txt", "with space/f i l e", "日本/語.txt", "日本/other", "x[1].txt", "br{a}ce$"]
    root = make_tree(tmp_path / "ctx", files, "日本\n!日本/語.txt\nwith space/f*\nx\\[1\\].txt\n")
    os.symlink("naïve café.txt", root / "link to café")
    os.symlink("nowhere", root / "dangling")
    os.symlink("日本", root / "dirlink")  # listed as a link, never followed
    assert context_files(root) == [".dockerignore", "br{a}ce$", "dangling", "dirlink", "link to café",
                                   "naïve café.txt", "日本/語.txt"]


def test_docker_quirks_are_kept(tmp_path):
    # a rule matched by a directory holds below it; a later rule is only tried on the path itself
    assert listed(tmp_path / "1", ["a/b/c", "a/d"], "a\n!a/b\na\n") == ["a/b/c"]
    # "**" then literal text is a plain suffix test, "text**" a plain prefix test
    assert listed(tmp_path / "2", ["barfoo", "x/zfoo", "foo", "fo"], "**foo\n") == ["fo"]
    assert listed(tmp_path / "3", ["foobar", "foo/x", "fo"], "foo**\n") == ["fo"]


def test_wildcard_exception_looks_inside_excluded_directories(tmp_path):
    # BuildKit's walk (the legacy builder and buildah skip the directory: a superset is safe for a tag)
    assert listed(tmp_path, ["a/x/keep", "a/y", "keep", "b.py", "c/d.py"], "**\n!**/*.py\n!keep\n") == [
        "b.py", "c/d.py", "keep"]


def test_read_rules_normalises_as_docker():
    text = "\ufefftest1\n/test2\n/a/file/here\n\nlastfile\n# comment\n! /inverted/abs/path\n!\n! \n  # kept \n"
    assert read_rules(text) == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!", "# kept"]


@pytest.mark.parametrize("rule", ["!", "[a", "a\\"])
def test_invalid_patterns_are_refused(tmp_path, rule):
    root = make_tree(tmp_path / "ctx", ["a"], f"{rule}\n")
    with pytest.raises(ValueError, match="dockerignore"):
        context_files(root)


def test_bad_arguments_are_refused(tmp_path):
    root = make_tree(tmp_path / "ctx", ["Dockerfile"])
    with pytest.raises(ValueError, match="is not a directory"):
        context_files(root / "Dockerfile")
    with pytest.raises(ValueError, match="is not a directory"):
        context_digest(tmp_path / "missing", root / "Dockerfile")
    with pytest.raises(ValueError, match="does not exist"):
        context_digest(root, root / "Containerfile")
    with pytest.raises(ValueError, match="does not exist"):
        context_files(root, root / "no.dockerignore")


# --- the digest ---------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """A context with included and excluded files, and its Dockerfile."""
    root = make_tree(tmp_path / "ctx", ["Dockerfile", "src/app.py", "src/data.bin", "notes/todo.txt"],
                     "notes\n**/*.tmp\n")
    return root, root / "Dockerfile"


def test_digest_is_a_stable_sha256(project):
    root, dockerfile = project
    first = context_digest(root, dockerfile)
    assert len(first) == 64 and int(first, 16) >= 0
    assert context_digest(root, dockerfile) == first


def test_editing_an_included_file_changes_the_digest(project):
    root, dockerfile = project
    before = context_digest(root, dockerfile)
    (root / "src/app.py").write_text("print('changed')\n")
    assert context_digest(root, dockerfile) != before


def test_excluded_files_do_not_count(project):
    root, dockerfile = project
    before = context_digest(root, dockerfile)
    (root / "notes/todo.txt").write_text("edited")
    (root / "notes/new.txt").write_text("new")
    (root / "src/scratch.tmp").write_text("scratch")
    assert context_digest(root, dockerfile) == before


def test_adding_renaming_or_unignoring_a_file_changes_the_digest(project):
    root, dockerfile = project
    digests = {context_digest(root, dockerfile)}
    (root / "src/new.py").write_text("")
    digests.add(context_digest(root, dockerfile))
    (root / "src/new.py").rename(root / "src/renamed.py")
    digests.add(context_digest(root, dockerfile))
    (root / ".dockerignore").write_text("**/*.tmp\n")
    digests.add(context_digest(root, dockerfile))
    assert len(digests) == 4


def test_dockerfile_and_extra_strings_count(project, tmp_path):
    root, dockerfile = project
    base = context_digest(root, dockerfile)
    assert context_digest(root, dockerfile, ["--build-arg=A=1"]) != base
    assert context_digest(root, dockerfile, ["a", "b"]) != context_digest(root, dockerfile, ["ab"])
    assert context_digest(root, dockerfile, ["a", "b"]) != context_digest(root, dockerfile, ["b", "a"])
    outside = tmp_path / "Dockerfile.outside"
    outside.write_bytes(dockerfile.read_bytes())
    assert context_digest(root, outside) == base  # the Dockerfile counts by content, wherever it lives
    outside.write_text("FROM scratch\n")
    assert context_digest(root, outside) != base


def test_mtime_does_not_count_but_the_executable_bit_does(project):
    root, dockerfile = project
    before = context_digest(root, dockerfile)
    os.utime(root / "src/app.py", (1_000_000, 1_000_000))
    os.utime(root / "src", (1_000_000, 1_000_000))
    (root / "src/app.py").chmod(0o600)
    assert context_digest(root, dockerfile) == before
    (root / "src/app.py").chmod(0o755)
    assert context_digest(root, dockerfile) != before


def test_symlink_target_counts(project):
    root, dockerfile = project
    os.symlink("app.py", root / "src/link")
    before = context_digest(root, dockerfile)
    (root / "src/link").unlink()
    os.symlink("data.bin", root / "src/link")
    assert context_digest(root, dockerfile) != before


def test_digest_is_independent_of_creation_order(tmp_path):
    names = [f"d{i % 3}/f{i}" for i in range(30)] + ["Dockerfile"]
    one = make_tree(tmp_path / "one", names, "d2/f5\n")
    two = make_tree(tmp_path / "two", list(reversed(names)), "d2/f5\n")
    assert context_digest(one, one / "Dockerfile") == context_digest(two, two / "Dockerfile")


def test_large_files_are_read_whole(project):
    root, dockerfile = project
    big = root / "src/data.bin"
    big.write_bytes(b"\0" * (3 << 20))
    before = context_digest(root, dockerfile)
    with open(big, "r+b") as stream:
        stream.seek(-1, os.SEEK_END)
        stream.write(b"\1")
    assert context_digest(root, dockerfile) != before


# --- what a Dockerfile copies ------------------------------------------------------------------------------

DOCKERFILE = """# escape=`
FROM python:3.11-slim AS base
# COPY not/this comment
COPY --chown=1000:1000 --chmod=755 `

  # a comment inside the instruction
  app/ lib/*.py /opt/
ADD ["with space/f i l e", "/opt/"]
COPY --from=base /usr/bin/python3 /x
ADD https://example.com/a.tgz /opt/
COPY $FOLDER/ /opt/
RUN <<END
COPY not/an/instruction /x
END
COPY <<EOT /opt/inline.txt
ADD not/either /x
EOT
copy ./nested/../top.txt /top.txt
"""


def test_the_sources_a_dockerfile_copies_from_the_context(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    assert copied(tmp_path / "Dockerfile") == [
        Copied(4, "COPY", "app"), Copied(4, "COPY", "lib/*.py"), Copied(8, "ADD", "with space/f i l e"),
        Copied(18, "COPY", "top.txt")]


def test_a_source_the_ignore_file_keeps_out_is_named_with_the_rule_that_does(tmp_path):
    root = make_tree(tmp_path / "ctx", ["app/main.py", "lib/a.py", "lib/b.txt", "kept/x", "docs/a.md",
                                        "docs/b.md"], "# sagemake's\n*\n!kept\n!docs/b.md\n\ndocs/**/*.md\n")
    (root / "empty").mkdir()
    patterns = load_patterns(root / ".dockerignore")
    sources = [Copied(1, "COPY", name) for name in ("app", "lib/*.py", "kept", "docs", "missing", "empty")]
    found = excluded(root, context_files(root), patterns, sources)
    # app and lib/a.py by `*` (line 2); kept is let in; docs/b.md is let in, then out again by line 6; a missing
    # source or an empty folder is the engine's to report
    assert [(source.source, pattern.text, pattern.line) for source, pattern in found] == [
        ("app", "*", 2), ("lib/*.py", "*", 2), ("docs", "docs/**/*.md", 6)]
    (root / ".dockerignore").write_text("*\n!lib/b.txt\n")
    patterns = load_patterns(root / ".dockerignore")
    assert excluded(root, context_files(root), patterns, [Copied(1, "COPY", "lib")]) == []  # part of it is sent


# --- against a real engine ----------------------------------------------------------------------------------

VARIED_FILES = [
    "Dockerfile", ".gitignore", ".git/HEAD", "app/main.py", "app/__pycache__/main.cpython-311.pyc",
    "app/sub/util.py", "app/sub/__pycache__/util.pyc", "notes.md", "README.md", "docs/guide.md", "top.txt",
    "nested/top.txt", "f1.c", "f22.c", "x1", "x2", "xa", "data/big.bin", "data/keep.txt", "data/sub/keep.txt",
    "#hash", "st*r", "star", "naïve café.txt", "with space/f i l e", "with space/g", "日本/語.txt", "日本/other",
    "logs/a.log", "b.log", "secret.env", "a/b/c", "a/d", "barfoo", "y!", "yb", "foobar/x",
]
VARIED_IGNORE = """# build outputs and caches
**/__pycache__
*.log
logs
  #hash
/top.txt
f?.c
x[1-2]
*.md
!README.md
docs/
data
!data/keep.txt
st\\*r
日本
!日本/語.txt
with space/f*
.git
secret.env   \r
a
!a/b
a
**foo
foo**
y[!]
"""


def engine_answers() -> bool:
    try:
        return subprocess.run([ENGINE, "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def engine():
    if not engine_answers():
        message = f"no {ENGINE} engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')})"
        if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
            pytest.fail(f"REQUIRE_CONTAINER_TESTS=1 but {message}")
        pytest.skip(message)
    return ENGINE


def engine_copy(engine: str, context: Path) -> list[str]:
    """The files and symlinks `COPY . /ctx` puts in an image built from context, relative to /ctx."""
    flags = os.environ.get("TEST_CONTAINER_FLAGS", "").split()
    image = f"sagemake-buildcontext-test:{uuid.uuid4().hex[:12]}"
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY . /ctx\n")
    built = subprocess.run([engine, "build", *flags, "-t", image, str(context)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    try:
        found = subprocess.run([engine, "run", "--rm", *flags, image, "find", "/ctx", "(", "-type", "f", "-o",
                                "-type", "l", ")", "-print0"], capture_output=True, timeout=300, check=True)
    finally:
        subprocess.run([engine, "rmi", "-f", image], capture_output=True, timeout=120)
    return sorted(name.removeprefix("/ctx/") for name in os.fsdecode(found.stdout).split("\0") if name)


@pytest.mark.container  # the one test here that needs an engine
def test_context_files_match_what_the_engine_copies(engine, tmp_path):
    root = make_tree(tmp_path / "build context", VARIED_FILES, VARIED_IGNORE)
    (root / "empty/deeper").mkdir(parents=True)
    (root / "app/main.py").chmod(0o755)
    os.symlink("README.md", root / "link to readme")
    os.symlink("nowhere", root / "dangling")
    os.symlink("app", root / "dirlink")
    expected = context_files(root, dockerfile=root / "Dockerfile")
    assert {"README.md", "data/keep.txt", "日本/語.txt", "a/b/c", "Dockerfile", ".dockerignore"} <= set(expected)
    assert engine_copy(engine, root) == expected


@pytest.mark.parametrize("engine, variable", [("docker", "DOCKER_HOST"), ("podman", "CONTAINER_HOST")])
def test_an_engine_whose_socket_is_absent_is_not_asked(engine, variable, tmp_path, monkeypatch):
    """DOCKER_HOST (podman: CONTAINER_HOST) naming a socket that is not there: unreachable at once, the engine's
    program never run; once it is there, the engine is asked, once a command."""
    from sagemake.config import resolve
    from sagemake.image import Engine

    calls = tmp_path / "calls"
    program = tmp_path / engine
    program.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(variable, f"unix://{tmp_path}/engine.sock")
    config = resolve(root=Path(__file__).resolve().parents[2], environ={"CONTAINER_ENGINE": engine})
    assert not Engine(config).reachable() and not calls.exists()
    (tmp_path / "engine.sock").touch()
    there = Engine(config)
    assert there.reachable() and there.reachable()
    assert calls.read_text() == "info\n"
