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
# JOB (and KEEP) reach the scripts through the environment, so no name can break the recipe's quoting.
export JOB KEEP TUNING
VENV ?= .venv
export VENV
export PYTHONPATH := $(CURDIR)/src
PY := "$(VENV)/bin/python"
# Stamps name files in VENV, whose path may hold spaces: escaped for make, whole again in $@.
empty :=
space := $(empty) $(empty)
RUNTIME_STAMP := $(subst $(space),\$(space),$(VENV))/.installed
DEV_STAMP := $(subst $(space),\$(space),$(VENV))/.installed-dev

.PHONY: help
help: ## list the targets and the variables they take
	@echo "usage: make TARGET [ENV=local|prod|<name>] [HP='key=value ...'] [JOB=<job name>]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "  ENV  where jobs run: local (default, no AWS needed) or an AWS environment (.env.<ENV>)"
	@echo "  HP   hyperparameters, e.g. HP='n_estimators=200 learning_rate=0.05'"
	@echo "  JOB  a job name for fetch, logs, stop, serve and predict (all but stop default to the latest job)"
	@echo "  FILE rows for predict, .csv or .json as /invocations takes them; SERVE_PORT the port of serve (8080)"
	@echo "  INPUT a folder of files for transform, one row a line"
	@echo
	@echo "Your own project, by settings: replace src/trainer/ (sagemake's image), or DOCKERFILE=... BUILD_CONTEXT=..."
	@echo "(your image), or TRAINING_IMAGE=... (prebuilt); DATA_DIR, CHANNELS, METRICS and HP work with all three."
	@echo
	@echo "Every setting is documented in .env.example; \`make config\` shows the values in force."

$(RUNTIME_STAMP): requirements.txt
	@scripts/setup_venv.sh "$(PYTHON)" requirements.txt
	@touch "$@"

$(DEV_STAMP): requirements-dev.txt docker/requirements.txt $(RUNTIME_STAMP)
	@scripts/setup_venv.sh "$(PYTHON)" requirements-dev.txt
	@touch "$@"

.PHONY: setup
setup: $(RUNTIME_STAMP) ## create the virtualenv with the pinned dependencies (redone only when they change)

.PHONY: config
config: setup ## print every setting in force for ENV and where it came from
	@$(PY) -m sagemake.config

.PHONY: data
data: setup ## run the trainer's data step (src/trainer/data.py) to write the channels under DATA_DIR
	@scripts/make_data.sh

.PHONY: preprocess
preprocess: setup ## raw data (RAW_DIR) -> the channels in DATA_DIR, as a processing job (skipped when unchanged)
	@$(PY) scripts/preprocess.py

.PHONY: prepare
prepare: setup ## build the private dependencies (PRIVATE_DEPS) into wheels under build/wheels/
	@scripts/prepare.sh

.PHONY: build
build: setup ## build (and for AWS push) the training image, tagged by content; skipped locally without an engine
	@scripts/build_and_push_image.sh

.PHONY: upload
upload: setup ## sync the data channels to S3 by content (ENV other than local)
	@scripts/upload_data.sh

.PHONY: doctor
doctor: setup ## check credentials, bucket, region and repository before spending anything
	@$(PY) -m sagemake.doctor

.PHONY: plan
plan: setup ## print the training job request as JSON; submits nothing
	@$(PY) scripts/run_sagemaker.py plan

.PHONY: train
train: setup ## data (if missing), build, upload, submit and follow the job, then fetch its model into MODELS_DIR
	@$(PY) scripts/run_sagemaker.py train

.PHONY: fetch
fetch: setup ## fetch a finished job's model with its manifest (JOB=..., default latest)
	@$(PY) scripts/fetch_model.py $${JOB:+"$$JOB"}

.PHONY: jobs
jobs: setup ## the ledger: recent jobs with status, duration, billable seconds, cost, warm pool, main metric; processing jobs
	@$(PY) scripts/run_sagemaker.py jobs

.PHONY: tune-plan
tune-plan: setup ## print the tuning job request (TUNE_RANGES, TUNE_OBJECTIVE, ...) as JSON; submits nothing
	@$(PY) scripts/tune.py plan

.PHONY: tune
tune: setup ## tune hyperparameters over TUNE_RANGES: TUNE_MAX_JOBS trials, TUNE_PARALLEL at a time; fetch the best
	@$(PY) scripts/tune.py run

.PHONY: tune-jobs
tune-jobs: setup ## the leaderboard of the latest tuning run (TUNING=<name> for another)
	@$(PY) scripts/tune.py jobs $${TUNING:+"$$TUNING"}

.PHONY: logs
logs: setup ## print a job's log, following it while it runs (JOB=..., default latest)
	@$(PY) scripts/run_sagemaker.py logs $${JOB:+"$$JOB"}

.PHONY: stop
stop: setup ## stop a running SageMaker job (JOB=...)
	@$(PY) scripts/run_sagemaker.py stop $${JOB:+"$$JOB"}

.PHONY: clean-jobs
clean-jobs: setup ## remove local job and processing folders but the KEEP newest of each (default 5) and any running
	@$(PY) scripts/run_sagemaker.py clean-jobs $${KEEP:+"$$KEEP"}

.PHONY: serve
serve: setup ## serve a fetched model as SageMaker would, on SERVE_PORT (JOB=..., default latest); Ctrl-C stops it
	@$(PY) scripts/serve_model.py serve $${JOB:+"$$JOB"}

.PHONY: predict
predict: setup ## print a fetched model's predictions for the rows in FILE=rows.csv or .json (JOB=..., default latest)
	@$(PY) scripts/serve_model.py predict "$${FILE:-}" $${JOB:+"$$JOB"}

.PHONY: transform
transform: setup ## batch transform: predictions for every line of the files in INPUT=<folder>, as <file>.out (JOB=...)
	@$(PY) scripts/transform.py "$${INPUT:-}" $${JOB:+"$$JOB"}

.PHONY: deploy
deploy: setup ## a SageMaker endpoint for a Completed job's model (ENV=prod, JOB=..., default latest); updated in place
	@$(PY) scripts/deploy.py deploy $${JOB:+"$$JOB"}

.PHONY: undeploy
undeploy: setup ## delete the endpoint, its configs and models that sagemake made (ENV=prod), nothing else
	@$(PY) scripts/deploy.py undeploy

.PHONY: endpoints
endpoints: setup ## what is deployed or was transformed: endpoint, job, model sha256, image (the deployment records)
	@$(PY) scripts/deploy.py endpoints

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

.PHONY: clean
clean: ## remove the virtualenv and caches (keeps data/, jobs/ and models/)
	rm -rf "$(VENV)" .venv.lock .tools .pytest_cache
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +
