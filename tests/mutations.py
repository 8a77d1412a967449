"""Tests that bite: break one line of the code on purpose and check that a test fails.

Usage: .venv/bin/python tests/mutations.py [NAME ...]   (default: every mutation)

Each mutation replaces one exact piece of a source file, runs the tests named
for it, and puts the file back whatever happens. A mutation the tests do not
catch is printed as SURVIVED and the exit status is 1. Not part of `make test`
(each mutation runs tests of its own); run it after changing what it covers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (file, what is there, what it becomes, pytest selection)
MUTATIONS = {
    "metric regex unanchored": (
        "src/sagemake/jobs/training.py", 'METRIC_START = r"(?:^|[^\\w:./-])"', 'METRIC_START = r""',
        "tests/unit/test_request.py -k own_name"),
    "unset optional sent as null": (
        "src/sagemake/contract/train.py", "items() if value is not None or key in given}", "items()}",
        "tests/local/test_contract.py -k unset_optionals"),
    "SM_* given to every process": (
        "src/sagemake/executors/local/runtimes.py", "        if code.is_dir():\n            program, path = code",
        "        env.update(toolkit_environment(request, str(tree), 1))\n        if code.is_dir():\n"
        "            program, path = code", "tests/local/test_local.py -k contract_environment"),
    "/opt/ml mounted whole": (
        "src/sagemake/executors/local/runtimes.py",
        'for part in layout.MOUNTED for f in ("-v", f"{tree / part}:{self.base}/{part}")]',
        'for f in ("-v", f"{tree}:{self.base}")]', "tests/local/test_local.py -k mounts"),
    "reserved hyperparameters let through": (
        "src/sagemake/jobs/training.py", "    if reserved:\n        raise", "    if False:\n        raise",
        "tests/unit/test_request.py -k limits"),
    "image tag ignores the build flags": (
        "src/sagemake/image.py", 'extra = [" ".join(meaningful_flags(config.words("CONTAINER_BUILD_FLAGS"))), ',
        "extra = [", "tests/unit/test_request.py -k own_dockerfile"),
    "JOB taken as a path": (
        "src/sagemake/jobs/training.py", "    if not JOB_NAME.fullmatch(name):", "    if False:",
        "tests/unit/test_request.py -k job_name"),
    "output data not fetched": (
        "src/sagemake/models.py", "        if output:\n            unpack(output, folder / OUTPUT, limit=limit)\n", "",
        "tests/local/test_fetch.py -k writes_the_manifest"),
    "fetch without its lock": (
        "src/sagemake/models.py", "        fcntl.flock(descriptor, fcntl.LOCK_EX)\n", "",
        "tests/local/test_fetch.py -k concurrent"),
    "a bad archive as a traceback": (
        "src/sagemake/models.py", "except (tarfile.TarError, EOFError, zlib.error, OSError) as err:",
        "except ZeroDivisionError as err:", "tests/local/test_fetch.py -k bad_archive"),
    "credentials in .env taken": (
        "src/sagemake/config.py", "            elif key in CREDENTIALS:", "            elif False:",
        "tests/unit/test_config.py -k credentials"),
    "failed job exits as bad input": (
        "src/sagemake/cli.py", "    status = Exit.JOB_FAILED", "    status = Exit.BAD_INPUT",
        "tests/local/test_cli.py"),
    "expired credentials said as any error": (
        "src/sagemake/aws/api.py", '        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):',
        "        if False:", "tests/aws/test_train_prod.py -k credentials_have_expired"),
    "access denied said as any error": (
        "src/sagemake/aws/api.py",
        '        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):',
        "        if False:", "tests/aws/test_train_prod.py -k aws_denied"),
    "following gives up on the first failed poll": (
        "src/sagemake/executors/sagemaker/executor.py", "                if failures >= LOST_CONTACT:",
        "                if failures >= 1:", "tests/aws/test_train_prod.py -k failed_poll"),
    "make stop a no-op": (
        "src/sagemake/executors/sagemaker/executor.py",
        "        call(self.sagemaker.stop_training_job, TrainingJobName=name)\n",
        "", "tests/aws/test_train_prod.py -k stop_env_prod"),
    "upload progress hidden": (
        "src/sagemake/cli.py", '        print(f"{prefix}==> {self.label}: {_size(self.moved)} done", file=sys.stderr, '
        "flush=True)", "        pass", "tests/aws/test_train_prod.py -k shows_its_progress"),
    "no progress on a terminal": (
        "src/sagemake/cli.py", "            if self.terminal and percent != self.shown:", "            if False:",
        "tests/aws/test_train_prod.py -k shows_its_progress"),
    "archive extraction filter removed": (
        "src/sagemake/archive.py", 'tar.extractall(folder, members=counted(tar), filter="data")',
        "tar.extractall(folder, members=counted(tar))", "tests/local/test_fetch.py -k bad_archive"),
    "no refusal by hand without extraction filters": (
        "src/sagemake/archive.py",
        "                if inside not in (target, *target.parents) or member.issym() or member.islnk() or "
        "member.isdev():", "                if False:", "tests/local/test_fetch.py -k without_extraction_filters"),
    "a model archive's own manifest let through": (
        "src/sagemake/models.py",
        "        own = [name for name in FETCHED if (folder / name).exists()]", "        own = []",
        "tests/local/test_fetch.py -k own_manifest"),
    "manifest sha256 not of the archive": (
        "src/sagemake/archive.py", "            digest.update(block)", '            digest.update(b"")',
        "tests/local/test_fetch.py -k writes_the_manifest"),
    "the training outlives a killed executor": (
        "src/sagemake/executors/local/guard.py",
        "        orphaned = os.getppid() != executor", "        orphaned = False",
        "tests/local/test_local.py -k kill_9"),
    "a second Ctrl-C waits the grace": (
        "src/sagemake/executors/local/guard.py", " or len(requests) > 1):", "):",
        "tests/local/test_local.py -k second_ctrl_c"),
    "a dead executor's record never settled": (
        "src/sagemake/executors/local/records.py",
        "or not all(running(o) is False for o in owners):", "or True:",
        "tests/local/test_local.py -k kill_9"),
    "a channel copy a job wrote into kept": (
        "src/sagemake/executors/local/channels.py",
        "        if json.loads(_stamp_file(copy).read_text()) == fingerprint(copy):\n            return True",
        "        return True", "tests/local/test_local.py -k spoils"),
    "clean-jobs removes a running job": (
        "src/sagemake/executors/local/executor.py",
        'if kind == "Transform" or index < keep or records.running_now(record):',
        'if kind == "Transform" or index < keep:', "tests/local/test_local.py -k clean_jobs"),
    "one try per AWS call": (
        "src/sagemake/aws/api.py", '"AWS_MAX_ATTEMPTS": "8"}', '"AWS_MAX_ATTEMPTS": "1"}',
        "tests/aws/test_faults.py -k 15_percent"),
    "a lost create answer taken as a failure": (
        "src/sagemake/aws/api.py",
        "        if not (retried(err) and error_code(err) in TAKEN and ours() or unanswered(err) and _made(ours)):",
        "        if True:", "tests/unit/test_aws_calls.py"),
    "a name taken by another taken as ours": (
        "src/sagemake/aws/api.py", "error_code(err) in TAKEN and ours() or", "error_code(err) in TAKEN or",
        "tests/unit/test_aws_calls.py"),
    "a create unanswered on its last attempt taken as a failure": (
        "src/sagemake/aws/api.py", " or unanswered(err) and _made(ours)):", "):", "tests/unit/test_aws_calls.py"),
    "a create unanswered on its last attempt taken as made without asking": (
        "src/sagemake/aws/api.py", "unanswered(err) and _made(ours)):", "unanswered(err)):",
        "tests/unit/test_aws_calls.py"),
    "call's answers for a listed refusal ignored": (
        "src/sagemake/aws/api.py", "answer = (on or {}).get(error_code(err), _NO_ANSWER)", "answer = _NO_ANSWER",
        "tests/unit/test_aws_calls.py"),
    "a transform output's key lands outside its folder": (
        "src/sagemake/aws/api.py", "        if not path.is_relative_to(root) or path == root:", "        if False:",
        "tests/aws/test_s3_download.py"),
    "processing jobs missing from make jobs": (
        "src/sagemake/targets/jobs.py", "    processed = _processing_rows(executor, limit, prices)\n",
        "    processed = []\n", "tests/local/test_processing.py -k after_the_ledger"),
    "another project's local processing jobs listed": (
        "src/sagemake/executors/local/records.py",
        "        if pattern is None or pattern.fullmatch(path.parent.name):", "        if True:",
        "tests/local/test_processing.py -k after_the_ledger"),
    "another project's SageMaker processing jobs listed": (
        "src/sagemake/executors/sagemaker/processing.py",
        'for s in summaries if ours.fullmatch(s["ProcessingJobName"])][:limit]',
        "for s in summaries][:limit]", "tests/local/test_processing.py -k env_prod_lists"),
    "an unknown processing price shown as $0": (
        "src/sagemake/targets/jobs.py", "money(cost(hourly, seconds,", "money(cost(hourly or 0, seconds,",
        "tests/local/test_processing.py -k after_the_ledger"),
    "a dead executor's processing record never settled": (
        "src/sagemake/executors/local/records.py",
        "or not all(running(o) is False for o in owners):", "or True:",
        "tests/local/test_processing.py -k killed"),
    "a dead executor's tuning record never settled": (
        "src/sagemake/executors/local/tuning.py",
        '            "LocalExecutor": self.owner,', "",
        "tests/local/test_tune.py -k kill_9"),
    "clean-jobs removes a running processing job": (
        "src/sagemake/executors/local/executor.py",
        'if kind == "Transform" or index < keep or records.running_now(record):',
        'if kind == "Transform" or index < keep:',
        "tests/local/test_processing.py -k clean_jobs_keeps_the_newest_processing"),
    "clean-jobs keeps old job folders": (
        "src/sagemake/executors/local/executor.py",
        "                remove(folder)\n                removed[kind] += 1",
        "                removed[kind] += 1",
        "tests/local/test_processing.py -k clean_jobs_keeps_the_newest_processing"),
    "processing on SageMaker left running on Ctrl-C": (
        "src/sagemake/executors/sagemaker/processing.py",
        "                call(executor.sagemaker.stop_processing_job, ProcessingJobName=name)\n",
        "                pass\n", "tests/aws/test_aws_jobs.py -k ctrl_c_stops"),
    "a pruned trial left running": (
        "src/sagemake/executors/local/tuning.py",
        '            self.executor.stop_jobs.add(entry["name"])\n', "            pass\n",
        "tests/local/test_tune.py -k early_stopping"),
    "the best trial not marked in make jobs": (
        "src/sagemake/targets/jobs.py", '(" *" if row[0] in best else "")', '""',
        "tests/aws/test_aws_jobs.py -k follows_its_trials"),
    "the unchanged check skips every other page": (
        "src/sagemake/aws/unchanged.py", "for start in range(0, count + 1, PAGE)]",
        "for start in range(0, count + 1, 2 * PAGE)]", "tests/aws/test_sync.py -k middle-deleted"),
    "the unchanged check blind after the last key": (
        "src/sagemake/aws/unchanged.py", "min(PAGE, count - start + 1)", "min(PAGE, count - start)",
        "tests/aws/test_sync.py -k after-added"),
    "the unchanged check blind after a full last page": (
        "src/sagemake/aws/unchanged.py", "for start in range(0, count + 1, PAGE)]",
        "for start in range(0, max(count, 1), PAGE)]", "tests/aws/test_sync.py -k after_a_full"),
    "the unchanged check asks S3 for more than it answers": (
        "src/sagemake/aws/unchanged.py", "min(PAGE, count - start + 1)", "count - start + 1",
        "tests/aws/test_sync.py -k three_requests"),
    "the manifest written without re-checking what was sent": (
        "src/sagemake/aws/sync.py", "if remote.get(prefix + name) != tag or not cache.holds(folder / name, tag)]",
        "if False]", "tests/aws/test_sync.py -k held"),
    "a file changed during the sync not sent again": (
        "src/sagemake/aws/sync.py", "ROUNDS = 3 ", "ROUNDS = 1 ", "tests/aws/test_sync.py -k held"),
    "the progress counts unchanged files": (
        "src/sagemake/aws/sync.py", " for name, size, tag in found if remote.get(prefix + name) != tag]",
        " for name, size, tag in found]", "tests/aws/test_sync.py -k progress"),
    "a link out of DATA_DIR followed": (
        "src/sagemake/data.py", "if not any(Path(target).is_relative_to(root) for root in allowed):", "if False:",
        "tests/aws/test_sync.py -k link-out"),
    "a link loop walked": (
        "src/sagemake/data.py", "if target is None or target in above:", "if target is None:",
        "tests/aws/test_sync.py -k link-loop"),
    "a name that is not UTF-8 as a traceback": (
        "src/sagemake/data.py", "entry.name.encode()", 'entry.name.encode(errors="surrogateescape")',
        "tests/aws/test_sync.py -k not-utf8"),
    "a linked folder left out of the channel": (
        "src/sagemake/data.py", "                    if os.path.isdir(target):", "                    if False:",
        "tests/local/test_local.py -k behind_a_link"),
    "the local channel copy not of data.files": (
        "src/sagemake/executors/local/channels.py", "    for path in files(source):",
        '    for path in (p for p in source.rglob("*") if p.is_file()):', "tests/local/test_local.py -k behind_a_link"),
    "no sync lock": (
        "src/sagemake/aws/sync.py", "    if lock:\n        lock.take()\n    if checked.recorded:",
        "    if checked.recorded:", "tests/aws/test_sync_lock.py -k second_checkout"),
    "a stale sync lock never taken over": (
        "src/sagemake/aws/synclock.py", "            elif stale(*held):", "            elif False:",
        "tests/aws/test_sync_lock.py -k taken_over"),
    "a lock left on this host by a process gone kept": (
        "src/sagemake/aws/synclock.py", "        except ProcessLookupError:\n            return True",
        "        except ProcessLookupError:\n            return False", "tests/aws/test_sync_lock.py -k this_host"),
    "the sync lock left after Ctrl-C or SIGTERM": (
        "src/sagemake/aws/synclock.py", "        if self.lost or not self.tried:\n            return",
        "        if True:\n            return", "tests/aws/test_sync_lock.py -k ctrl_c"),
    "the sync lock not checked before the manifest": (
        "src/sagemake/aws/synclock.py", "            self._rewrite()  # the refresher may not have looked since",
        "            pass  # the refresher may not have looked since",
        "tests/aws/test_sync_lock.py -k before_a_refresh"),
    "a lost answer to a lock rewrite taken as a takeover": (
        "src/sagemake/aws/synclock.py",
        'if held and held[0].get("token") == self.owner["token"]:\n                etag = held[1]',
        "if False:\n                etag = held[1]", "tests/aws/test_sync_lock.py -k answer_was_lost"),
    "a dead pid of another machine of the same hostname trusted": (
        "src/sagemake/aws/synclock.py", 'and owner.get("machine") == here\n', "\n",
        "tests/aws/test_sync_lock.py -k same_hostname"),
    "a dead pid trusted where the machine is unknown": (
        "src/sagemake/aws/synclock.py", "here is not None and owner", "owner",
        "tests/aws/test_sync_lock.py -k same_hostname"),
    "a sync lock taken over unnoticed": (
        "src/sagemake/aws/synclock.py", "        if self.lost:\n            raise UserError(",
        "        if False:\n            raise UserError(", "tests/aws/test_sync_lock.py -k writes_no_manifest"),
    "the signing key without its prefix": (
        "src/sagemake/aws/s3read.py", 'key = f"AWS4{secret}".encode()', 'key = secret.encode()',
        "tests/aws/test_s3read.py -k signed"),
    "listed keys left URL-encoded": (
        "src/sagemake/aws/s3read.py", 'urllib.parse.unquote_plus(item.findtext(f"{NAMESPACE}Key"))',
        'item.findtext(f"{NAMESPACE}Key")', "tests/aws/test_s3read.py -k encoded_names"),
    "the bucket's region not checked without boto3": (
        "src/sagemake/aws/unchanged.py", 'if region.result() != config["AWS_REGION"]:', "if False:",
        "tests/aws/test_s3read.py -k another_region"),
    "a failed host left out of the failure reason": (
        "src/sagemake/executors/local/executor.py",
        'where = f"({self.failed}) " if len(self.hosts) > 1 and self.failed else ""', 'where = ""',
        "tests/container/test_distributed.py -k fails"),
    "a killed executor's container left running": (
        "src/sagemake/executors/local/guard.py",
        "        orphaned = os.getppid() != executor", "        orphaned = False",
        "tests/container/test_container_stop.py"),
    "a processing job's input mounted writable": (
        "src/sagemake/executors/local/runtimes.py", 'f"{copy}:{layout.processing_input(base, name)}:ro"]',
        'f"{copy}:{layout.processing_input(base, name)}"]', "tests/local/test_processing.py -k sees_exactly"),
    "a trainer without predict.py as a traceback": (
        "src/sagemake/contract/serve.py", 'predict = importlib.import_module("trainer.predict")',
        "from trainer import predict", "tests/local/test_contract.py -k without_predict"),
    "a local Ctrl-C ending as a failed job": (
        "src/sagemake/executors/local/executor.py", "        if self.interrupted:", "        if False:",
        "tests/local/test_local.py -k sigterm_to_the_executor"),
    "a settled tuning run's trials shown running": (
        "src/sagemake/executors/local/tuning.py",
        '        if found["HyperParameterTuningJobStatus"] != "InProgress":', "        if False:",
        "tests/local/test_tune.py -k kill_9"),
    "a cut-off install left half done": (
        "src/sagemake/targets/preprocess.py", "    finished = complete_install(data)", "    finished = None",
        "tests/local/test_processing.py -k cut_off"),
    "MAX_MODEL_BYTES not enforced": (
        "src/sagemake/archive.py",
        "                if limit is not None and total > limit:", "                if False:",
        "tests/local/test_fetch.py -k max_model"),
    "a second paid job by surprise": (
        "src/sagemake/executors/sagemaker/executor.py",
        '            if {"Key": DIGEST_TAG, "Value": digest} in tags:',
        "            if False:", "tests/aws/test_aws.py -k ctrl_c_while_following"),
    "GIT_HTTPS_TOKEN sent over plain http": (
        "scripts/prepare.sh", 'if [[ -n "${GIT_HTTPS_TOKEN:+set}" && "$url" == [Hh][Tt][Tt][Pp]://* ]]; then',
        "if false; then",
        "tests/local/test_prepare.py -k plain_http"),
    "TUNING taken as a path": (
        "src/sagemake/targets/tune_jobs.py", 'job_named(argv[0], "TUNING") if argv', "argv[0] if argv",
        "tests/local/test_tune.py -k never_a_path"),
    "make logs silent for a job without a log": (
        "src/sagemake/targets/logs.py", "    if not executor.print_log(name):",
        "    if executor.print_log(name) and False:",
        "tests/local/test_local.py -k logs_of_a_job"),
    "a local job's empty log taken for a log": (
        "src/sagemake/executors/local/executor.py", "                return offset > 0", "                return True",
        "tests/local/test_local.py -k logs_of_a_job"),
    "a SageMaker job without log streams taken for a log": (
        "src/sagemake/executors/sagemaker/executor.py", "        return bool(lines)", "        return True",
        "tests/aws/test_aws.py -k logs_of_a_job"),
    "an Optional hyperparameter taken as its own type": (
        "src/sagemake/jobs/tuning.py", "annotation = _without_none(schema.model_fields[name].annotation) if",
        "annotation = (schema.model_fields[name].annotation) if", "tests/local/test_tune.py -k optional"),
    "a trial's duration not its record's training time": (
        "src/sagemake/targets/tune_jobs.py", "return f\"{trial['TrainingTimeInSeconds']}s\", money(entry.cost)",
        "return \"1.0s\", money(entry.cost)", "tests/local/test_tune.py -k 6_trials"),
    "a trial's cost not its billed time": (
        "src/sagemake/targets/tune_jobs.py", "return f\"{trial['TrainingTimeInSeconds']}s\", money(entry.cost)",
        "return f\"{trial['TrainingTimeInSeconds']}s\", money(0.0)", "tests/aws/test_aws_jobs.py -k make_tune"),
    "the ETag cache trusts a file rewritten in place": (
        "src/sagemake/data.py", " and entry[4] == stat.st_ctime_ns", "",
        "tests/unit/test_etag_cache.py"),
    "a processing output left empty installed": (
        "src/sagemake/targets/preprocess.py", "        if not raw_files(staging / channel):", "        if False:",
        "tests/local/test_processing.py -k writes_nothing"),
    "every call's attempts drained by a retry quota": (
        "src/sagemake/aws/api.py", '"AWS_RETRY_MODE": "legacy"', '"AWS_RETRY_MODE": "standard"',
        "tests/aws/test_faults.py -k every_call_gets_its_attempts"),
    "a deploy that fails midway records nothing": (
        "src/sagemake/executors/sagemaker/endpoint.py", "    except BaseException as err:\n        if not",
        "    except KeyboardInterrupt as err:\n        if not", "tests/aws/test_deploy.py -k fails_to_start"),
    "an InService endpoint recorded only after its smoke request": (
        "src/sagemake/executors/sagemaker/endpoint.py", '    entry = record(config, "deploy", endpoint=name',
        '    smoke(config, executor, name, training)\n    entry = record(config, "deploy", endpoint=name',
        "tests/aws/test_deploy.py -k smoke_request"),
    "an unfinished deploy's configuration left by undeploy": (
        "src/sagemake/executors/sagemaker/endpoint.py",
        '        removed = [c for c in left if _delete(executor, "endpoint_config", c)]', "        removed = []",
        "tests/aws/test_deploy.py -k interrupted_before_its_endpoint"),
    "a lost CreateEndpoint answer taken as a failure": (
        "src/sagemake/executors/sagemaker/endpoint.py",
        "            return found is not None and heading(found) == config_name",
        '            return found is not None and heading(found) == ""',
        "tests/aws/test_faults.py::test_each_command_with_a_lost_create_answer_ends_right_or_in_one_line_and_leaves_"
        "no_half_state[15%]"),
    "the other class's probability served": (
        "tests/fixtures/trainer/predict.py", "predict_proba(table)[:, 1]", "predict_proba(table)[:, 0]",
        "tests/local/test_serve.py::test_csv_rows_get_the_models_own_predictions"),
    "the other class's probability in a batch transform": (
        "tests/fixtures/trainer/predict.py", "predict_proba(table)[:, 1]", "predict_proba(table)[:, 0]",
        "tests/local/test_transform.py::test_single_record_sends_one_line_a_request_in_order"),
    "the private wheels left out of the job's Python": (
        "src/sagemake/job_python.py", "    if wheels:\n        _run(", "    if False:\n        _run(",
        "tests/local/test_prepare.py -k jobs_python"),
    "a refused deploy keeps its configuration": (
        "src/sagemake/executors/sagemaker/endpoint.py",
        '            _delete(executor, "endpoint_config", config_name)\n            beaten =', "            beaten =",
        "tests/aws/test_deploy.py -k same_moment"),
    "a deploy of another job under way waited for": (
        "src/sagemake/executors/sagemaker/endpoint.py", "    if serving != job:", "    if False:",
        "tests/aws/test_deploy.py -k another_job_under_way"),
    "a fetch's swap cut in the middle by a signal": (
        "src/sagemake/models.py", "        with held_signals():  # never", "        if True:  # never",
        "tests/local/test_fetch.py -k signal_at_any_stage"),
    "a preprocess cut off while staging leaves its staging": (
        "src/sagemake/targets/preprocess.py", "        remove(staging)\n        raise\n", "        raise\n",
        "tests/local/test_processing.py -k cut_off_midway"),
    "channels of a half-done install trained on": (
        "src/sagemake/data.py", "    if (data / PENDING).exists():", "    if False:",
        "tests/local/test_processing.py -k cut_off_midway"),
    "a key given twice, the last one winning unseen": (
        "src/sagemake/jobs/training.py", "        if key in pairs:\n", "        if False:\n",
        "tests/unit/test_request.py -k parse_pairs"),
    "a second processing job paid for by surprise": (
        "src/sagemake/executors/sagemaker/processing.py", '        executor.refuse_duplicate("ProcessingJob"',
        '        0 and executor.refuse_duplicate("ProcessingJob"',
        "tests/aws/test_aws_jobs.py -k killed_make_preprocess"),
    "a metric's :max or :min not read": (
        "src/sagemake/jobs/training.py", "    if name and suffix in DIRECTIONS:", "    if False:",
        "tests/local/test_tune.py -k direction_is_the_declared_one"),
    "a tuning objective without a direction let through": (
        "src/sagemake/jobs/tuning.py", "    if kind is None:\n        raise", "    if False:\n        raise",
        "tests/local/test_tune.py -k refuses_an_objective_without"),
    "an objective's direction contradicting METRICS let through": (
        "src/sagemake/jobs/tuning.py", "    if stated and declared[name] and stated != declared[name]:",
        "    if False:", "tests/local/test_tune.py -k bad_input"),
    "the best local trial always the highest": (
        "src/sagemake/executors/local/tuning.py", '        sign = 1 if self.goal["Type"] == "Minimize" else -1\n'
        "        return min(scored", "        sign = -1\n        return min(scored",
        "tests/local/test_tune.py -k minimized_objective"),
    "the leaderboard always sorted highest first": (
        "src/sagemake/targets/tune_jobs.py", '    sign = 1 if goal["Type"] == "Minimize" else -1',
        "    sign = -1", "tests/aws/test_aws_jobs.py -k declared_direction"),
    "the local search always maximizes": (
        "src/sagemake/executors/local/tuning.py",
        '        direction = "minimize" if self.goal["Type"] == "Minimize" else "maximize"',
        '        direction = "maximize"', "tests/local/test_tune.py -k early_stopping_stops"),
    "a single value for a list refused": (
        "src/sagemake/contract/train.py", "    return [decoded] if sequence and not isinstance(decoded, (list, dict)) "
        "and decoded is not None else decoded", "    return decoded",
        "tests/local/test_contract.py -k single_value"),
    "None for an Optional taken as text": (
        "src/sagemake/contract/train.py", "    if value in NONE and type(None) in members:", "    if False:",
        "tests/local/test_contract.py -k single_value"),
    "a None given on purpose left out": (
        "src/sagemake/contract/train.py", "if value is not None or key in given}", "if value is not None}",
        "tests/local/test_contract.py -k single_value"),
    "a finished trial stopped by a late early stop": (
        "src/sagemake/executors/local/executor.py",
        "                    if any(process.returncode != 0 for process in processes.values()):  # else it had "
        "finished", "                    if True:", "tests/local/test_tune.py -k finished_is_never"),
    "the data step fills a channel set that is partly there": (
        "src/sagemake/job_python.py", ' or not unfilled(config.path("DATA_DIR")):', ":",
        "tests/e2e/test_channels.py -k only_when_data_dir"),
    "hidden files taken for the user's data": (
        "src/sagemake/data.py", 'all(p.name.startswith(".") and p.name != PENDING for p in data.iterdir())',
        "not any(data.iterdir())", "tests/e2e/test_channels.py -k only_when_data_dir"),
    "an empty channel let through": (
        "src/sagemake/data.py", "        elif not any(p.is_file() for p in folder.rglob(\"*\")) and not files(folder):",
        "        elif False:", "tests/e2e/test_channels.py -k empty_channel_is_refused"),
    "a transform input's header line let through": (
        "src/sagemake/jobs/transform.py", "        if first is not None:", "        if False:",
        "tests/unit/test_transform_input.py -k header_line"),
    "any line of text taken for a header": (
        "src/sagemake/jobs/transform.py", "not serving.numeric(a) and serving.numeric(b) for a, b in below)",
        "not serving.numeric(a) for a, b in below)", "tests/unit/test_transform_input.py -k never_taken"),
    "transform outputs fewer than the records taken": (
        "src/sagemake/jobs/transform.py", "    if answered != sent:", "    if False:",
        "tests/unit/test_transform_input.py -k answered"),
    "a local transform's outputs not counted": (
        "src/sagemake/executors/local/transform.py", "        check_answered(path, partial, relative)\n",
        "        pass\n", "tests/unit/test_transform_input.py -k fewer"),
    "a SageMaker transform's outputs not counted": (
        "src/sagemake/executors/sagemaker/transform.py",
        '            check_answered(path, local / f"{relative}{OUT}", relative)\n', "            pass\n",
        "tests/local/test_transform.py -k on_sagemaker"),
    "a lost UpdateEndpoint answer taken as a refusal": (
        "src/sagemake/executors/sagemaker/endpoint.py",
        'create(sagemaker.update_endpoint, asked, f"endpoint {name}: update", ', "call(sagemaker.update_endpoint, ",
        "tests/aws/test_deploy.py -k lost_answer_to_update"),
    "a rolled-back update recorded as deployed": (
        "src/sagemake/executors/sagemaker/endpoint.py", '        if endpoint["EndpointConfigName"] != config_name:',
        "        if False:", "tests/aws/test_deploy.py -k rolled_back"),
    "a refused deploy recorded as going on": (
        "src/sagemake/executors/sagemaker/endpoint.py", " and nothing_runs(executor, name, config_name):",
        " and False:", "tests/aws/test_deploy.py -k records_nothing"),
    "a failed endpoint updated in place": (
        "src/sagemake/executors/sagemaker/endpoint.py", '    if status == "Failed":', "    if False:",
        "tests/aws/test_deploy.py -k failed_endpoint"),
    "a transform output's blank lines counted as answers": (
        "src/sagemake/jobs/transform.py", "    answered = records(output) if output.is_file() else 0",
        "    answered = len(output.read_bytes().splitlines()) if output.is_file() else 0",
        "tests/unit/test_transform_input.py -k blank_lines"),
    "an empty cell taken for a header's name": (
        "src/sagemake/jobs/transform.py", "any(a.strip() and not serving.numeric(a)", "any(not serving.numeric(a)",
        "tests/unit/test_transform_input.py -k never_taken"),
    "tune-jobs asks one trial's record at a time": (
        "src/sagemake/targets/tune_jobs.py", "ASKERS = 8", "ASKERS = 1",
        "tests/local/test_tune.py -k together"),
    "an old channel removed with Ctrl-C held": (
        "src/sagemake/targets/preprocess.py", '(data / channel).rename(staging / f".old-{channel}")',
        "remove(data / channel)", "tests/local/test_processing.py -k only_for_its_renames"),
    "a removed setting told as any unknown one": (
        "src/sagemake/config.py", "        if key in REMOVED:", "        if False:",
        "tests/unit/test_config.py -k removed_setting"),
    "a host of several given every core": (
        "src/sagemake/executors/local/guard.py",
        "        os.sched_setaffinity(0, [int(core) for core in rest[1].split(\",\")])", "        pass",
        "tests/local/test_local.py -k own_share"),
    "hosts given overlapping blocks of cores": (
        "src/sagemake/executors/local/runtimes.py", "        shares[name], start = cores[start:end], end",
        "        shares[name], start = cores[:end], end", "tests/local/test_local.py -k blocks"),
    "a container host not given its CPU set": (
        "src/sagemake/executors/local/runtimes.py", "*self.cpu_flags(request, host), *self.run_flags,",
        "*self.run_flags,", "tests/container/test_distributed.py -k containers"),
    "a processing job priced at training's rate": (
        "src/sagemake/targets/jobs.py", 'prices.hourly(cluster["InstanceType"], PROCESSING).hourly',
        'prices.hourly(cluster["InstanceType"], "Train").hourly', "tests/local/test_processing.py -k after_the_ledger"),
    "an endpoint priced at training's rate": (
        "src/sagemake/executors/sagemaker/endpoint.py", "hourly = prices.hourly(instance_type, HOSTING).hourly",
        'hourly = prices.hourly(instance_type, "Train").hourly',
        "tests/aws/test_deploy.py -k update_in_place_then_undeploy"),
    "a batch transform priced at training's rate": (
        "src/sagemake/targets/transform.py", "used_line(TRANSFORM, ", 'used_line("Train", ',
        "tests/local/test_transform.py -k on_sagemaker"),
    "the Price List API asked for training's usage type whatever the kind": (
        "src/sagemake/pricing.py", 'usage_type = f"{prefix}-{kind}:{instance_type}"',
        'usage_type = f"{prefix}-{TRAINING}:{instance_type}"', "tests/local/test_transform.py -k on_sagemaker"),
    "the shipped table read for training whatever the kind": (
        "src/sagemake/pricing.py", "hourly = TABLE.hourly(self.region, kind, instance_type)",
        "hourly = TABLE.hourly(self.region, TRAINING, instance_type)",
        "tests/unit/test_price_list.py -k says_unknown"),
    "one cache entry for every kind": (
        "src/sagemake/pricing.py", "{instance_type if kind == TRAINING else f'{kind}:{instance_type}'}\"",
        "{instance_type}\"", "tests/unit/test_price_list.py -k never_anothers"),
    "a free tier's $0 taken for the price": (
        "src/sagemake/pricing.py", 'and usd and float(usd) > 0:', "and usd:",
        "tests/unit/test_price_list.py -k own_region"),
    "an offer file's notebooks taken for a kind of job": (
        "src/sagemake/price_list.py", 'or usage is None or usage["kind"] not in KINDS', "or usage is None",
        "tests/unit/test_price_list.py -k own_region"),
    "an Outpost's price taken for its region's": (
        "src/sagemake/price_list.py", '\n                or attributes.get("locationType") != "AWS Region"):', "):",
        "tests/unit/test_price_list.py -k own_region"),
    "offer files that disagree merged silently": (
        "src/sagemake/price_list.py", "                if known.get(instance_type, hourly) != hourly:",
        "                if False:", "tests/unit/test_price_list.py -k disagree"),
    "a run keeps final metric values only": (
        "src/sagemake/tracking.py", "        points = _points(executor.metric_series(name), millis(_end(record)))",
        "        points = []", "tests/local/test_tracking.py -k make_train_is_a_run"),
    "every value of a metric at step 0": (
        "src/sagemake/tracking.py", 'point["Step"]]', "0]", "tests/local/test_tracking.py -k make_train_is_a_run"),
    "trials not nested under their tuning run": (
        "src/sagemake/tracking.py", 'tags["mlflow.parentRunId"] = parent', 'tags["sagemake.parent"] = parent',
        "tests/local/test_tracking.py -k make_tune"),
    "a processing run without its outputs' digests": (
        "src/sagemake/targets/preprocess.py", "{INPUT: raw_digest, **channel_digests(config, data)}",
        "{INPUT: raw_digest}", "tests/local/test_tracking.py -k make_preprocess"),
    "an unreachable store not said": (
        "src/sagemake/tracking.py", "    if failed:", "    if False:",
        "tests/local/test_tracking.py -k unreachable"),
    "a managed MLflow not named in the request": (
        "src/sagemake/jobs/training.py",
        'if config.flag("TRACKING") and config["MLFLOW_TRACKING_URI"].startswith("arn:"):', "if False:",
        "tests/unit/test_request.py -k managed_mlflow"),
    "a SageMaker processing job's series not read from its log": (
        "src/sagemake/executors/sagemaker/processing.py",
        "return self.executor.logged_series(name, PROCESSING_LOG_GROUP, None)", "return {}",
        "tests/aws/test_tracking_prod.py -k processing"),
    "make plan loads MLflow": (
        "src/sagemake/targets/plan.py", "from sagemake.pricing import plan_line",
        "from sagemake.pricing import plan_line; import mlflow  # noqa", "tests/local/test_tracking.py -k plan"),
    "make ui's server not under the guard": (
        "src/sagemake/targets/ui.py",
        'code, stopped = run_guarded(command, server_environment(), [], log, float("inf"), STOP_SECONDS)',
        'code, stopped = __import__("subprocess").run(command, env=server_environment()).returncode, None',
        "tests/local/test_tracking.py -k free_port"),
    "metric series without the times of their lines": (
        "src/sagemake/executors/local/executor.py",
        "stamps = self.stamps if len(self.stamps) == len(lines) else None", "stamps = None",
        "tests/local/test_local.py -k metric_value"),
    "a processing job's metrics not kept": (
        "src/sagemake/executors/local/processing.py", "metric_definitions(printed_metrics(lines))", "[]",
        "tests/local/test_processing.py -k process_writes_clean"),
    "tuning.png ticks between trials": (
        "src/sagemake/tune_plot.py", "    left.xaxis.set_major_locator(MaxNLocator(integer=True))", "    pass",
        "tests/unit/test_plots.py -k as_they_started"),
    "tuning.png trials in the order listed": (
        "src/sagemake/tune_plot.py", 'trials = sorted(spec["trials"], key=lambda t: t["number"])',
        'trials = spec["trials"]', "tests/unit/test_plots.py -k as_they_started"),
    "roc.png without its chance diagonal": (
        "tests/fixtures/trainer/train.py",
        '        axes.plot(*chance, linestyle="--", color="grey", label=chance_label)\n', "",
        "tests/unit/test_plots.py -k chance_diagonal"),
    "the report's tuning chart ticks between trials": (
        "src/sagemake/report.py", 'tickmode="linear", tick0=1, dtick=1, ', "",
        "tests/unit/test_report_charts.py -k whole_number"),
    "the report takes plotly.js from the internet": (
        "src/sagemake/report.py", 'script = f"<script>{get_plotlyjs()}</script>"',
        'script = \'<script src="https://cdn.plot.ly/plotly-3.3.0.min.js"></script>\'',
        "tests/local/test_report.py -k numbers"),
    "make jobs loads the report": (
        "src/sagemake/targets/jobs.py", "from sagemake.jobs.training import duration, final_metrics, metric_columns",
        "import sagemake.report\nfrom sagemake.jobs.training import duration, final_metrics, metric_columns",
        "tests/unit/test_report_charts.py -k never_import"),
    "compare shows what is the same first": (
        "src/sagemake/targets/compare.py", "(same if len(set(values)) == 1 else differ)",
        "(differ if len(set(values)) == 1 else same)", "tests/local/test_compare.py -k differs_first"),
    "compare takes one job": (
        "src/sagemake/targets/compare.py", "    if len(names) < 2:", "    if not names:",
        "tests/local/test_compare.py -k refuses"),
    "learning curves ticked between steps": (
        "src/sagemake/report.py", 'tickmode="linear", tick0=0, dtick=max(1, math.ceil(steps / 10)), ', "",
        "tests/unit/test_report_charts.py -k learning_curves"),
    "parallel trials' lines without their label": (
        "src/sagemake/executors/local/tuning.py", 'label = trial_label(entry["name"]) if parallel > 1 else ""',
        'label = ""', "tests/local/test_tune.py -k 6_trials"),
    "make logs of a tuning run without labels": (
        "src/sagemake/targets/logs.py", "executor.print_log(trial, trial_label(trial))", "executor.print_log(trial)",
        "tests/local/test_tune.py -k 6_trials"),
    "a failed job's reason said in its status line too": (
        "src/sagemake/executors/local/executor.py", 'said="Training job failed" if status == "Failed" else None',
        "said=None", "tests/local/test_messages.py -k once"),
    "a failed job's final line holds the whole reason": (
        "src/sagemake/targets/train.py", 'reason = reason_line(record.get("FailureReason") or',
        'reason = (record.get("FailureReason") or', "tests/local/test_messages.py -k once"),
    "a failed SageMaker job's reason said before the final line": (
        "src/sagemake/executors/sagemaker/executor.py",
        "        # Its reason is said once, by what ends the command; its log, just followed, is above.\n",
        '        print(record.get("FailureReason"), file=sys.stderr)\n', "tests/aws/test_aws.py -k failed_job"),
    "a bare traceback told by its first line": (
        "src/sagemake/jobs/__init__.py", "first = first[:-len(TRACEBACK)] + lines[-1]", "first = first",
        "tests/local/test_messages.py -k several_lines"),
    "the ledger's metric from today's settings": (
        "src/sagemake/jobs/training.py", "(main_metric(record, chosen) for record in records)",
        "(main_metric({}, chosen) for record in records)", "tests/local/test_messages.py -k ledger"),
    "a fetch suggested of a job that cannot be fetched": (
        "src/sagemake/models.py", '    asked(lambda: executor.completed(job, "serve"))\n', "",
        "tests/local/test_messages.py -k suggested"),
    "no nearest job named": (
        "src/sagemake/executors/local/executor.py", "near = difflib.get_close_matches(name, known, n=1)", "near = []",
        "tests/local/test_messages.py -k suggested"),
    "the latest tuning run suggested when there is none": (
        "src/sagemake/jobs/tuning.py", "    if latest:\n        return f\"the latest is",
        "    if True:\n        return f\"the latest is", "tests/local/test_messages.py -k suggested"),
    "the starred trials' run not named": (
        "src/sagemake/targets/jobs.py", 'TUNING={run}`" for run in starred)', '`" for run in starred)',
        "tests/local/test_tune.py -k 6_trials"),
    "a sync lock's refusal suggests make upload without ENV": (
        "src/sagemake/aws/synclock.py", 'self.again = f"make upload ENV={config.env}"', 'self.again = "make upload"',
        "tests/aws/test_sync_lock.py -k second_checkout"),
    "make build suggested for a prebuilt image": (
        "src/sagemake/executors/local/executor.py", 'get = "pull or build it" if config["TRAINING_IMAGE"] else',
        "get = ", "tests/local/test_local.py -k runtime_choice"),
    "Bring your own leaves a setting out": (
        "README.md", "| `CODE_MODE` |", "| `CODE MODE` |", "tests/unit/test_docs.py -k bring_your_own"),
    "CHECKPOINT_FROM not copied into a local job": (
        "src/sagemake/executors/local/executor.py", "            self.executor.start_checkpoints(self.request)\n",
        "", "tests/local/test_checkpoints.py -k seeds_a_new_one"),
    "local checkpoints inside the job's folder": (
        "src/sagemake/executors/local/executor.py",
        "            if kept:\n                (base / layout.CHECKPOINT_DIR).symlink_to",
        "            if False:\n                (base / layout.CHECKPOINT_DIR).symlink_to",
        "tests/local/test_checkpoints.py -k seeds_a_new_one"),
    "CHECKPOINT_FROM a running local job": (
        "src/sagemake/executors/local/executor.py", "            if records.running_now(record):\n",
        "            if False:\n", "tests/local/test_local.py -k checkpoint_from"),
    "clean-jobs deletes checkpoints unasked": (
        "src/sagemake/targets/clean_jobs.py", 'checkpoints=checkpoints == "delete")', "checkpoints=True)",
        "tests/local/test_checkpoints.py -k make_clean_jobs"),
    "CHECKPOINT_FROM not copied within S3": (
        "src/sagemake/executors/sagemaker/executor.py", "        self.start_checkpoints(request)\n", "",
        "tests/aws/test_checkpoints_prod.py -k copied_within_s3"),
    "CHECKPOINT_S3_URI given a folder per job": (
        "src/sagemake/executors/sagemaker/executor.py", 'return f"{given}/{job}/" if own else f"{given}/"',
        'return f"{given}/{job}/"', "tests/aws/test_checkpoints_prod.py -k copied_within_s3"),
    "CHECKPOINT_FROM a running SageMaker job": (
        "src/sagemake/executors/sagemaker/executor.py", "        if status not in TERMINAL:\n            raise",
        "        if False:\n            raise", "tests/aws/test_checkpoints_prod.py -k bad_checkpoint_from"),
    "checkpoints mixed into a place that holds others": (
        "src/sagemake/executors/interface.py", "if held and not held.items() <= self.checkpoint_files(source).items():",
        "if False:", "tests/aws/test_checkpoints_prod.py -k copied_within_s3"),
    "a copy cut short refused on a re-run": (
        "src/sagemake/executors/interface.py", "if held and not held.items() <= self.checkpoint_files(source).items():",
        "if held:", "tests/aws/test_checkpoints_prod.py -k bad_checkpoint_from"),
    "an S3 folder taken as a bare prefix": (
        "src/sagemake/aws/api.py", 'return bucket, key.rstrip("/") + "/" if key.strip("/") else ""',
        "return bucket, key", "tests/aws/test_checkpoints_prod.py -k bad_checkpoint_from"),
    "manifest without checkpoint_from": (
        "src/sagemake/models.py",
        '        **({"checkpoint_from": tagged[CHECKPOINT_FROM_TAG]} if CHECKPOINT_FROM_TAG in tagged else {}),\n',
        "", "tests/local/test_checkpoints.py -k seeds_a_new_one"),
    "tune takes CHECKPOINT_FROM": (
        "src/sagemake/jobs/tuning.py", '    if config["CHECKPOINT_FROM"]:\n        raise',
        "    if False:\n        raise", "tests/local/test_tune.py -k bad_input"),
    "request digest blind to CHECKPOINT_FROM": (
        "src/sagemake/jobs/__init__.py", 'kept = ("sagemake:data:", "sagemake:checkpoint-from")',
        'kept = ("sagemake:data:",)', "tests/unit/test_aws_calls.py -k request_digest"),
    "a container reached on the port it was given, not on 8080": (
        "src/sagemake/executors/local/serving.py", "        inside = port if self.binds_to_port else CONTAINER_PORT",
        "        inside = port", "tests/container/test_byo_serving.py -k reach_its_port"),
    "SAGEMAKER_BIND_TO_PORT given to an image without the label": (
        "src/sagemake/executors/local/serving.py",
        "**({serving.PORT_VARIABLE: str(port)} if self.binds_to_port else {})}", "serving.PORT_VARIABLE: str(port)}",
        "tests/container/test_byo_serving.py -k maps_a_port"),
    "the bind-to-port label not read": (
        "src/sagemake/executors/local/serving.py", 'labels.get(BIND_LABEL) == "true"),', "False),",
        "tests/container/test_byo_serving.py -k label_decides"),
    "a silent server's error names no port": (
        "src/sagemake/executors/local/serving.py", 'f"{self.runtime.reached(self.port)}{_last_line(', 'f"{_last_line(',
        "tests/container/test_byo_serving.py -k label_decides"),
    "today's settings decide what serves a model": (
        "src/sagemake/executors/local/serving.py", "    ours = sagemake_image(manifest)",
        "    ours = config.sagemake_image", "tests/local/test_serve.py -k manifest_not_the_settings"),
    "a job's image not recorded as sagemake's or not": (
        "src/sagemake/jobs/training.py", "json.dumps(config.sagemake_image)}", "json.dumps(True)}",
        "tests/unit/test_request.py -k own_image"),
    "a Ctrl-C as the server first answers leaves it running": (
        "src/sagemake/executors/local/serving.py", "        except BaseException:\n            if self.server",
        "        except Exception:\n            if self.server", "tests/local/test_serve.py -k ctrl_c_at_any"),
    "the end of a serving block leaves the server running": (
        "src/sagemake/executors/local/serving.py", "    def __exit__(self, *exc) -> None:\n        self.server.stop()",
        "    def __exit__(self, *exc) -> None:\n        pass", "tests/local/test_serve.py -k ctrl_c_at_any"),
    "a served model's process outlives a killed make serve": (
        "src/sagemake/executors/local/serving.py",
        'process = guarded([str(self.python), str(self.root / "docker" / SERVE)], env, ["--scratch", str(scratch)],\n'
        "                              output)",
        'process = subprocess.Popen([str(self.python), str(self.root / "docker" / SERVE)], env=env, stdout=output, '
        "start_new_session=True)", "tests/local/test_serve.py -k kill_9"),
    "make endpoints lists a stopped server": (
        "src/sagemake/targets/endpoints.py", 'if event == "serve" and not running(entry.get("executor")):',
        "if False:", "tests/local/test_serve.py -k until_ctrl_c_then"),
    "a killed make serve's scratch tree left behind": (
        "src/sagemake/executors/local/guard.py", "    if scratch:\n        shutil.rmtree",
        "    if False:\n        shutil.rmtree", "tests/local/test_serve.py -k kill_9"),
    "local checkpoints compared by size, not content": (
        "src/sagemake/executors/local/executor.py", "path.relative_to(place).as_posix(): sha256(path)",
        "path.relative_to(place).as_posix(): path.stat().st_size",
        "tests/local/test_checkpoints.py -k newer_checkpoint"),
    "S3 checkpoints compared by size, not content": (
        "src/sagemake/executors/sagemaker/executor.py", 'item["Key"][len(prefix):]: item["ETag"]',
        'item["Key"][len(prefix):]: item["Size"]', "tests/aws/test_checkpoints_prod.py -k bad_checkpoint_from"),
    "the report's ledger shows the newest job's metric alone": (
        "src/sagemake/report.py", "parts += _ledger(found, metric_columns([one.record for one in found], chosen))",
        "parts += _ledger(found, [primary] if primary else [])",
        "tests/unit/test_report_charts.py -k ledger_shows"),
    "make compare's JOBS globbed by the shell": (
        "Makefile", '\t@$(RUN) compare "$${JOBS:-}"\n', "\t@$(RUN) compare $${JOBS:+$$JOBS}\n",
        "tests/local/test_compare.py -k refuses"),
    "compare's checkpoint from row always empty": (
        "src/sagemake/executors/history.py", '"checkpoint from": self.tags.get(CHECKPOINT_FROM_TAG, "-"),',
        '"checkpoint from": "-",', "tests/unit/test_report_charts.py -k checkpoints_it_started"),
    "an offer file that is not a JSON object read as one": (
        "src/sagemake/price_list.py", "        if not isinstance(offer, dict):\n            raise",
        "        if False:\n            raise", "tests/unit/test_price_list.py -k not_sagemakers"),
    "an offer file without products makes an empty table": (
        "src/sagemake/price_list.py", '        if not offer.get("products"):\n            raise',
        "        if False:\n            raise", "tests/unit/test_price_list.py -k not_sagemakers"),
    "the report written over in place": (
        "src/sagemake/targets/report.py", "    jsonfile.write_text(path, text)",
        "    path.write_text(text)", "tests/local/test_report.py -k remade"),
    "COPY sources not checked before the build": (
        "src/sagemake/image.py", "        check_copied(config)\n", "",
        "tests/container/test_byo.py -k keeps_out"),
    "docker's legacy builder taken to read <Dockerfile>.dockerignore": (
        "src/sagemake/image.py", 'if os.environ.get("DOCKER_BUILDKIT") == "0":\n        return False',
        'if os.environ.get("DOCKER_BUILDKIT") == "0":\n        return True',
        "tests/container/test_byo.py -k keeps_out"),
    "an ignore rule's line number off by one": (
        "src/sagemake/buildcontext.py", "rules.append((number + 1,", "rules.append((number,",
        "tests/unit/test_buildcontext.py -k keeps_out"),
    "heredoc bodies read as instructions": (
        "src/sagemake/buildcontext.py", "for strip, _, word in _HEREDOC.findall(logical):",
        "for strip, _, word in []:", "tests/unit/test_buildcontext.py -k copies_from"),
    "COPY --from sources checked against the context": (
        "src/sagemake/buildcontext.py", 'if any(flag.startswith("--from") for flag in flags):', "if False:",
        "tests/unit/test_buildcontext.py -k copies_from"),
    "the job's Python made afresh on every change": (
        "src/sagemake/job_python.py",
        'if found is None or found.get("python") != wanted["python"] or not (home / "bin/python").exists():',
        "if True:", "tests/local/test_job_python.py -k in_place"),
    "what the requirements no longer name kept in the job's Python": (
        "src/sagemake/job_python.py", "    if unwanted:\n", "    if False:\n",
        "tests/local/test_job_python.py -k in_place"),
    "a half-updated job's Python taken as ready": (
        "src/sagemake/job_python.py", "        stamp.unlink()  # not ready until the update is whole", "        pass",
        "tests/local/test_job_python.py -k killed"),
    "a job's Python updated under a command using it": (
        "src/sagemake/job_python.py",
        "free = [home for home in homes if _lock_now(locks[home], fcntl.LOCK_EX)]\n                if not free:",
        "free = homes\n                if not free:", "tests/local/test_job_python.py -k take_turns"),
    "sagemake's own requirements left out of the job's Python": (
        "src/sagemake/job_python.py", "for path in (root / OWN_REQUIREMENTS, root / REQUIREMENTS)",
        "for path in (root / REQUIREMENTS,)", "tests/local/test_job_python.py -k in_place"),
    "sagemake's own requirements left out of the image": (
        "docker/Dockerfile",
        "RUN pip install -r /opt/program/requirements-sagemake.txt -r /opt/program/requirements.txt",
        "RUN pip uninstall -y pydantic granian matplotlib && pip install -r /opt/program/requirements.txt",
        "tests/container/test_byo.py -k its_own_requirements"),
    "a trainer's imports not looked up in a new image": (
        "src/sagemake/image.py", 'if config.sagemake_image and config["CODE_MODE"] == "image":', "if False:",
        "tests/container/test_byo.py -k its_own_requirements"),
    "a trainer's imports not looked up before a local job": (
        "src/sagemake/job_python.py", "        if fresh and config.sagemake_image and (root / TRAINER).is_dir():",
        "        if False:", "tests/local/test_job_python.py -k lack"),
    "an import under try/except ImportError checked": (
        "src/sagemake/contract/imports.py",
        "if isinstance(node, ast.Try) and any(_catches_import_errors(h) for h in node.handlers):",
        "if False:", "tests/unit/test_requirements.py"),
    "a trainer pin against sagemake's let through": (
        "src/sagemake/job_python.py", "if name in own and own[name][1] != version:", "if False:",
        "tests/unit/test_requirements.py"),
    "a long install step silent": (
        "src/sagemake/job_python.py", "if time.monotonic() - last[0] >= TICK:", "if False:",
        "tests/local/test_job_python.py -k still_at_it"),
    "early stopping judges only the last step read": (
        "src/sagemake/executors/local/tuning.py", "            if trial.should_prune():",
        "            if step == len(values) - 1 and trial.should_prune():", "tests/local/test_tune.py -k many_steps"),
    "a checkpoint place a later job took is still the first's": (
        "src/sagemake/executors/sagemaker/executor.py", "        if later:\n", "        if False:\n",
        "tests/aws/test_checkpoints_prod.py -k copied_within"),
    "no near name for an unknown SageMaker job": (
        "src/sagemake/executors/sagemaker/executor.py",
        "near = difflib.get_close_matches(name, self.names(limit=100), n=1)", "near = []",
        "tests/aws/test_aws.py -k unknown_job"),
    "the trainer's import check remembered whatever its content": (
        "src/sagemake/job_python.py", "        key.update(path.relative_to(root).as_posix().encode() + b",
        "        (path.relative_to(root).as_posix().encode() + b",
        "tests/local/test_job_python.py -k requirements_lack"),
    "an absent engine socket asked anyway": (
        "src/sagemake/image.py", "            answer = None if absent else self._quiet(",
        "            answer = None if False else self._quiet(", "tests/unit/test_buildcontext.py -k socket"),
    "the engine asked again each time": (
        "src/sagemake/image.py", "        if self._reachable is None:\n", "        if True:\n",
        "tests/unit/test_buildcontext.py -k socket"),
    "a container run as it is made": (
        "src/sagemake/executors/local/guard.py", '    created = bool(container) and command[1:2] == ["run"]',
        "    created = False", "tests/container/test_container_stop.py -k makes_the_container"),
    "an endpoint's variant not registered for autoscaling": (
        "src/sagemake/executors/sagemaker/scaling.py",
        "    call(executor.autoscaling.register_scalable_target, MinCapacity=fewest, MaxCapacity=most, **where)",
        "    pass", "tests/aws/test_scaling.py -k registers"),
    "a deploy without autoscaling keeps an earlier registration": (
        "src/sagemake/executors/sagemaker/scaling.py",
        "        _deregister(executor, endpoint)\n        say(f\"endpoint {endpoint}: autoscaling removed",
        "        say(f\"endpoint {endpoint}: autoscaling removed", "tests/aws/test_scaling.py -k registers"),
    "undeploy leaves the autoscaling registration": (
        "src/sagemake/executors/sagemaker/endpoint.py", "    if scaling.remove(executor, name):  # first,",
        "    if False:  # first,", "tests/aws/test_scaling.py -k registers"),
    "undeploy of a gone endpoint leaves its registration": (
        "src/sagemake/executors/sagemaker/endpoint.py", "        unscaled = scaling.remove(executor, name)",
        "        unscaled = False", "tests/aws/test_scaling.py -k gone_endpoint"),
    "a retried removal of autoscaling that finds nothing is an error": (
        "src/sagemake/executors/sagemaker/scaling.py",
        'GONE = dict.fromkeys(("ObjectNotFoundException", "ValidationException"))', "GONE = {}",
        "tests/aws/test_scaling.py -k lost_answer"),
    "autoscaling above the account's quota let through": (
        "src/sagemake/executors/sagemaker/scaling.py", "        if quota is not None and most > quota:",
        "        if False:", "tests/aws/test_scaling.py -k quota"),
    "the account's applied quota ignored for AWS's default": (
        "src/sagemake/executors/sagemaker/scaling.py",
        'for operation in ("list_service_quotas", "list_aws_default_service_quotas"):',
        'for operation in ("list_aws_default_service_quotas",):', "tests/aws/test_scaling.py -k registers"),
    "the price at the most instances said for one": (
        "src/sagemake/executors/sagemaker/scaling.py", "else rate(hourly * most)", "else rate(hourly)",
        "tests/aws/test_scaling.py -k registers"),
    "an instance type change with autoscaling registered sent as it is": (
        "src/sagemake/executors/sagemaker/scaling.py", "    if types and types != {instance_type}:",
        "    if False:", "tests/aws/test_scaling.py -k change_of_instance_type"),
    "ENDPOINT_MAX_INSTANCES below the initial count let through": (
        "src/sagemake/config.py", "and 0 < int(most) < int(count):", "and False:",
        "tests/aws/test_scaling.py -k bad_autoscaling"),
    "ENDPOINT_TARGET_INVOCATIONS not checked": (
        "src/sagemake/config.py", '        elif row.kind == "number" and not _positive(text):', "        elif False:",
        "tests/aws/test_scaling.py -k bad_autoscaling"),
    "make endpoints shows the current count as the desired one": (
        "src/sagemake/targets/endpoints.py", 'variant.get("DesiredInstanceCount", "-")',
        'variant.get("CurrentInstanceCount", "-")', "tests/aws/test_scaling.py -k registers"),
    "credentials without autoscaling permission refused a plain deploy": (
        "src/sagemake/executors/sagemaker/scaling.py", 'on={"AccessDeniedException": {}},', "on={},",
        "tests/aws/test_scaling.py -k may_not_read"),
    "a request's rows predicted one at a time": (
        "src/sagemake/contract/serve.py", "            return self.model.predict(rows)\n",
        "            return [p for row in rows for p in self.model.predict([row])]\n",
        "tests/unit/test_serve_app.py"),
    "serve's workers not as many as asked": (
        "src/sagemake/contract/serve.py", 'workers=settings["workers"], blocking_threads=1',
        "workers=1, blocking_threads=1", "tests/local/test_serve.py -k workers_asked_for"),
    "serve's access log off": (
        "src/sagemake/contract/serve.py", "websockets=False, log_access=True,", "websockets=False, log_access=False,",
        "tests/local/test_serve.py -k workers_asked_for"),
    "serve's workers not forked from the process that loaded the model": (
        "src/sagemake/contract/serve.py", 'multiprocessing.set_start_method("fork", force=True)',
        'multiprocessing.set_start_method("spawn", force=True)', "tests/local/test_serve.py -k workers_asked_for"),
    "a predict stuck past SAGEMAKER_MODEL_SERVER_TIMEOUT left running": (
        "src/sagemake/contract/serve.py", "if since is not None and time.monotonic() - since > self.timeout:",
        "if False:", "tests/unit/test_serve_app.py -k past_the_timeout"),
    "a captured answer marked as input": (
        "src/sagemake/capture.py", '"endpointOutput": side(answer, answer_type, OUTPUT)}',
        '"endpointOutput": side(answer, answer_type, INPUT)}', "tests/unit/test_capture.py -k sagemakers"),
    "capture sampling ignored": (
        "src/sagemake/capture.py", "return self.percent >= 100 or random.random() * 100 < self.percent",
        "return True", "tests/unit/test_capture.py -k hourly_folders"),
    "SINCE keeps every hour": (
        "src/sagemake/capture.py", "return hour + timedelta(hours=1) > start", "return True",
        "tests/unit/test_capture.py -k since"),
    "the label profiled as a feature": (
        "src/sagemake/baseline.py", "else [str(name) for name in row if name != label]",
        "else [str(name) for name in row]", "tests/unit/test_capture.py -k without_its_label"),
    "the serving proxy captures nothing": (
        "src/sagemake/executors/local/serving.py",
        'self.path.split("?")[0] == "/invocations" and answer.status == 200',
        'self.path.split("?")[0] == "/invocation" and answer.status == 200',
        "tests/local/test_drift.py -k make_serve_captures"),
    "an endpoint config without DataCaptureConfig": (
        "src/sagemake/executors/sagemaker/endpoint.py", '**({"DataCaptureConfig": capture} if capture else {}))',
        ")", "tests/aws/test_capture_prod.py -k sets_the_endpoint"),
    "drift verdict blind to DRIFT_THRESHOLD": (
        "src/sagemake/drift.py", "return Result(result, part, part >= share)", "return Result(result, part, False)",
        "tests/local/test_drift.py -k flags_shifted"),
    "a fetch again loses the capture": (
        "src/sagemake/models.py", '(destination / kept).rename(scratch / "new" / kept)', "pass",
        "tests/local/test_drift.py -k fetch_again"),
    "transform inputs not captured": (
        "src/sagemake/targets/transform.py",
        "    captured(config, model, folder, files, output_folder(config, name))\n", "",
        "tests/local/test_drift.py -k transform_captures"),
    "captured columns not checked against the training features": (
        "src/sagemake/targets/drift.py",
        "if names and not serving.numeric(names[0]) and sorted(names) != sorted(features):", "if False:",
        "tests/local/test_drift.py -k bad_input"),
    "the baseline ignores the model's feature list": (
        "src/sagemake/baseline.py",
        "                label = next((str(name) for name in row if name not in taken), None)\n", "",
        "tests/unit/test_capture.py -k own_feature_list"),
    "a local channel's digest unchecked for its baseline": (
        "src/sagemake/baseline.py", "    if recorded and summary(config, {channel: folder})",
        "    if recorded and not local and summary(config, {channel: folder})",
        "tests/unit/test_capture.py -k changed_since"),
    "the capturing proxy refuses a chunked body": (
        "src/sagemake/executors/local/serving.py", "                body = self._chunked()\n",
        "                body = None\n", "tests/unit/test_capture.py -k chunked"),
    "a deploy removes autoscaling set up outside sagemake": (
        "src/sagemake/executors/sagemaker/scaling.py", "        if not ours(executor, endpoint):\n",
        "        if False:\n", "tests/aws/test_scaling.py -k redeploy_keeps"),
    "an update of a scaled endpoint drops to its initial count": (
        "src/sagemake/executors/sagemaker/endpoint.py", '**({"RetainAllVariantProperties": True} if retain else {})',
        "", "tests/aws/test_scaling.py -k redeploy_keeps"),
    "make drift ENV=prod ignores what the endpoint serves": (
        "src/sagemake/targets/drift.py", "        served = for_config(config).endpoints().serving()\n",
        "        served = None\n", "tests/aws/test_capture_prod.py -k without_job"),
    "make drift ENV=prod leaves out what make transform captured here": (
        "src/sagemake/executors/sagemaker/executor.py", "        transformed = files_in(model / CAPTURE, start)\n",
        "        transformed = []\n", "tests/aws/test_capture_prod.py -k transform_env_prod"),
    "a run written again from its record twice": (
        "src/sagemake/tracking.py", '    found = written(client, experiment, request["name"])', "    found = None",
        "tests/local/test_tracking.py -k two_commands"),
    "writers of one queue not one at a time": (
        "src/sagemake/tracking.py", "fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "lock.flush()", "tests/local/test_tracking.py -k two_commands"),
    "the store read before its pending runs are written": (
        "src/sagemake/tracking.py", "    if waiting:", "    if False:", "tests/local/test_tracking.py -k two_commands"),
    "make train loads MLflow": (
        "src/sagemake/tracking.py", "from sagemake import jsonfile",
        "from sagemake import jsonfile; import mlflow  # noqa", "tests/local/test_tracking.py -k make_train_is_a_run"),
    "make ui serves the store before its pending runs are written": (
        "src/sagemake/targets/ui.py", "    drain(config)\n", "", "tests/local/test_tracking.py -k free_port"),
    "a make train stopped by Ctrl-C is no run": (
        "src/sagemake/targets/train.py",
        "        tracker.ended(lambda: executor.describe(name), \"TrainingJobStatus\",",
        "        tracker.ended(lambda: {}, \"TrainingJobStatus\",", "tests/local/test_tracking.py -k cut_short"),
    "a failed make transform is no run": (
        "src/sagemake/targets/transform.py", "    except (TransformFailed, KeyboardInterrupt):",
        "    except ZeroDivisionError:", "tests/local/test_tracking.py -k cut_short"),
    "a run's params and tags unmasked": (
        "src/sagemake/tracking.py", '"params": {key: mask(str(value))', '"params": {key: (str(value))',
        "tests/local/test_tracking.py -k cut_short"),
    "a tuning run without the data it tuned on": (
        "src/sagemake/tracking.py", "        if trials:  # the data it tuned on",
        "        if False:  # the data it tuned on",
        "tests/local/test_tracking.py -k nested"),
    "a make tune stopped by Ctrl-C is no run": (
        "src/sagemake/targets/tune.py", '            tracker.ended(lambda: executor.tuning().record(name),',
        "            tracker.ended(lambda: {},", "tests/local/test_tracking.py -k tune_stopped"),
}


def caught(name: str) -> bool:
    file, before, after, tests = MUTATIONS[name]
    path = ROOT / file
    original = path.read_text()
    if original.count(before) != 1:
        raise SystemExit(f"mutations: '{name}' no longer matches {file} exactly once: update it")
    mutated = original.replace(before, after)
    path.write_text(mutated)
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", *tests.split()], cwd=ROOT,
                              capture_output=True, text=True)
    finally:
        restore(path, original, mutated, before, after)
    return done.returncode != 0


def restore(path: Path, original: str, mutated: str, before: str, after: str) -> None:
    """Put the file back. Someone may have saved it meanwhile (this is a shared working tree): then only the
    mutation is undone in what they saved, and when that cannot be done exactly, nothing is overwritten."""
    now = path.read_text()
    if now == mutated:
        path.write_text(original)
    elif after and now.count(after) == 1 and now.count(before) == 0:
        path.write_text(now.replace(after, before))
    elif now != original:
        raise SystemExit(f"mutations: {path} changed while it was mutated: put back {after!r} as {before!r} by hand")


def main(names: list[str]) -> int:
    survived = 0
    for name in names or MUTATIONS:
        ok = caught(name)
        survived += not ok
        print(f"{'caught  ' if ok else 'SURVIVED'}  {name}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
