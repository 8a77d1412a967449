#!/usr/bin/env bats
# The Make targets as a user runs them, in a copy of the repository.
# shellcheck disable=SC2030,SC2031 # each @test runs in its own subshell: PATH changes are meant to stay there

setup() {
  load ../test_helper
  common_setup
  in_copy
}

@test "make with no target prints help naming every target with its Summary line" {
  run make
  assert_success
  local target
  while IFS= read -r target; do
    assert_line --regexp "^  $target +[a-z(]"
  done < <(sed -n 's/^\([a-z][a-z-]*\):.*/\1/p' Makefile)
  assert_output --partial "ENV"
  assert_output --partial "HP"
  assert_output --partial "JOB"
}

@test "a target make does not know is one line naming the nearest target, and a missing file is named" {
  run make trian
  assert_failure
  assert_line "sagemake: no target 'trian': did you mean \`make train\`? (\`make help\` lists them all)"
  run make zzz
  assert_failure
  assert_line "sagemake: no target 'zzz': \`make help\` lists them all"
  rm requirements.txt
  run make setup
  assert_failure
  assert_line "sagemake: requirements.txt is missing and no target makes it: restore it (git checkout -- 'requirements.txt')"
}

@test "make config shows each value and where it came from" {
  printf 'PROJECT_NAME=from-dotenv\nINSTANCE_TYPE=ml.c5.xlarge\n' >.env
  printf 'INSTANCE_TYPE=ml.g5.xlarge\nAWS_REGION=eu-west-1\nSAGEMAKER_ROLE_ARN=arn:aws:iam::123456789012:role/train\nS3_BUCKET=b\nECR_REPOSITORY=r\n' >.env.dev
  run env MAX_RUNTIME_SECONDS=60 make config ENV=dev
  assert_success
  assert_line --regexp "^PROJECT_NAME +=  *'from-dotenv' +# \.env$"
  assert_line --regexp "^INSTANCE_TYPE +=  *'ml.g5.xlarge' +# \.env\.dev$"
  assert_line --regexp "^MAX_RUNTIME_SECONDS += '60' +# environment$"
  assert_line --regexp "^DATA_DIR +=  *'data' +# default$"
}

@test "an unknown ENV is one clear error and a non-zero exit" {
  run make config ENV=staging
  assert_failure
  assert_output --partial "unknown ENV 'staging': use ENV=local, ENV=prod, or create .env.staging"
}

@test "config problems are listed together in one line" {
  printf 'INSTANCE_COUNT=zero\nLOCAL_RUNTIME=vm\nINSTNACE_TYPE=x\n' >.env
  run make config
  assert_failure
  assert_output --partial "3 config problem(s)"
  assert_output --partial "INSTANCE_COUNT='zero' must be a whole number"
  assert_output --partial "LOCAL_RUNTIME='vm' must be one of"
  assert_output --partial ".env: unknown setting INSTNACE_TYPE"
}

@test "ENV=prod without the AWS settings names each missing one" {
  run make config ENV=prod
  assert_failure
  assert_output --partial "AWS_REGION, SAGEMAKER_ROLE_ARN, S3_BUCKET, ECR_REPOSITORY required for ENV=prod"
}

@test "make plan prints the request as JSON and starts nothing" {
  make data
  run --separate-stderr make plan HP='n_estimators=7 learning_rate=0.5'
  assert_success
  printf '%s' "$output" >request.json
  run python -c '
import json; r = json.load(open("request.json"))
assert r["HyperParameters"]["n_estimators"] == "7", r["HyperParameters"]
assert r["HyperParameters"]["learning_rate"] == "0.5"
assert [c["ChannelName"] for c in r["InputDataConfig"]] == ["train", "validation"]
assert r["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
assert r["ResourceConfig"]["InstanceType"] == "ml.m5.large"
print(r["TrainingJobName"])'
  assert_success
  assert_output --regexp '^sagemake-example-nogit-[0-9]{6}-[0-9]{6}-[0-9]{3}[a-z0-9]{5}$'
  [[ ! -e jobs ]]
}

@test "a hyperparameter of the wrong type is refused before the job starts, naming the field" {
  make data
  run make train HP='max_depth=deep'
  assert_failure
  assert_output --partial "hyperparameter max_depth='deep': input should be a valid integer"
  [[ ! -e jobs ]]
}

@test "a hyperparameter out of range is refused, naming the field" {
  make data
  run make plan HP='learning_rate=3'
  assert_failure
  assert_output --partial "hyperparameter learning_rate='3': input should be less than or equal to 1"
}

@test "an unknown hyperparameter is refused, naming it and the known ones" {
  make data
  run make plan HP='n_trees=5'
  assert_failure
  assert_output --partial "unknown hyperparameter 'n_trees' (known: n_estimators, learning_rate"
}

@test "a missing or an empty data channel is refused before the job starts" {
  make data
  mkdir -p data/test
  run make plan CHANNELS='train validation test extra'
  assert_failure
  assert_output --partial "data channel 'test' is empty: put its files in data/test/"
  assert_output --partial "data channel 'extra' is missing: create data/extra/"
}

@test "a training script that raises: job Failed, reason printed, job folder kept" {
  run make train HP='target=label'
  assert_failure
  assert_output --partial "Failed: AlgorithmError: ValueError: label column 'label' not found in channel 'train'"
  local job
  job="$(latest_job)"
  run python -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["TrainingJobStatus"], r["FailureReason"])' "jobs/$job/job.json"
  assert_output --partial "Failed AlgorithmError: ValueError: label column 'label'"
  [[ -s "jobs/$job/ml/output/failure" ]]
  [[ -s "jobs/$job/train.log" ]]
  run make fetch JOB="$job"
  assert_failure
  assert_output --partial "job $job is Failed"
}

@test "make fetch of a job that does not exist says so" {
  run make fetch JOB=no-such-job
  assert_failure
  assert_output --partial "no local job named 'no-such-job'"
  run make logs JOB=no-such-job
  assert_failure
  assert_output --partial "no local job named 'no-such-job'"
}

@test "a JOB that is a path is refused, and nothing is deleted" {
  make train HP='n_estimators=5'
  local job before
  job="$(latest_job)"
  before="$(find "jobs/$job" | sort | wc -l)"
  for given in "$PWD/jobs/$job/" "../jobs/$job" "jobs/$job"; do
    run make fetch JOB="$given"
    assert_failure
    assert_output --partial "is not a job name (1-63 letters, digits or '-'): give the name alone"
    run make logs JOB="$given"
    assert_failure
  done
  [[ "$(find "jobs/$job" | sort | wc -l)" -eq "$before" && -f "jobs/$job/job.json" ]]
}

@test "make jobs, make logs and make fetch work on a finished job" {
  make train HP='n_estimators=20'
  local job
  job="$(latest_job)"
  run make jobs
  assert_success
  assert_line --index 0 --regexp '^JOB +STATUS +DURATION +BILLABLE +COST +SPOT SAVED +validation:roc_auc$'
  assert_line --index 1 --regexp "^$job +Completed +[0-9]+s +[0-9]+s +\\\$[0-9.]+ +- +0\.[0-9]{4}$"
  assert_line --index 2 --regexp "^TOTAL +[0-9]+s +\\\$[0-9.]+ +\\\$0\\.00$"
  assert_output --partial "jobs: what they would have cost on SageMaker"
  run make logs
  assert_success
  assert_output --partial "validation:roc_auc="
  rm -rf models
  run make fetch JOB="$job"
  assert_success
  [[ -f "models/$job/model.joblib" && -f "models/$job/roc.png" && -f "models/$job/pr.png" ]]
}

@test "make train uses your own files in DATA_DIR as they are and never overwrites them" {
  make data
  head -n 200 data/train/train.csv >mine.csv && mv mine.csv data/train/train.csv
  local before
  before="$(sha256sum data/train/train.csv)"
  run make train HP='n_estimators=10'
  assert_success
  assert_output --partial "data: data/ has channels train, validation: used as they are"
  assert_output --partial "training on 199 rows"
  [[ "$(sha256sum data/train/train.csv)" == "$before" ]]
  run make data
  assert_success
  assert_output --partial "data/train/train.csv exists: left as it is"
  [[ "$(sha256sum data/train/train.csv)" == "$before" ]]
}

@test "a data step that is missing, or that writes nothing, is named" {
  mv src/trainer/data.py elsewhere.py
  run make train
  assert_failure
  assert_output --partial "no data channels: put one folder per channel in data/"
  run make data
  assert_failure
  assert_output --partial "no data step: write src/trainer/data.py with main(data_dir)"
  printf 'def main(data_dir):\n    print("did nothing")\n' >src/trainer/data.py
  run make train
  assert_failure
  assert_output --partial "the data step src/trainer/data.py ran but left the channels unusable (no data channels"
}

@test "a regression trainer dropped into src/trainer trains with nothing else changed (process runtime)" {
  rm -rf src/trainer
  cp -R examples/regression/trainer src/trainer
  run make train HP='alpha=0.1 feature_subset=bmi,bp,s5'
  assert_success
  assert_output --partial "runtime process"
  assert_output --regexp "validation:rmse +[0-9]+\.[0-9]{4}"
  local job
  job="$(latest_job)"
  run python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["hyperparameters"]; print(h["feature_subset"], "clip_target" in h)' "models/$job/manifest.json"
  assert_output '["bmi", "bp", "s5"] False'
  run make jobs
  assert_line --index 0 --regexp '^JOB +STATUS +DURATION +BILLABLE +COST +SPOT SAVED +validation:rmse$'
  run make plan HP='feature_subset=bmi,nope'
  assert_success # the schema takes any names; the trainer checks them against the data
  run make train HP='feature_subset=bmi,nope'
  assert_failure
  assert_output --partial "unknown feature"
}

@test "an import the image's requirements lack fails locally too, naming the file to add it to" {
  printf '\nimport yaml  # in the tool, not in the image\n' >>src/trainer/train.py
  local line
  line="$(wc -l <src/trainer/train.py)"
  run make train
  assert_failure
  assert_line "sagemake: src/trainer/train.py line $line imports yaml, which the job's Python lacks: add the package that provides it to docker/requirements.txt"
}

@test "make build without a container engine skips the build with a notice" {
  export PATH="$BATS_TEST_TMPDIR/no-engine:$PATH"
  mkdir -p "$BATS_TEST_TMPDIR/no-engine"
  printf '#!/bin/sh\necho "Cannot connect to the Docker daemon" >&2\nexit 1\n' >"$BATS_TEST_TMPDIR/no-engine/docker"
  chmod +x "$BATS_TEST_TMPDIR/no-engine/docker"
  run make build
  assert_success
  assert_output --partial "build: skipped: no docker engine is reachable"
}

@test "make build with an engine builds the image once, tagged by content (engine calls asserted)" {
  # No engine runs here for this test: a stand-in records each call exactly.
  local bin="$BATS_TEST_TMPDIR/engine"
  mkdir -p "$bin"
  cat >"$bin/docker" <<'STUB'
#!/bin/sh
printf '%s\n' "$*" >>"$ENGINE_CALLS"
for last; do :; done
case "$1 $2" in
  "info "*) exit 0 ;;
  "image inspect") case "$last" in *-unchecked) [ -f "$ENGINE_CALLS.unchecked" ] ;; *) [ -f "$ENGINE_CALLS.built" ] ;; esac ;;
  "build "*) touch "$ENGINE_CALLS.unchecked" ;;
  "run "*) exit 0 ;;
  "tag "*) touch "$ENGINE_CALLS.built" ;;
  "rmi "*) exit 0 ;;
  *) exit 99 ;;
esac
STUB
  chmod +x "$bin/docker"
  export ENGINE_CALLS="$BATS_TEST_TMPDIR/calls" PATH="$bin:$PATH"
  unset DOCKER_HOST # the stand-in is the engine: no socket to look for
  local image
  image="$(make -s image)"
  [[ "$image" =~ ^sagemake-example:[0-9a-f]{12}$ ]]
  run make build
  assert_success
  assert_output --partial "build: $image"
  run make build
  assert_success
  assert_output --partial "build: $image is up to date"
  run cat "$ENGINE_CALLS"
  assert_output "info
image inspect --format {{json .Config}} $image
buildx version
build -f $PROJECT/docker/Dockerfile -t $image-unchecked $PROJECT
image inspect --format {{json .Config.Entrypoint}} $image-unchecked
run --rm --entrypoint sh $image-unchecked -c command -v train
run --rm --entrypoint python $image-unchecked -m sagemake.contract.imports /opt/program/src/trainer
tag $image-unchecked $image
rmi $image-unchecked
info
image inspect --format {{json .Config}} $image"
}

@test "the scripts and the targets print their usage with --help and exit 0" {
  local script
  for script in scripts/*.sh; do
    run "$script" --help
    assert_success
    assert_output --partial "Usage: $script"
  done
  local module target
  for module in src/sagemake/targets/[a-z]*.py; do
    target="${module##*/}"
    target="${target%.py}"
    run python -m sagemake "${target//_/-}" --help
    assert_success
    assert_output --partial "Usage: make ${target//_/-}"
  done
}

@test "make serve and make predict without a fetched model say what to run, only when it works" {
  printf '1,2\n' >rows.csv
  run make serve
  assert_failure
  assert_output --partial "sagemake: no fetched model in models/, and no jobs of sagemake-example yet (locally, in jobs/): run \`make train\` first"
  local job=sagemake-example-abc1234-20261202-101500-123
  run make predict FILE=rows.csv JOB="$job"
  assert_failure
  assert_output --partial "sagemake: no fetched model of job $job in models/, and no local job named '$job' in jobs/: \`make jobs\` lists them"
  run make serve JOB=../models
  assert_failure
  assert_output --partial "is not a job name (1-63 letters, digits or '-')"
}

@test "make predict without FILE, or with one it cannot send, and a bad SERVE_PORT are one line each" {
  run make predict
  assert_failure
  assert_output --partial "sagemake: FILE is required: make predict FILE=rows.csv (or rows.json) [JOB=<job>]"
  run make predict FILE=none.csv
  assert_failure
  assert_output --partial "sagemake: FILE=none.csv does not exist"
  printf '1,2\n' >rows.txt
  run make predict FILE=rows.txt
  assert_failure
  assert_output --partial "sagemake: FILE=rows.txt is neither .csv nor .json"
  run make serve SERVE_PORT=80800
  assert_failure
  assert_output --partial "SERVE_PORT='80800' must be a whole number from 1 to 65535"
}

@test "a long quiet step says it is still at it every 10 s, and keeps its exit status" {
  # shellcheck source=scripts/lib/common.sh
  source scripts/lib/common.sh
  local said="$BATS_TEST_TMPDIR/said"
  : >"$said"
  # The step ends once the line is there: no clock is read by the test. Its own shell expands $1, and it reads
  # the file its stderr goes to on purpose: it waits for what with_progress wrote there.
  # shellcheck disable=SC2016,SC2094
  with_progress setup bash -c 'until grep -q "still at it" "$1"; do sleep 0.2; done' _ "$said" 2>>"$said"
  run cat "$said"
  assert_line "==> setup: still at it (10 s)"
  run with_progress setup false
  assert_failure 1
}
