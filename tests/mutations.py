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
        "        if (folder / MANIFEST).exists() or (output and (folder / OUTPUT).exists()):", "        if False:",
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
        "src/sagemake/targets/logs.py", "    if not printed:", "    if False:",
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
        "src/sagemake/job_python.py", "    if wheels:\n        steps.append(", "    if False:\n        steps.append(",
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
        "src/sagemake/data.py", ' or not unfilled(config.path("DATA_DIR")):', ":",
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
        "src/sagemake/executors/local/executor.py", '"LocalMetrics": self.points.points,', '"LocalMetrics": [],',
        "tests/local/test_tracking.py -k make_train_is_a_run"),
    "every value of a metric at step 0": (
        "src/sagemake/jobs/training.py", "self.steps[name] = step + 1", "self.steps[name] = step",
        "tests/unit/test_request.py -k metric_points"),
    "trials not nested under their tuning run": (
        "src/sagemake/tracking.py", 'tags["mlflow.parentRunId"] = parent', 'tags["sagemake.parent"] = parent',
        "tests/local/test_tracking.py -k make_tune"),
    "a processing run without its outputs' digests": (
        "src/sagemake/targets/preprocess.py", "{INPUT: raw_digest, **channel_digests(config, data)}",
        "{INPUT: raw_digest}", "tests/local/test_tracking.py -k make_preprocess"),
    "an unreachable store not said": (
        "src/sagemake/tracking.py", "        if self.error is not None:", "        if False:",
        "tests/local/test_tracking.py -k unreachable"),
    "a managed MLflow not named in the request": (
        "src/sagemake/jobs/training.py",
        'if config.flag("TRACKING") and config["MLFLOW_TRACKING_URI"].startswith("arn:"):', "if False:",
        "tests/unit/test_request.py -k managed_mlflow"),
    "a SageMaker job's series not read from its log": (
        "src/sagemake/executors/sagemaker/executor.py", "            points.seen(message, millis)",
        "            pass", "tests/aws/test_tracking_prod.py"),
    "make plan loads MLflow": (
        "src/sagemake/targets/plan.py", "from sagemake.pricing import plan_line",
        "from sagemake.pricing import plan_line; import mlflow  # noqa", "tests/local/test_tracking.py -k plan"),
    "make ui's server not under the guard": (
        "src/sagemake/targets/ui.py",
        'code, stopped = run_guarded(command, server_environment(), [], log, float("inf"), STOP_SECONDS)',
        'code, stopped = __import__("subprocess").run(command, env=server_environment()).returncode, None',
        "tests/local/test_tracking.py -k free_port"),
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
