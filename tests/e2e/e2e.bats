#!/usr/bin/env bats
# The README's promise on a fresh machine: in a new checkout with nothing set
# up, `make train` sets itself up, trains the example and fetches the model.

setup() {
  load ../test_helper
  common_setup
  unset VENV # a fresh checkout makes its own .venv
  in_copy
  git init -q && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init
}

@test "make train on a fresh checkout trains, fetches and writes the manifest" {
  run make train
  assert_success
  assert_output --partial "setup: creating the virtualenv"
  assert_output --partial "runtime process"
  assert_output --partial "Completed / Completed"
  assert_output --regexp "validation:roc_auc +0\.9[0-9]{3}"

  local job sha
  job="$(latest_job)"
  sha="$(git rev-parse --short=7 HEAD)"
  [[ "$job" =~ ^sagemake-example-$sha-[0-9]{6}-[0-9]{6}-[0-9]{3}[a-z0-9]{5}$ ]]
  run python3 - "models/$job/manifest.json" "$sha" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["status"] == "Completed" and m["git_sha"] == sys.argv[2] and m["git_dirty"] is False, m
assert m["image"].startswith("sagemake-example:") and m["runtime"] == "process", m
assert m["hyperparameters"]["n_estimators"] == "100", m
assert m["metrics"]["validation:accuracy"] > 0.9 and m["metrics"]["validation:roc_auc"] > 0.95, m
assert len(m["artifact"]["sha256"]) == 64, m
print(m["artifact"]["sha256"])
PY
  assert_success
  local first_sha="$output"

  # Warm, with the same code, data and hyperparameters: the same model, byte for byte.
  run make train
  assert_success
  refute_output --partial "setup:"
  assert_output --partial "data: data/ has channels train, validation: used as they are"
  job="$(latest_job)"
  run python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifact"]["sha256"])' "models/$job/manifest.json"
  assert_output "$first_sha"
  [[ "$(find jobs -mindepth 2 -maxdepth 2 -name job.json | wc -l)" -eq 2 ]] # two jobs (beside them, the shared channel copies)
}
