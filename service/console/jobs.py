"""Retraining jobs the console starts: the `tunedesk` CLI as a background subprocess.

Each job is a database row plus a log file; progress is read back from the log's lines. The
service never imports the training package: it runs the same commands an operator would, with
the service's own settings (database, data folder, model, engine) in their environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.errors import NotFound
from service.store.models import ConsoleJob, utcnow

TAIL_LINES = 40


class JobNotFound(NotFound):
    code = "job_not_found"


class Jobs:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self.root = settings.data_dir / "console-jobs"

    def start(
        self, tenant_id: str, kind: str, args: list[str], output: Path | None, by: str
    ) -> ConsoleJob:
        """Start `tunedesk ARGS...` in the background; its output goes to the job's log."""
        self.root.mkdir(parents=True, exist_ok=True)
        job = ConsoleJob(tenant_id=tenant_id, kind=kind, started_by=by, log_path="")
        job.command = ["tunedesk", *args]
        job.output = str(output) if output else None
        with self._sessions.begin() as s:
            s.add(job)
            s.flush()
            job.log_path = str(self.root / f"{job.id}.log")
        with Path(job.log_path).open("wb") as log:
            self._running[job.id] = subprocess.Popen(
                [sys.executable, "-m", "service.cli", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self._settings.as_env()},
            )
        return job

    def get(self, tenant_id: str, job_id: str) -> ConsoleJob:
        self._reap()
        with self._sessions() as s:
            job = s.get(ConsoleJob, job_id)
        if job is None or job.tenant_id != tenant_id:
            raise JobNotFound(f"No job with id {job_id!r} in this workspace.")
        return job

    def list(self, tenant_id: str, limit: int = 20) -> list[ConsoleJob]:
        self._reap()
        query = (
            select(ConsoleJob)
            .where(ConsoleJob.tenant_id == tenant_id)
            .order_by(ConsoleJob.created_at.desc())
            .limit(limit)
        )
        with self._sessions() as s:
            return list(s.scalars(query))

    def _reap(self) -> None:
        """Record the outcome of jobs that have finished."""
        for job_id, process in list(self._running.items()):
            code = process.poll()
            if code is None:
                continue
            del self._running[job_id]
            with self._sessions.begin() as s:
                job = s.get(ConsoleJob, job_id)
                if job is not None:
                    job.exit_code, job.finished_at = code, utcnow()
                    job.status = "succeeded" if code == 0 else "failed"

    def stop_all(self) -> None:
        """Stop what is still running (the app shuts down)."""
        for process in self._running.values():
            process.terminate()
            process.wait(timeout=30)
        self._reap()


def log_tail(job: ConsoleJob, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of a job's log; progress bars' carriage returns count as line ends."""
    path = Path(job.log_path)
    if not path.is_file():
        return []
    text = path.read_bytes()[-64_000:].decode("utf-8", "replace").replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip()][-lines:]
