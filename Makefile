# sagemake: train on Amazon SageMaker from this repository. `make help` lists everything.
#
# Settings come from .env (see .env.example), .env.$(ENV), then the environment;
# any setting can also be passed on the command line: make train HP='max_depth=4'.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
# The steps of `make train` run in order, even under -j.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
# JOB (KEEP, ...) reach the scripts through the environment, so no name can break the recipe's quoting.
export JOB JOBS KEEP TUNING CHECKPOINTS
VENV ?= .venv
export VENV
PY := "$(VENV)/bin/python"
# Every target of sagemake's own runs its module, src/sagemake/targets/<target>.py, the same way.
RUN := $(PY) -m sagemake
# Stamps name files in VENV, whose path may hold spaces: escaped for make, whole again in $@.
empty :=
space := $(empty) $(empty)
RUNTIME_STAMP := $(subst $(space),\$(space),$(VENV))/.installed
DEV_STAMP := $(subst $(space),\$(space),$(VENV))/.installed-dev
REPORT_STAMP := $(subst $(space),\$(space),$(VENV))/.installed-report
# `make drift`'s virtualenv: Evidently pins plotly<6, `make report` plotly 7, so it cannot share VENV.
DRIFT_VENV := $(VENV)-drift
DRIFT_STAMP := $(subst $(space),\$(space),$(DRIFT_VENV))/.installed

.PHONY: help
help: ## list the targets (each with its Summary line) and the variables they take
	@scripts/help.sh

# A name make has no rule for (`make trian`, a file a target needs that is gone): one line saying what to do.
.DEFAULT:
	@MAKECMDGOALS="$(MAKECMDGOALS)" scripts/help.sh --unknown "$@"

$(RUNTIME_STAMP): requirements.txt pyproject.toml
	@scripts/setup_venv.sh "$(PYTHON)" requirements.txt --package
	@touch "$@"

# The report's charting library, installed the first time `make report` runs (requirements-dev.txt has it too).
$(REPORT_STAMP): requirements-report.txt $(RUNTIME_STAMP)
	@scripts/setup_venv.sh "$(PYTHON)" requirements-report.txt
	@touch "$@"

# Evidently and sagemake's own requirements, in DRIFT_VENV, made the first time `make drift` runs.
$(DRIFT_STAMP): requirements-drift.txt requirements.txt pyproject.toml
	@VENV="$(DRIFT_VENV)" scripts/setup_venv.sh "$(PYTHON)" requirements-drift.txt --package
	@touch "$@"

$(DEV_STAMP): requirements-dev.txt requirements-report.txt docker/requirements-sagemake.txt docker/requirements.txt $(RUNTIME_STAMP)
	@scripts/setup_venv.sh "$(PYTHON)" requirements-dev.txt
	@touch "$@" "$(VENV)/.installed-report"

.PHONY: setup
setup: $(RUNTIME_STAMP) ## create the virtualenv with the pinned dependencies (redone only when they change)

.PHONY: config
config: setup
	@$(RUN) config

.PHONY: data
data: setup
	@$(RUN) data

.PHONY: preprocess
preprocess: setup
	@$(RUN) preprocess

.PHONY: prepare
prepare: setup ## build the private dependencies (PRIVATE_DEPS) into wheels under build/wheels/
	@scripts/prepare.sh

.PHONY: build
build: setup
	@$(RUN) build

.PHONY: upload
upload: setup
	@$(RUN) upload

.PHONY: doctor
doctor: setup
	@$(RUN) doctor

.PHONY: plan
plan: setup
	@$(RUN) plan

.PHONY: image
image: setup
	@$(RUN) image

.PHONY: train
train: setup
	@$(RUN) train

.PHONY: fetch
fetch: setup
	@$(RUN) fetch $${JOB:+"$$JOB"}

.PHONY: jobs
jobs: setup
	@$(RUN) jobs

.PHONY: report
report: setup $(REPORT_STAMP)
	@$(RUN) report

.PHONY: compare
compare: setup
	@$(RUN) compare "$${JOBS:-}"

.PHONY: tune-plan
tune-plan: setup
	@$(RUN) tune-plan

.PHONY: tune
tune: setup
	@$(RUN) tune

.PHONY: tune-jobs
tune-jobs: setup
	@$(RUN) tune-jobs $${TUNING:+"$$TUNING"}

.PHONY: logs
logs: setup
	@$(RUN) logs $${JOB:+"$$JOB"}

.PHONY: stop
stop: setup
	@$(RUN) stop $${JOB:+"$$JOB"}

.PHONY: clean-jobs
clean-jobs: setup
	@$(RUN) clean-jobs "$${KEEP:-}" "$${CHECKPOINTS:-}"

.PHONY: serve
serve: setup
	@$(RUN) serve $${JOB:+"$$JOB"}

.PHONY: predict
predict: setup
	@$(RUN) predict "$${FILE:-}" $${JOB:+"$$JOB"}

.PHONY: transform
transform: setup
	@$(RUN) transform "$${INPUT:-}" $${JOB:+"$$JOB"}

.PHONY: deploy
deploy: setup
	@$(RUN) deploy $${JOB:+"$$JOB"}

.PHONY: undeploy
undeploy: setup
	@$(RUN) undeploy

.PHONY: drift
drift: setup $(DRIFT_STAMP)
	@"$(DRIFT_VENV)/bin/python" -m sagemake drift "$${FILE:-}" "$${SINCE:-}" $${JOB:+"$$JOB"}

.PHONY: baseline
baseline: setup
	@$(RUN) baseline $${JOB:+"$$JOB"}

.PHONY: endpoints
endpoints: setup
	@$(RUN) endpoints

.PHONY: ui
ui: setup
	@$(RUN) ui

.PHONY: test
test: $(DEV_STAMP) ## lint (shell, Python, Dockerfile, CircleCI config), then run the bats and pytest suites side by side
	@tests/run.sh

.PHONY: test-fast
test-fast: $(DEV_STAMP) ## the tests that need no engine, no fresh virtualenv and one training (your trainer's smoke test)
	@tests/run.sh fast

.PHONY: bench
bench: $(DEV_STAMP) ## measure `make train` (local, against the AWS emulator), the S3 sync, image builds and serving
	@$(PY) bench/bench.py
	@$(PY) bench/bench_aws.py
	@$(PY) bench/bench_images.py
	@$(PY) bench/bench_serve.py
	@$(PY) bench/bench_hosts.py
	@$(PY) bench/bench_tune.py
	@$(PY) bench/bench_report.py

.PHONY: clean
clean: ## remove the virtualenv and caches (keeps data/, jobs/ and models/)
	rm -rf "$(VENV)" "$(DRIFT_VENV)" .venv.lock .venv-drift.lock .tools .pytest_cache
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +
