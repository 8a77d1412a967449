"""The build context exactly as the container engine receives it, and a digest of it for the image tag.

The image tag must change whenever anything the engine can COPY changes, and
only then, without anyone listing the image's inputs by hand. So this walks the
context the way the engine does and applies .dockerignore with Docker's own
rules: those of moby's patternmatcher and ignorefile, walked as BuildKit's fsutil
walks a local context. Docker's legacy builder gives the same files except in one
corner (see `_can_skip`) and ignores `<Dockerfile>.dockerignore`; buildah/podman
differ in a few more corners. It also reads what a Dockerfile's COPY and ADD take
from the context, so that a source the ignore file keeps out is named, with the
ignore file's line, before any build. Only the standard library is used.
"""

from __future__ import annotations

import bisect
import glob
import hashlib
import json
import os
import re
import stat
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".dockerignore"
CHUNK = 1 << 20
FORMAT = b"sagemake-buildcontext-v1"
GLOB_CHARS = "*[]?^\\"  # what makes a pattern more than a literal path (fsutil's list, on Linux)
REGEX_SPECIALS = ".+()|{}$"  # regex syntax that is literal in a pattern (patternmatcher's escape list)


# --- reading .dockerignore ---------------------------------------------------------------------------------


def go_clean(path: str) -> str:
    """Go's filepath.Clean on a slash path: the shortest equivalent path (posixpath.normpath keeps `//`)."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else cleaned or "."


def read_rules(text: str) -> list[str]:
    """The patterns of a .dockerignore text, normalised as Docker's ignorefile.ReadAll does.

    A line is a comment only when `#` is its very first character; whitespace is
    trimmed (also after a leading `!`), the path cleaned and one leading `/` dropped.
    """
    return [rule for _, rule in numbered_rules(text)]


def numbered_rules(text: str) -> list[tuple[int, str]]:
    """read_rules, each pattern with its line number in the file (from 1)."""
    rules = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        rules.append((number + 1, "!" + line if exception else line))
    return rules


# --- matching one pattern ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One cleaned .dockerignore pattern, matched the way patternmatcher matches it."""

    text: str  # cleaned, without the leading `!`
    exception: bool
    kind: str  # "exact", "prefix", "suffix" or "regexp": patternmatcher's shortcuts change results in corners
    regex: re.Pattern[str] | None
    line: int = 0  # its line in the ignore file (0: not read from one)

    def matches(self, path: str) -> bool:
        """Whether the slash path (relative to the context) matches this pattern itself, not via a parent."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


def translate(text: str) -> tuple[str, str]:
    """The match kind and regular expression of a cleaned pattern, following patternmatcher's compile.

    `*` and `?` stay within one path segment, `**` spans any number of segments
    (also none), `[...]` is a character class and `\\` escapes the next character.
    A pattern starting with `**` and otherwise literal is a plain suffix test, one
    ending in `**` and otherwise literal a plain prefix test, as in Docker.
    """
    regex, kind, i, first = "", "exact", 0, True
    while i < len(text):
        char = text[i]
        i += 1
        if char == "*" and text[i:i + 1] == "*":
            i += 1
            if text[i:i + 1] == "/":
                i += 1
            if i == len(text):
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex, kind = regex + ".*", "regexp"
            else:
                regex, kind = regex + "(?:.*/)?", "regexp"
            if first:
                kind = "suffix"
        elif char == "*":
            regex, kind = regex + "[^/]*", "regexp"
        elif char == "?":
            regex, kind = regex + "[^/]", "regexp"
        elif char in REGEX_SPECIALS:
            regex += "\\" + char
        elif char == "\\":
            if i < len(text):
                regex, kind, i = regex + "\\" + text[i], "regexp", i + 1
            else:
                regex += "\\"  # a dangling escape: invalid, as in Docker
        elif char in "[]":
            regex, kind = regex + char, "regexp"
        else:
            regex += char
        first = False
    return kind, regex


def compile_pattern(rule: str, source: str, line: int = 0) -> Pattern | None:
    """The Pattern for one rule (None for a blank one), as patternmatcher.New builds it; ValueError if invalid."""
    rule = rule.strip()
    if not rule:
        return None
    rule = go_clean(rule)
    exception = rule.startswith("!")
    if exception:
        if len(rule) == 1:
            raise ValueError(f'{source}: "!" alone is not a valid .dockerignore pattern.')
        rule = rule[1:]
    kind, regex = translate(rule)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": Go reads `[[` the same way
            compiled = re.compile(regex)  # also for the shortcut kinds: a malformed pattern fails the build
    except re.error as error:
        raise ValueError(f"{source}: the .dockerignore pattern {rule!r} is invalid ({error}).") from None
    return Pattern(rule, exception, kind, compiled if kind == "regexp" else None, line)


# --- walking the context -----------------------------------------------------------------------------------


def evaluate(patterns: Sequence[Pattern], path: str, parent: Sequence[bool] | None) -> tuple[bool, list[bool]]:
    """Whether path is excluded, and which patterns it matched, given its parent directory's matches.

    This is patternmatcher's MatchesUsingParentResults, as both Docker builders use
    it: a pattern matched by the parent directory holds for everything under it;
    otherwise a pattern is only tried when it could change the verdict so far
    (an exclusion while included, an exception while excluded), the last one wins.
    """
    excluded = False
    matched = [False] * len(patterns)
    for index, pattern in enumerate(patterns):
        hit = bool(parent and parent[index])
        if not hit:
            if pattern.exception != excluded:
                continue
            hit = pattern.matches(path)
        matched[index] = hit
        if hit:
            excluded = not pattern.exception
    return excluded, matched


def literal_part(pattern: Pattern) -> str:
    """The pattern without a trailing `/**` or `/*`, as fsutil compares it with directory names."""
    return pattern.text.removesuffix("/**").removesuffix("/*")


def _can_skip(patterns: Sequence[Pattern], directory: str) -> bool:
    """Whether the walk may leave out an excluded directory: no exception can re-include anything in it.

    BuildKit (fsutil) skips it when no exception exists, or when every exception
    is a literal path and none lies within the directory; an exception with a
    wildcard makes it look inside. The legacy builder never looks inside for a
    wildcard exception unless its text starts with the directory's path, so there
    `!**/keep` re-includes nothing under an excluded directory: this follows BuildKit.
    """
    exceptions = [pattern for pattern in patterns if pattern.exception]
    if any(any(char in GLOB_CHARS for char in literal_part(pattern)) for pattern in exceptions):
        return False
    return not any((literal_part(pattern) + "/").startswith(directory + "/") for pattern in exceptions)


def walk(context: Path, patterns: Sequence[Pattern]) -> list[str]:
    """The relative slash paths of the files and symlinks the engine sends, in no particular order."""
    found: list[str] = []
    pending: list[tuple[str, str, list[bool] | None, bool]] = [(str(context), "", None, False)]
    while pending:
        folder, prefix, parent, folder_excluded = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except PermissionError:
            if folder_excluded:
                continue  # an unreadable excluded directory: Docker passes over it too
            raise
        for entry in entries:
            path = prefix + entry.name
            excluded, matched = evaluate(patterns, path, parent)
            if entry.is_dir(follow_symlinks=False):
                if not (excluded and _can_skip(patterns, path)):
                    pending.append((entry.path, path + "/", matched, excluded))
            elif not excluded and (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                found.append(path)
    return found


# --- the public API ----------------------------------------------------------------------------------------


def ignore_file(context: Path, dockerfile: Path | None = None, beside: bool = True) -> Path | None:
    """The ignore file the engine applies: `<Dockerfile>.dockerignore` beside the Dockerfile (BuildKit and podman
    read it; beside=False for docker's legacy builder, which does not), else the context's .dockerignore, else
    none."""
    if dockerfile is not None and beside:
        specific = dockerfile.parent / (dockerfile.name + IGNORE_FILE)
        if specific.is_file():
            return specific
    default = context / IGNORE_FILE
    return default if default.is_file() else None


def load_patterns(source: Path | None) -> list[Pattern]:
    """The compiled patterns of an ignore file (none without one)."""
    if source is None:
        return []
    text = source.read_bytes().decode("utf-8", errors="surrogateescape")
    return [pattern for line, rule in numbered_rules(text)
            if (pattern := compile_pattern(rule, str(source), line)) is not None]


def check_context(context: Path) -> None:
    """ValueError unless context is a directory."""
    if not Path(context).is_dir():
        raise ValueError(f"The build context {context} is not a directory.")


def context_files(context: Path, dockerignore: Path | None = None, dockerfile: Path | None = None) -> list[str]:
    """The sorted relative POSIX paths of every regular file and symlink the engine receives from context.

    The rules come from dockerignore when given, else from `<dockerfile>.dockerignore`
    beside the Dockerfile when that exists, else from context/.dockerignore. The
    Dockerfile and the ignore file are listed like any file, unless excluded.
    Symlinks are listed, never followed; empty directories don't count.
    """
    context = Path(context)
    check_context(context)
    if dockerignore is not None and not Path(dockerignore).is_file():
        raise ValueError(f"The ignore file {dockerignore} does not exist.")
    source = Path(dockerignore) if dockerignore is not None else ignore_file(context, dockerfile)
    return sorted(walk(context, load_patterns(source)))


def field(data: bytes) -> bytes:
    """One length-prefixed field, so that no two different inputs give the same byte stream."""
    return len(data).to_bytes(8, "big") + data


def file_sha256(path: Path) -> bytes:
    """The sha256 of a file's content, read in chunks (contexts can hold large data files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def entry_fields(context: Path, name: str) -> tuple[bytes, bytes, bytes]:
    """Type, executable bit and content hash (a symlink: its target) of one listed entry."""
    path = context / name
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return b"symlink", b"-", os.fsencode(os.readlink(path))
    executable = b"x" if info.st_mode & stat.S_IXUSR else b"-"
    return b"file", executable, file_sha256(path)


def context_digest(context: Path, dockerfile: Path, extra: Sequence[str] = (), dockerignore: Path | None = None,
                   skip: str | None = None) -> str:
    """The sha256 hex digest of what makes the image: the Dockerfile, the extra strings and the context.

    extra holds whatever else changes the result (build flags, the private
    dependencies); skip, a folder prefix of files that extra stands for (the
    private wheels, made later from the list in extra). Each context file counts
    by path, type, executable bit and content; mtimes, other permission bits and
    listing order do not.
    """
    context, dockerfile = Path(context), Path(dockerfile)
    check_context(context)
    if not dockerfile.is_file():
        raise ValueError(f"The Dockerfile {dockerfile} does not exist.")
    names = [name for name in context_files(context, dockerignore, dockerfile)
             if not (skip and name.startswith(skip))]
    digest = hashlib.sha256(FORMAT)
    digest.update(field(file_sha256(dockerfile)))
    digest.update(field(str(len(extra)).encode()))
    for value in extra:
        digest.update(field(value.encode("utf-8", errors="surrogateescape")))
    digest.update(field(str(len(names)).encode()))
    for name in names:
        digest.update(field(os.fsencode(name)))
        for value in entry_fields(context, name):
            digest.update(field(value))
    return digest.hexdigest()


# --- what a Dockerfile copies from the context -------------------------------------------------------------

COPYING = ("COPY", "ADD")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


@dataclass(frozen=True)
class Copied:
    """One source of a COPY or ADD instruction: where the Dockerfile names it, and the path in the context."""

    line: int
    instruction: str
    source: str


def _instructions(text: str) -> list[tuple[int, str]]:
    """The Dockerfile's instructions, each with the line it starts on: continuation lines joined (comments and blank
    lines inside one skipped, as Docker does), heredoc bodies left out."""
    escape = "\\"
    lines = text.split("\n")
    for line in lines:  # parser directives: only before anything else
        directive = _DIRECTIVE.fullmatch(line.strip())
        if not directive:
            break
        if directive[1].lower() == "escape":
            escape = directive[2]
    found, index = [], 0
    while index < len(lines):
        start, logical = index + 1, lines[index].rstrip("\r")
        index += 1
        if not logical.strip() or logical.lstrip().startswith("#"):
            continue
        while logical.rstrip().endswith(escape) and index < len(lines):
            logical = logical.rstrip()[:-len(escape)]
            while index < len(lines) and (not lines[index].strip() or lines[index].lstrip().startswith("#")):
                index += 1
            if index < len(lines):
                logical += lines[index].rstrip("\r")
                index += 1
        for strip, _, word in _HEREDOC.findall(logical):  # the body is the instruction's, not instructions
            while index < len(lines) and (lines[index].lstrip("\t") if strip else lines[index]).rstrip("\r") != word:
                index += 1
            index += 1
        found.append((start, logical))
    return found


def copied(dockerfile: Path) -> list[Copied]:
    """The context paths the Dockerfile's COPY and ADD instructions copy (not those from a stage or an image
    (--from), URLs, heredocs, or paths built from variables, which only the build can know)."""
    text = Path(dockerfile).read_bytes().decode("utf-8", errors="surrogateescape")
    sources = []
    for line, logical in _instructions(text):
        words = logical.split(None, 1)
        if words[0].upper() not in COPYING or len(words) < 2:
            continue
        rest, flags = words[1].strip(), []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(flag.startswith("--from") for flag in flags):
            continue
        arguments = None
        if rest.startswith("["):
            try:
                arguments = json.loads(rest)
            except ValueError:
                pass
        if not isinstance(arguments, list) or not all(isinstance(word, str) for word in arguments):
            arguments = rest.split()
        for source in arguments[:-1]:
            if "$" in source or "://" in source or source.startswith(("<<", "git@")):
                continue
            cleaned = go_clean("/" + source).lstrip("/") or "."
            if cleaned != ".":
                sources.append(Copied(line, words[0].upper(), cleaned))
    return sources


def deciding(patterns: Sequence[Pattern], path: str) -> Pattern | None:
    """The exclusion that keeps path out of the context (None when it is in), its folders' matches carried down."""
    matched: list[bool] | None = None
    excluded, parts = False, path.split("/")
    for depth in range(1, len(parts) + 1):
        excluded, matched = evaluate(patterns, "/".join(parts[:depth]), matched)
    if not excluded or matched is None:
        return None
    return next(patterns[i] for i in reversed(range(len(patterns))) if matched[i] and not patterns[i].exception)


def excluded(context: Path, received: Sequence[str], patterns: Sequence[Pattern],
             sources: Iterable[Copied]) -> list[tuple[Copied, Pattern]]:
    """The sources that are in the context's folder but of which the engine receives nothing, each with the
    ignore-file pattern that keeps it out. A source with a wildcard counts by what it matches."""
    received = sorted(received)
    kept = set(received)

    def sent(path: str) -> bool:  # the file itself, or anything under the folder
        at = bisect.bisect_left(received, path + "/")
        return path in kept or (at < len(received) and received[at].startswith(path + "/"))

    refused = []
    for source in sources:
        names = (glob.glob(source.source, root_dir=context, include_hidden=True)
                 if any(char in "*?[" for char in source.source) else [source.source])
        present = [name for name in names if os.path.lexists(context / name)]
        if not present or any(sent(name) for name in present):
            continue
        for name in present:
            inside = context / name
            if inside.is_dir() and not inside.is_symlink():  # a folder: the first of its files tells which rule
                first = next((Path(folder, files[0]) for folder, _, files in os.walk(inside) if files), None)
                if first is None:
                    continue  # an empty folder: nothing to send
                name = first.relative_to(context).as_posix()
            if pattern := deciding(patterns, name):
                refused.append((source, pattern))
                break
    return refused
