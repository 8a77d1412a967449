"""The README and docs/ hold: the README stays short, every link resolves, every `make` command written in them names
a real target and known settings, and the README's quick-start commands that need no AWS and no engine run as
written."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo, tool_venv

from sagemake.config import AWS_REQUIRED, DEFAULTS, SETTINGS

README = ROOT / "README.md"
README_LIMIT = 15_000  # bytes: a newcomer reads it top to bottom; the rest belongs in docs/
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Pages linked before they are written: a link to them may dangle for now. Remove each name once its page exists.
PENDING: set[str] = set()

# What `make` takes besides the settings: the Makefile's own variables and those its scripts read.
MAKE_PARAMETERS = {"ENV", "JOB", "KEEP", "CHECKPOINTS", "TUNING", "FILE", "INPUT", "JOBS", "VENV", "PYTHON", "DEBUG",
                   "SINCE"}

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")  # a span may wrap onto the next line
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
TARGET = re.compile(r"^[a-z][a-z0-9-]*$")


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def make_commands(text: str) -> list[str]:
    """Every `make ...` command written in a page: a line of a code block (continuations joined, prompt and comment
    cut), or an inline code span, each from its `make` on, after any VAR=value words that set its environment."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"^\$ ", "", line.strip())
            commands.append(line)
    prose = FENCE.sub("", text)
    commands += [" ".join(span.split()) for span in INLINE.findall(prose)]
    found = []
    for command in commands:
        try:
            words = shlex.split(command, comments=True)
        except ValueError:  # a code line that is not shell (an error message, say)
            continue
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        if len(words) > 1 and words[0] == "make":
            found.append(command)
    return found


def make_arguments(command: str) -> tuple[list[str], list[str]]:
    """(targets, setting names) of one `make ...` command; optional arguments may be written [NAME=...]."""
    words = shlex.split(command, comments=True)
    while ASSIGNMENT.match(words[0]):
        words.pop(0)
    targets, names = [], []
    for word in words[1:]:
        if word in {"&&", "||", ";", "|", "&"}:
            break
        word = word.strip("[]")
        if word.startswith("-"):
            continue
        if match := ASSIGNMENT.match(word):
            names.append(match.group(1))
        elif TARGET.match(word):
            targets.append(word)
    return targets, names


def all_commands() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), command)
            for page in DOCS for command in make_commands(page.read_text())]


def test_the_readme_is_short():
    assert README.stat().st_size < README_LIMIT


def test_bring_your_own_names_every_setting_a_project_sets_once():
    """A project of one's own sets its name, data, image, metrics and AWS place once, in .env: the README's "Bring
    your own" names every such setting (none left to find by repeating it on each command), and only settings."""
    section = README.read_text().split("\n## Bring your own\n")[1].split("\n### ")[0]  # its settings, before path 1
    named = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", section))
    rows = {row.name: row for row in SETTINGS}
    sections = {rows[name].section for name in ("PROJECT_NAME", "DATA_DIR", "DOCKERFILE")}  # the project, data, image
    own = {row.name for row in SETTINGS if row.section in sections} | {"METRICS", "PRIMARY_METRIC", *AWS_REQUIRED}
    assert own - named == set()
    assert named - set(rows) == set()


def test_the_docs_exist():
    assert (ROOT / "docs/commands.md").is_file()
    assert len(all_commands()) > 50  # the parser finds the commands it is meant to check


def test_every_relative_link_resolves():
    broken = []
    for page in DOCS:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if not path.exists() and name not in PENDING:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings (code blocks left out)."""
    headings = re.findall(r"^#+ +(.+?) *$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_anchor_resolves():
    broken = []
    for page in DOCS:
        for target in LINK.findall(page.read_text()):
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if anchor and not re.match(r"^[a-z]+:", target) and path.suffix == ".md" and path.exists() \
                    and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken


def test_every_make_command_names_a_target():
    targets = makefile_targets()
    unknown = [(page, command) for page, command in all_commands()
               if not set(make_arguments(command)[0]) <= targets]
    assert not unknown


def test_every_make_command_sets_known_settings():
    known = set(DEFAULTS) | MAKE_PARAMETERS
    unknown = [(page, command) for page, command in all_commands()
               if not set(make_arguments(command)[1]) <= known]
    assert not unknown


def test_the_parser_sees_targets_settings_and_optional_words():
    assert make_arguments("make train ENV=prod HP='a=1 b=2' [JOB=<job>]") == (["train"], ["ENV", "HP", "JOB"])
    assert make_arguments("DEBUG=1 make -s tune-plan") == (["tune-plan"], [])
    assert make_commands("```sh\n$ make train \\\n    DATA_DIR=x   # a comment\n```\nand `make jobs`\n") == [
        "make train      DATA_DIR=x   # a comment", "make jobs"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A user's checkout with the example's channels written (what `make train` leaves), and an environment without
    AWS, settings or make variables of the caller."""
    import trainer.data

    repo = copy_repo(tmp_path_factory.mktemp("docs") / "my project")
    trainer.data.main(repo / "data")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("AWS_") and name not in DEFAULTS and name not in MAKE_PARAMETERS
           and name not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    env.update(VENV=tool_venv(), HOME=str(tmp_path_factory.mktemp("home")), AWS_EC2_METADATA_DISABLED="true",
               XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")))
    return repo, env


@pytest.mark.parametrize("command", ["make help", "make config", "make plan"])
def test_quick_start_commands_run_as_written(checkout, command):
    assert f"\n{command} " in README.read_text()  # as the README writes it, on a line of its own
    repo, env = checkout
    result = subprocess.run(shlex.split(command), cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
