"""CloudWatch Logs: a job's streams (one per instance) read as they grow."""

from __future__ import annotations

from sagemake.aws.api import (
    LOG_GROUP,
    call,
)


class LogReader:
    """New lines of every CloudWatch stream of a job (one per instance), each prefixed with its stream."""

    def __init__(self, logs, job: str, group: str = LOG_GROUP):
        self.logs, self.job, self.group = logs, job, group
        self.tokens: dict[str, str | None] = {}

    def new_lines(self) -> list[str]:
        return [line for _, line in self.new_events()]

    def new_events(self) -> list[tuple[int, str]]:
        """New lines with the time CloudWatch gives each (milliseconds since the epoch)."""
        lines = []
        # no log group before the first job writes to it
        streams = call(self.logs.describe_log_streams, on={"ResourceNotFoundException": {}},
                       logGroupName=self.group, logStreamNamePrefix=f"{self.job}/")
        for stream in sorted(s["logStreamName"] for s in streams.get("logStreams", [])):
            host = stream[len(self.job) + 1:]
            while True:
                kwargs = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
                if self.tokens.get(stream):
                    kwargs["nextToken"] = self.tokens[stream]
                answer = call(self.logs.get_log_events, **kwargs)
                lines += [(event["timestamp"], f"[{host}] {event['message'].rstrip()}")
                          for event in answer.get("events", [])]
                token = answer.get("nextForwardToken")
                if not answer.get("events") or token == self.tokens.get(stream):
                    self.tokens[stream] = token
                    break
                self.tokens[stream] = token
        return lines
