"""The training image: its tag, and building, checking and pushing it with the container engine.

The tag is a hash of the build context as the engine receives it (every file
that .dockerignore lets through), the Dockerfile, the build flags that change
the result and the private dependencies: editing anything that can reach the
image gives a new tag, and nothing else does. No list of image inputs exists.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

from sagemake import buildcontext
from sagemake.cli import UserError, say
from sagemake.config import Config
from sagemake.job_python import check_imports, check_pins

# Build flags that change how a build runs, not what it makes: they stay out of the tag.
NEUTRAL_WITH_VALUE = ("--network", "--progress", "--isolation", "--memory", "-m", "--cpu-shares", "--cpuset-cpus")
NEUTRAL = ("--quiet", "-q", "--pull", "--no-cache", "--rm", "--force-rm")
UNCHECKED = "-unchecked"  # a new build's tag until it is shown to start
WHEELS = "build/wheels"  # made by scripts/prepare.sh from PRIVATE_DEPS, so PRIVATE_DEPS stands for them
IMAGE_TRAINER = "/opt/program/src/trainer"  # where docker/Dockerfile copies src/trainer/


def context(config: Config, engine: str | None = None) -> tuple[Path, Path, Path | None]:
    """The build context's folder, the Dockerfile and the ignore file that applies: the one place that knows the
    context. With engine, the ignore file that engine applies; without, BuildKit's choice, which the tag follows
    whichever engine builds (the same content has the same tag everywhere, and a source that another engine would
    leave out is refused before that engine builds)."""
    folder, dockerfile = config.path("BUILD_CONTEXT"), config.dockerfile
    if not folder.is_dir():
        raise UserError(f"BUILD_CONTEXT={config['BUILD_CONTEXT']} is not a folder: point it at your image's "
                        "build context (default: the repository root)")
    if not dockerfile.is_file():
        raise UserError(f"DOCKERFILE={config['DOCKERFILE'] or dockerfile} does not exist: "
                        "point it at your Dockerfile (default: docker/Dockerfile)")
    return folder, dockerfile, buildcontext.ignore_file(folder, dockerfile, engine is None or reads_beside(engine))


@functools.cache
def reads_beside(engine: str) -> bool:
    """Whether the engine's builder reads `<Dockerfile>.dockerignore` beside the Dockerfile: BuildKit (docker with
    its buildx plugin, or DOCKER_BUILDKIT=1) and podman do; docker's legacy builder (no buildx) does not."""
    if engine != "docker" or os.environ.get("DOCKER_BUILDKIT") == "1":
        return True
    if os.environ.get("DOCKER_BUILDKIT") == "0":
        return False
    try:
        return subprocess.run([engine, "buildx", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return True  # no docker here: BuildKit's rules, as a build elsewhere applies them


def tag(config: Config) -> str:
    """12 hex characters naming the image's content."""
    folder, dockerfile, ignore = context(config)
    extra = [" ".join(meaningful_flags(config.words("CONTAINER_BUILD_FLAGS"))), config["PRIVATE_DEPS"]]
    wheels = config.root / WHEELS
    skip = wheels.relative_to(folder).as_posix() + "/" if wheels.is_relative_to(folder) else None
    try:
        return buildcontext.context_digest(folder, dockerfile, extra, ignore, skip=skip)[:12]
    except ValueError as err:  # an unreadable .dockerignore pattern, say
        raise UserError(f"cannot read the build context: {err}") from None


def check_copied(config: Config) -> None:
    """Refuse, in one line, a COPY or ADD source that is in the context's folder but that the ignore file keeps
    from the engine: the build would fail on it (or the image would lack it) only after the steps before it."""
    folder, dockerfile, ignore = context(config, config["CONTAINER_ENGINE"])
    try:
        patterns = buildcontext.load_patterns(ignore)
        refused = buildcontext.excluded(folder, buildcontext.context_files(folder, ignore), patterns,
                                        buildcontext.copied(dockerfile))
    except ValueError as err:
        raise UserError(f"cannot read the build context: {err}") from None
    if not refused:
        return
    (source, pattern), others = refused[0], len(refused) - 1
    shown, rules = _shown(dockerfile, config.root), _shown(ignore, config.root)
    rule = ("!" if pattern.exception else "") + pattern.text
    more = f" (and {others} more source{'s' if others > 1 else ''})" if others else ""
    beside, by_context = f"{shown}.dockerignore", "set BUILD_CONTEXT to the folder your Dockerfile copies from"
    if config.sagemake_image:
        fix = f"add the line !{source.source} to {rules}, which lets in only what sagemake's Dockerfiles copy"
    elif rules == beside:  # their own ignore file keeps it out
        fix = f"add the line !{source.source} to {rules}, or {by_context}"
    elif reads_beside(config["CONTAINER_ENGINE"]):
        fix = f"{by_context}, or write {beside} beside it (the engine reads it instead of {rules})"
    else:
        fix = (f"{by_context}, or install docker's buildx plugin and write {beside} beside it (docker's legacy "
               f"builder, used without buildx, reads only {rules})")
    raise UserError(f"{shown} line {source.line}: {source.instruction} {source.source}{more} is left out of the "
                    f"build context by {rules} line {pattern.line} ({rule}): {fix}")


def meaningful_flags(flags: list[str]) -> list[str]:
    """The build flags that can change the image (--build-arg, --target, --platform, ...)."""
    kept, words = [], iter(flags)
    for flag in words:
        if flag in NEUTRAL_WITH_VALUE:
            next(words, None)
        elif flag not in NEUTRAL and flag.split("=", 1)[0] not in NEUTRAL_WITH_VALUE:
            kept.append(flag)
    return kept


class Engine:
    """Docker or podman, as CONTAINER_ENGINE names it, with CONTAINER_BUILD_FLAGS and CONTAINER_RUN_FLAGS."""

    def __init__(self, config: Config):
        self.config = config
        self.name = config["CONTAINER_ENGINE"]
        self.run_flags = config.words("CONTAINER_RUN_FLAGS")
        self._reachable: bool | None = None

    def _quiet(self, *args: str, timeout: int = 60) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run([self.name, *args], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def reachable(self) -> bool:
        """Asked once a command. No engine program, or DOCKER_HOST (podman: CONTAINER_HOST) naming a socket that does
        not exist, answers at once: asking the engine would only wait to fail."""
        if self._reachable is None:
            host = os.environ.get("CONTAINER_HOST" if self.name.endswith("podman") else "DOCKER_HOST", "")
            absent = shutil.which(self.name) is None or (host.startswith("unix://") and
                                                         not Path(host[len("unix://"):]).exists())
            answer = None if absent else self._quiet("info", timeout=20)
            self._reachable = answer is not None and answer.returncode == 0
        return self._reachable

    def has(self, image: str) -> bool:
        return self.inspect(image) is not None

    def inspect(self, image: str) -> dict | None:
        """The image's own configuration (Entrypoint, Labels, ...); None when the engine does not have it."""
        answer = self._quiet("image", "inspect", "--format", "{{json .Config}}", image, timeout=20)
        if answer is None or answer.returncode != 0:
            return None
        return json.loads(answer.stdout.strip() or "null") or {}

    def build(self, image: str) -> None:
        """Build the image from DOCKERFILE and BUILD_CONTEXT; it takes its content tag only once it is shown to
        start as SageMaker starts it, so a tag in the engine always names an image that can run."""
        config = self.config
        check_copied(config)
        if config.sagemake_image:
            check_pins(config.root)
        if config.sagemake_image or config["PRIVATE_DEPS"]:
            self._step([str(config.root / "scripts/prepare.sh")],
                       "the private dependencies could not be prepared (see above)")
        dockerfile, unchecked = config.dockerfile, f"{image}{UNCHECKED}"
        shown = _shown(dockerfile, config.root)
        say(f"build: {image} ({shown}, context {_shown(config.path('BUILD_CONTEXT'), config.root)})")
        self._step([self.name, "build", *config.words("CONTAINER_BUILD_FLAGS"), "-f", str(dockerfile), "-t",
                    unchecked, str(config.path("BUILD_CONTEXT"))],
                   f"the image build failed at the step shown above: fix {shown} or what it copies")
        self.check_startable(unchecked)
        if config.sagemake_image and config["CODE_MODE"] == "image":  # the trainer is in the image: its imports
            check_imports([self.name, "run", "--rm", *self.run_flags, "--entrypoint", "python", unchecked],
                          IMAGE_TRAINER, f"image {unchecked}")
        self._step([self.name, "tag", unchecked, image], f"could not tag {image}")
        self._quiet("rmi", unchecked)  # the name only: the image stays, under its content tag

    def check_startable(self, image: str) -> None:
        """SageMaker starts an image as `docker run IMAGE train`: `train` on PATH, or an ENTRYPOINT that takes it.
        An image that cannot start is refused, never deleted: it is the user's."""
        if self.config["CONTAINER_ENTRYPOINT"]:
            return  # the request names its own entrypoint
        answer = self._quiet("image", "inspect", "--format", "{{json .Config.Entrypoint}}", image)
        if answer is None or answer.returncode != 0:
            raise UserError(f"image {image} is not in the {self.name} engine: build or pull it first")
        if json.loads(answer.stdout.strip() or "null"):
            return
        found = self._quiet("run", "--rm", *self.run_flags, "--entrypoint", "sh", image, "-c", "command -v train",
                            timeout=120)
        if found is None or found.returncode != 0:
            raise UserError(f"image {image} has neither an executable 'train' on its PATH nor an ENTRYPOINT "
                            "(SageMaker runs `docker run IMAGE train`): add one to the Dockerfile, "
                            "or set CONTAINER_ENTRYPOINT (the image is kept for you to look into)")

    def login(self, registry: str, username: str, password: str) -> None:
        try:
            answer = subprocess.run([self.name, "login", "--username", username, "--password-stdin", registry],
                                    input=password, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise UserError(f"could not log in to {registry}: {err}") from None
        if answer.returncode != 0:
            raise UserError(f"could not log in to {registry}: {answer.stderr.strip()}: check your AWS credentials")

    def push(self, image: str) -> None:
        say(f"push: {image}")
        self._step([self.name, "push", image], f"pushing {image} failed (see above): nothing was submitted")

    def _step(self, command: list[str], failure: str) -> None:
        """A long step whose output the user watches (on stderr: stdout is for data)."""
        try:
            code = subprocess.run(command, stdout=2, check=False).returncode
        except OSError as err:
            raise UserError(f"{command[0]} could not run ({err.strerror}): install it, or set CONTAINER_ENGINE") \
                from None
        if code != 0:
            raise UserError(failure)


def check(config: Config) -> str:
    """`make doctor`'s line about the engine: needed only to build a new image."""
    engine = Engine(config)
    if not shutil.which(engine.name):
        raise UserError(f"{engine.name} is not installed: install it to build images, or set CONTAINER_ENGINE")
    if not engine.reachable():
        raise UserError(f"{engine.name} is installed but no engine answers: start it (needed only to build a new "
                        "image)")
    return f"{engine.name} engine reachable"


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
