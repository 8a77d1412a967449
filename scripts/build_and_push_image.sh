#!/usr/bin/env bash
# Summary: build the training image, tagged by its content, and (for AWS) push it to ECR.
# Usage: scripts/build_and_push_image.sh
#
# The image is docker/Dockerfile, or docker/Dockerfile.script with CODE_MODE=script.
# Nothing is built or pushed when the tag exists already (locally for ENV=local,
# in ECR otherwise). ENV=local with no reachable engine (or LOCAL_RUNTIME=process)
# skips the build with a notice: local jobs then run `docker/train` as a process.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

AWS=() # the aws CLI of the project's virtualenv, with --region

# build IMAGE: the private wheels, then docker/Dockerfile as IMAGE (with CONTAINER_BUILD_FLAGS), then a check of it.
build() {
  local image="$1" build_flags=() run_flags=()
  # shellcheck disable=SC2206 # the flags are words, split on purpose
  build_flags=($CONTAINER_BUILD_FLAGS)
  # shellcheck disable=SC2206
  run_flags=($CONTAINER_RUN_FLAGS)
  local dockerfile="$SAGEMAKE_ROOT/docker/Dockerfile"
  if [[ "$CODE_MODE" == script ]]; then dockerfile+=".script"; fi
  "$SAGEMAKE_ROOT/scripts/prepare.sh"
  say "build: $image (${dockerfile#"$SAGEMAKE_ROOT"/})"
  "$CONTAINER_ENGINE" build ${build_flags[@]+"${build_flags[@]}"} -f "$dockerfile" -t "$image" "$SAGEMAKE_ROOT" ||
    die "the image build failed at the step shown above: fix docker/Dockerfile or what it copies"
  # SageMaker starts the image as `docker run IMAGE train`: an image without it must not go anywhere.
  if ! "$CONTAINER_ENGINE" run --rm ${run_flags[@]+"${run_flags[@]}"} --entrypoint sh "$image" \
    -c 'command -v train' >/dev/null 2>&1; then
    "$CONTAINER_ENGINE" rmi "$image" >/dev/null 2>&1 || true
    die "image $image has no executable 'train' on its PATH (SageMaker runs \`docker run IMAGE train\`): copy docker/train to /usr/local/bin/train in docker/Dockerfile"
  fi
}

engine_reachable() {
  "$CONTAINER_ENGINE" info >/dev/null 2>&1
}

build_local() {
  local image="$1"
  if [[ "$LOCAL_RUNTIME" == process ]]; then
    say "build: skipped (LOCAL_RUNTIME=process)"
  elif ! engine_reachable; then
    say "build: skipped: no $CONTAINER_ENGINE engine is reachable, so the job will run as a local process under the same contract"
  elif "$CONTAINER_ENGINE" image inspect "$image" >/dev/null 2>&1; then
    say "build: $image is up to date"
  else
    build "$image"
  fi
}

# ecr_lookup NAME ARGS...: run `aws ecr ARGS`; 0 when found, 1 when ECR says NAME is not found, else die.
ecr_lookup() {
  local what="$1" answer
  shift
  if answer="$("${AWS[@]}" ecr "$@" 2>&1 >/dev/null)"; then
    return 0
  elif [[ "$answer" == *NotFoundException* ]]; then
    return 1
  fi
  die "could not look up $what in ECR: $(printf '%s' "$answer" | tr '\n' ' ')"
}

# build_and_push IMAGE: to the account's ECR (created when missing), or to IMAGE_REGISTRY, where you log in yourself.
build_and_push() {
  local image="$1" registry="${1%%/*}" tag="${1##*:}"
  AWS=("$(venv_bin)/aws" --region "$AWS_REGION")
  if [[ -z "$IMAGE_REGISTRY" ]]; then
    if ecr_lookup "image $tag" describe-images --repository-name "$ECR_REPOSITORY" --image-ids "imageTag=$tag"; then
      say "build: $image is in ECR already: nothing to build or push"
      return 0
    fi
    if ! ecr_lookup "repository $ECR_REPOSITORY" describe-repositories --repository-names "$ECR_REPOSITORY"; then
      say "build: creating ECR repository $ECR_REPOSITORY"
      "${AWS[@]}" ecr create-repository --repository-name "$ECR_REPOSITORY" >/dev/null ||
        die "could not create ECR repository $ECR_REPOSITORY (the aws CLI said why above)"
    fi
  fi
  engine_reachable || die "no $CONTAINER_ENGINE engine is reachable: start it (or set CONTAINER_ENGINE) to build the image"
  build "$image"
  if [[ -z "$IMAGE_REGISTRY" ]]; then
    "${AWS[@]}" ecr get-login-password |
      "$CONTAINER_ENGINE" login --username AWS --password-stdin "$registry" >/dev/null ||
      die "could not log in to $registry: check your AWS credentials"
  fi
  say "push: $image"
  "$CONTAINER_ENGINE" push "$image" || die "pushing $image failed (see above): nothing was submitted"
}

main() {
  help_if_asked "$@"
  load_config
  local image
  image="$(py "$SAGEMAKE_ROOT/scripts/run_sagemaker.py" image)" || exit 2
  if [[ "$ENV" == local ]]; then
    build_local "$image"
  else
    build_and_push "$image"
  fi
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
