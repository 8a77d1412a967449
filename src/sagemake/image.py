"""The training image: its tag, and building, checking and pushing it with the container engine.

The tag is a hash of the build context as the engine receives it (every file
that .dockerignore lets through), the Dockerfile, the build flags that change
the result and the private dependencies: editing anything that can reach the
image gives a new tag, and nothing else does. No list of image inputs exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from sagemake import buildcontext
from sagemake.cli import UserError, say
from sagemake.config import Config

# Build flags that change how a build runs, not what it makes: they stay out of the tag.
NEUTRAL_WITH_VALUE = ("--network", "--progress", "--isolation", "--memory", "-m", "--cpu-shares", "--cpuset-cpus")
NEUTRAL = ("--quiet", "-q", "--pull", "--no-cache", "--rm", "--force-rm")
UNCHECKED = "-unchecked"  # a new build's tag until it is shown to start
WHEELS = "build/wheels"  # made by scripts/prepare.sh from PRIVATE_DEPS, so PRIVATE_DEPS stands for them


def tag(config: Config) -> str:
    """12 hex characters naming the image's content."""
    context, dockerfile = config.path("BUILD_CONTEXT"), config.dockerfile
    if not context.is_dir():
        raise UserError(f"BUILD_CONTEXT={config['BUILD_CONTEXT']} is not a folder: point it at your image's "
                        "build context (default: the repository root)")
    if not dockerfile.is_file():
        raise UserError(f"DOCKERFILE={config['DOCKERFILE'] or dockerfile} does not exist: "
                        "point it at your Dockerfile (default: docker/Dockerfile)")
    extra = [" ".join(meaningful_flags(config.words("CONTAINER_BUILD_FLAGS"))), config["PRIVATE_DEPS"]]
    wheels = config.root / WHEELS
    skip = wheels.relative_to(context).as_posix() + "/" if wheels.is_relative_to(context) else None
    try:
        return buildcontext.context_digest(context, dockerfile, extra, skip=skip)[:12]
    except ValueError as err:  # an unreadable .dockerignore pattern, say
        raise UserError(f"cannot read the build context: {err}") from None


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

    def _quiet(self, *args: str, timeout: int = 60) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run([self.name, *args], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def reachable(self) -> bool:
        answer = self._quiet("info", timeout=20)
        return answer is not None and answer.returncode == 0

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
