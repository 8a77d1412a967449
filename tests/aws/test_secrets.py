"""No credential in any output: DEBUG=1 and DEBUG=2 traces of real make targets against the AWS emulator, with
credentials in the environment and in a profile file; the ECR login's token; the one-line error; the mask itself
(src/sagemake/debug.py). test_container.py scans every layer of the built images with scan_image below.

The credentials are fakes, distinctive enough that finding one anywhere (as it is, URL-encoded, or base64 as
prepare.sh's git header carries GIT_HTTPS_TOKEN) can only be a leak.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import ROOT, copy_repo, sagemake
from emulator import ACCOUNT, SageMakerDriver, make_bucket, register_image, settings

from sagemake import debug

FAKE = {  # the environment's credentials in these tests
    "AWS_ACCESS_KEY_ID": "AKIAZQLEAKCHECK00042",
    "AWS_SECRET_ACCESS_KEY": "zqLeakCheck/Secret+AccessKey0000000000042",
    "AWS_SESSION_TOKEN": "IQoJzqLeakCheckSessionToken//////////wEaCmV1+LWNlbnRyYWwtMSJHMEUCIQ0042==",
    "GIT_HTTPS_TOKEN": "ghs_zqLeakCheckGitHttpsToken0042",
}
PROFILE = {  # the same, in a profile of $HOME/.aws/credentials
    "aws_access_key_id": "AKIAZQPROFILECHECK42",
    "aws_secret_access_key": "zqProfileCheck/Secret+AccessKey00000000042",
    "aws_session_token": "IQoJzqProfileCheckSessionToken/////////wEaCmV1+LWNlbnRyYWwtMSJHMEUCIQ0042==",
}
ECR_PASSWORD = f"{ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken holds, base64 of AWS:<password>


def forms(secrets: dict[str, str]) -> dict[str, bytes]:
    """Each secret as it is, URL-encoded and in base64 (alone, and as the Basic header prepare.sh sends)."""
    found = {}
    for name, value in secrets.items():
        found[name] = value
        found[f"{name} (URL-encoded)"] = quote(value, safe="")
        found[f"{name} (base64)"] = base64.b64encode(value.encode()).decode().rstrip("=")
        found[f"{name} (git header)"] = base64.b64encode(f"x-access-token:{value}".encode()).decode().rstrip("=")
    return {name: value.encode() for name, value in found.items()}


def leaks(blob, secrets: dict[str, str] = FAKE, needles: dict[str, bytes] | None = None) -> list[str]:
    """The names of the secrets in blob (text or bytes), in any of their forms."""
    data = blob.encode() if isinstance(blob, str) else blob
    return [name for name, value in (needles or forms(secrets)).items() if value in data]


def scan_image(engine: str, image: str, scratch: Path, secrets: dict[str, str] = FAKE) -> tuple[int, dict]:
    """`<engine> save` the image and look for each secret in every file of every layer (its bytes, its name and
    a link's target), in the image's config (with its history and environment) and its manifest.
    Returns (files scanned, {where: secrets found})."""
    archive = scratch / "image.tar"
    saved = subprocess.run([engine, "save", "-o", str(archive), image], capture_output=True, text=True, timeout=900)
    assert saved.returncode == 0, saved.stderr
    needles, found, files = forms(secrets), {}, 0
    try:
        with tarfile.open(archive) as outer:
            for member in outer:
                if not member.isfile():
                    continue
                files += 1
                handle = outer.extractfile(member)
                try:  # a layer: a tar, compressed or not
                    layer = tarfile.open(fileobj=handle, mode="r:*")
                except tarfile.TarError:
                    handle.seek(0)
                    if leaked := leaks(handle.read() + member.name.encode(), needles=needles):
                        found[member.name] = leaked
                    continue
                with layer:
                    for entry in layer:
                        files += 1
                        text = (entry.name + entry.linkname).encode()
                        if entry.isfile():
                            text += layer.extractfile(entry).read()
                        if leaked := leaks(text, needles=needles):
                            found[f"{member.name}:{entry.name}"] = leaked
    finally:
        archive.unlink(missing_ok=True)
    return files, found


def scan_tree(folder: Path, secrets: dict[str, str] = FAKE) -> tuple[int, dict]:
    """Every file under folder, its bytes and its name: (files scanned, {path: secrets found})."""
    needles, found, files = forms(secrets), {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files += 1
            if leaked := leaks(path.read_bytes() + str(path).encode(), needles=needles):
                found[str(path)] = leaked
    return files, found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A user's checkout (a copy of the working tree), with this one's virtualenv."""
    return copy_repo(tmp_path_factory.mktemp("secrets") / "my project")


def environment(env: dict, tmp_path: Path) -> dict:
    venv = os.environ.get("VENV", str(ROOT / ".venv"))
    return {**os.environ, "VENV": venv if os.path.isabs(venv) else str(ROOT / venv), "ENV": "prod",
            "DATA_DIR": str(tmp_path / "data"), "MODELS_DIR": str(tmp_path / "models"), **settings(), **env}


def make(repo: Path, target: str, env: dict, tmp_path: Path):
    """`make -s TARGET ENV=prod` in the checkout, as test_train_prod runs it."""
    return subprocess.run(["make", "-s", target], cwd=repo, env=environment(env, tmp_path), capture_output=True,
                          text=True, timeout=300)


def register_checkout_image(repo: Path, tmp_path: Path) -> None:
    """The checkout's image in the emulated ECR, as pushed earlier: no container engine is needed."""
    image = subprocess.run([*sagemake(repo), "image"], env=environment({}, tmp_path),
                           capture_output=True, text=True, check=True).stdout.strip()
    register_image(image)


@pytest.fixture
def credentials(aws, monkeypatch):
    """The emulated AWS, reached with FAKE credentials from the environment."""
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DEBUG", raising=False)
    return aws


def test_make_train_env_prod_traced_shows_aws_calls_and_no_credential(credentials, checkout, tmp_path,
                                                                       trained_model):
    make_bucket()
    register_checkout_image(checkout, tmp_path)
    with SageMakerDriver(model=trained_model):
        train = make(checkout, "train", {"DEBUG": "1"}, tmp_path)
    (tmp_path / "train.log").write_text(train.stdout + train.stderr)
    assert train.returncode == 0, train.stderr
    out = train.stdout + train.stderr
    assert leaks(out) == []
    # the trace is there: each AWS call with its parameters, each HTTP answer, the commands run, the credentials'
    # origin; the access key's id shown as `aws configure list` shows it
    assert "+ sagemake.aws.api: sts.GetCallerIdentity {}" in train.stderr
    assert re.search(r"\+ sagemake\.aws\.api: sagemaker\.CreateTrainingJob \{'TrainingJobName': ", train.stderr)
    assert re.search(r"\+ sagemake\.aws\.api:   -> 200\n", train.stderr)
    assert "+ botocore.credentials: Found credentials in environment variables." in train.stderr
    assert re.search(r"\+ sagemake\.run: .*python\S* -c ", train.stderr)  # the data step (its path may hold spaces)
    assert "Completed / Completed" in train.stderr

    # DEBUG=2: botocore's own log (headers, signing, bodies), on every step
    for target in ("data", "build", "upload", "doctor", "plan", "jobs"):
        result = make(checkout, target, {"DEBUG": "2"}, tmp_path)
        (tmp_path / f"{target}.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
        assert leaks(result.stdout + result.stderr) == [], target
        if target == "upload":  # nothing changed since train's sync: S3 is asked without boto3 (sagemake.aws.s3read)
            assert re.search(r"\+ sagemake\.aws\.s3read: HEAD http://\S+/sync-manifests/train\.json\n", result.stderr)
            assert "+ sagemake.aws.s3read:   -> 200" in result.stderr and "botocore" not in result.stderr
        elif target != "data":
            assert "+ botocore.endpoint: Making request for OperationModel" in result.stderr, target
        if target != "data":
            # where the session token and the signature stood, the mask stands (so this test can see it work)
            assert re.search(r"x-amz-security-token:\*\*\*\n", result.stderr), target
            assert re.search(r"Signature=\*\*\*", result.stderr), target
            assert "****************0042" in result.stderr  # the key id's last 4 characters
        out += result.stderr
    assert re.search(r"\+ sagemake\.run: .*python\S* -c ", out)  # the data step's command, traced by `make data`


def test_credentials_from_a_profile_file_are_never_traced(aws, checkout, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws/credentials").write_text("[leak-check]\n" + "".join(f"{k} = {v}\n" for k, v in PROFILE.items()))
    make_bucket()
    register_checkout_image(checkout, tmp_path)
    monkeypatch.delenv("DEBUG", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_PROFILE", "leak-check")
    result = make(checkout, "doctor", {"DEBUG": "2"}, tmp_path)
    (tmp_path / "doctor.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert "ok    credentials: account" in result.stdout
    assert "+ botocore.credentials: Found credentials in shared credentials file: ~/.aws/credentials" in result.stderr
    assert re.search(r"x-amz-security-token:\*\*\*\n", result.stderr)
    assert "****************CK42" in result.stderr
    assert leaks(result.stdout + result.stderr, PROFILE) == []


GET_TOKEN = """
from sagemake.aws import api as aws
from sagemake.__main__ import run
from sagemake.config import resolve

def main(argv):
    user, password = aws.ecr_credentials(aws.session(resolve()))
    return 0 if user == "AWS" and password else 1

run(main, "ecr-login")
"""


def test_the_ecr_login_token_is_never_traced(credentials):
    env = {**os.environ, "ENV": "prod", **settings(), "DEBUG": "2", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", GET_TOKEN], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "+ sagemake.aws.api: ecr.GetAuthorizationToken {}" in result.stderr
    assert re.search(r'"authorizationToken":\s*"\*\*\*"', result.stderr)  # the answer's body, as botocore logs it
    ecr = {"ECR password": ECR_PASSWORD, "ECR token": base64.b64encode(f"AWS:{ECR_PASSWORD}".encode()).decode()}
    assert leaks(result.stdout + result.stderr, {**FAKE, **ecr}) == []


def test_an_aws_error_quoting_a_signed_request_is_masked(monkeypatch, capsys):
    from botocore.exceptions import ClientError

    from sagemake.__main__ import run
    from sagemake.aws.api import explain
    from sagemake.cli import AwsError

    token = FAKE["AWS_SESSION_TOKEN"]
    message = ("The request signature we calculated does not match the signature you provided.\n\nThe Canonical "
               f"String for this request should have been\n'POST\n/\n\nhost:sts.amazonaws.com\nx-amz-date:"
               f"20261202T101500Z\nx-amz-security-token:{token}\n\nhost;x-amz-date;x-amz-security-token'")
    error = ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": message}}, "GetCallerIdentity")

    def main(argv):
        raise AwsError(explain(error))

    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["doctor"])
    with pytest.raises(SystemExit) as ended:
        run(main, "doctor")
    assert ended.value.code == 3
    stderr = capsys.readouterr().err
    assert stderr.startswith("sagemake: AWS GetCallerIdentity failed: SignatureDoesNotMatch: The request signature")
    assert "x-amz-security-token:***" in stderr and token not in stderr


# --- the mask itself: each shape a credential travels in -----------------------------------------------------

SECRET = FAKE["AWS_SECRET_ACCESS_KEY"]
TOKEN = FAKE["AWS_SESSION_TOKEN"]
GIT = FAKE["GIT_HTTPS_TOKEN"]
UNKNOWN = "zqNeverSeenBefore0042zqNeverSeenBefore0042"  # in no variable and no file: only its shape gives it away
SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
SHAPED = {
    "canonical request": f"POST\n/\nhost:sts.amazonaws.com\nx-amz-security-token:{UNKNOWN}\n",
    "values starting with b": f"x-amz-security-token:b{UNKNOWN}\nSignature:\nb{SIGNATURE[1:]}",
    "headers": f"{{'X-Amz-Security-Token': b'{UNKNOWN}', 'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAX/2026"
               f"1202/eu-central-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIGNATURE}'}}",
    "query": f"https://b.s3.amazonaws.com/k?X-Amz-Security-Token={UNKNOWN}&X-Amz-Signature={SIGNATURE}",
    "signature alone": f"Signature:\n{SIGNATURE}",
    "basic header": f"Authorization: Basic {base64.b64encode(f'x-access-token:{UNKNOWN}'.encode()).decode()}",
    "bearer header": f"{{'authorization': 'Bearer {UNKNOWN}'}}",
    "credentials file": f"[default]\naws_secret_access_key = {UNKNOWN}\naws_session_token={UNKNOWN}",
    "sts answer": f"<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>{UNKNOWN}</SecretAccessKey>"
                  f"<SessionToken>{UNKNOWN}</SessionToken></Credentials>",
    "sso answer": f'{{"roleCredentials": {{"secretAccessKey": "{UNKNOWN}", "sessionToken": "{UNKNOWN}"}}}}',
    "metadata answer": f'{{"Code" : "Success", "SecretAccessKey" : "{UNKNOWN}", "Token" : "{UNKNOWN}"}}',
    "ecr answer": f'b\'{{"authorizationData":[{{"authorizationToken":"{UNKNOWN}","expiresAt":1.4E9}}]}}\'',
    "form body": f"body=b'Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws&WebIdentityToken={UNKNOWN}&Version=1'",
    "sso header": f"headers={{'x-amz-sso_bearer_token': b'{UNKNOWN}', 'User-Agent': b'Boto3/1.44.5'}}",
    "url with user and token": f"fetching https://ci-bot:{UNKNOWN}@git.example.com/acme/features.git",
    "url with a token": f"fetching https://{UNKNOWN}@git.example.com/acme/features.git",
}


@pytest.mark.parametrize("name", SHAPED)
def test_a_secret_is_masked_by_its_shape(name):
    masked = debug.Masker(environ={})(SHAPED[name])
    assert UNKNOWN[:8] not in masked and SIGNATURE[1:9] not in masked and "***" in masked, masked
    assert "b***" not in masked, masked  # not one character of it shown
    assert base64.b64encode(f"x-access-token:{UNKNOWN}".encode()).decode() not in masked


def test_the_values_of_secret_variables_and_files_are_masked_wherever_they_stand(tmp_path):
    (tmp_path / "credentials").write_text(f"[other]\naws_access_key_id = AKIAZQFROMAFILE00099\n"
                                          f"aws_secret_access_key = {UNKNOWN}\n")
    (tmp_path / "oidc").write_text("eyJzqWebIdentity0042\n")
    environ = {**FAKE, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "HOME": str(tmp_path),
               "CIRCLE_OIDC_TOKEN": "eyJzqOidcToken0042", "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "oidc")}
    mask = debug.Masker(environ=environ)
    text = (f"secret {SECRET} in prose, token {quote(TOKEN, safe='')} URL-encoded, {GIT} and "
            f"{base64.b64encode(f'x-access-token:{GIT}'.encode()).decode()} in a header, {UNKNOWN} from a file, "
            f"eyJzqOidcToken0042 and eyJzqWebIdentity0042 from CI; key ids {FAKE['AWS_ACCESS_KEY_ID']} and "
            "AKIAZQFROMAFILE00099")
    masked = mask(text)
    assert leaks(masked) == [] and UNKNOWN not in masked and "eyJzq" not in masked, masked
    assert "****************0042" in masked and "****************0099" in masked
    assert mask(str(tmp_path / "oidc")) == str(tmp_path / "oidc")  # a file's name is not its content


def test_learned_credentials_and_what_is_not_secret():
    mask = debug.Masker(environ={})
    answer = {"Credentials": {"AccessKeyId": "ASIAZQ", "SecretAccessKey": UNKNOWN, "SessionToken": "zqLearnedToken42"},
              "authorizationData": [{"authorizationToken": base64.b64encode(b"AWS:zqEcrPassword0042").decode()}]}
    mask.learn_from(answer)
    assert mask(f"{UNKNOWN} zqLearnedToken42 zqEcrPassword0042") == "*** *** ***"
    # pages of answers, ordinary words and a short value are not secrets: the trace stays readable
    untouched = ('{"NextToken": "page-2-of-9", "nextForwardToken": "f/3795", "Status": "InProgress"} '
                 "git@github.com:acme/features.git Basic configuration http://127.0.0.1:5000/v2/ "
                 "GET /b?list-type=2&continuation-token=page-3&prefix=data%2F "
                 "AWS4-HMAC-SHA256 Credential=ASIAZQ/20261202/eu-central-1/s3/aws4_request, SignedHeaders=host")
    assert debug.Masker(environ={"AWS_SECRET_ACCESS_KEY": "testing"})(untouched) == untouched
    shown = mask.shown({"Environment": {"API_TOKEN": "zqJobEnvToken42", "MODE": "fast"}, "Body": b"\0" * 5000})
    assert shown == "{'Environment': {'API_TOKEN': '***', 'MODE': 'fast'}, 'Body': <5000 bytes>}"


@pytest.mark.parametrize(("value", "expected"), [("", 0), ("0", 0), ("1", 1), ("yes", 1), ("2", 2), ("3", 2)])
def test_debug_levels(value, expected):
    assert debug.level({"DEBUG": value}) == expected


def test_the_shell_trace_follows_the_same_rule():
    for value, traced in (("0", False), ("", False), ("1", True)):
        result = subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib/common.sh"; true'],
                                env={**os.environ, "DEBUG": value}, capture_output=True, text=True)
        assert ("+ " in result.stderr) is traced, (value, result.stderr)


def test_the_shell_trace_never_shows_the_settings_files_aws_variables(tmp_path):
    """scripts/lib/common.sh loads the resolved settings untraced: with them come the settings files' AWS_*
    variables, which a token can be among (AWS_SECURITY_TOKEN, the old name of AWS_SESSION_TOKEN)."""
    repo = copy_repo(tmp_path / "my project")
    (repo / ".env").write_text(f"AWS_SECURITY_TOKEN={FAKE['AWS_SESSION_TOKEN']}\n")
    venv = os.environ.get("VENV", str(ROOT / ".venv"))
    env = {**os.environ, "VENV": venv if os.path.isabs(venv) else str(ROOT / venv), "PRIVATE_DEPS": "", "DEBUG": "1"}
    result = subprocess.run([str(repo / "scripts/prepare.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert "+ prepare.sh:" in result.stderr and "+ common.sh:" in result.stderr  # traced
    assert leaks(result.stdout + result.stderr) == [], result.stderr


def test_the_fakes_are_json_safe():  # they travel in JSON answers unescaped, so a plain search finds them
    assert all(json.dumps(value)[1:-1] == value for value in (*FAKE.values(), *PROFILE.values()))
