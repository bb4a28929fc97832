"""The durable job queue (spatial.jobs) on a real PostgreSQL: visibility per user,
concurrent claims, leases, progress, results, dismissal, expiry, requeue after a
worker died, and the worker running a job as its submitter."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from spatial import jobs
from spatial.access import ANONYMOUS, Principal, current_principal
from spatial.db import connect
from spatial.errors import InvalidInputError, NotFoundError


def _user(conn: psycopg.Connection[Any], name: str, *roles: str, active: bool = True
          ) -> Principal:
    uid = conn.execute("INSERT INTO onemap.app_user (username, active) VALUES (%s, %s) "
                       "RETURNING id", (name, active)).fetchone()["id"]
    for role in roles:
        conn.execute("INSERT INTO onemap.user_role (user_id, role_id) "
                     "SELECT %s, id FROM onemap.app_role WHERE code = %s", (uid, role))
    return Principal(uid, name, frozenset(roles))


def _row(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> dict[str, Any]:
    return conn.execute("SELECT * FROM onemap.job WHERE id = %s", (job_id,)).fetchone()


def _echo(job: jobs.Job) -> tuple[str, Any]:
    return "application/json", {"echo": job.inputs}


def test_jobs_are_visible_to_their_submitter_and_district_admins(conn: psycopg.Connection) -> None:
    wang = _user(conn, "wang", "grid_worker")
    li = _user(conn, "li", "analyst")
    admin = _user(conn, "zhao", "district_admin")
    mine = jobs.submit(conn, "locate", {"x": 1}, principal=wang)
    theirs = jobs.submit(conn, "locate", {"x": 2}, principal=li)
    anonymous = jobs.submit(conn, "locate", {"x": 3}, principal=ANONYMOUS)
    assert mine.status == "accepted" and mine.attempts == 0 and mine.user_id == wang.user_id

    assert [j.id for j in jobs.list_jobs(conn, wang)[0]] == [mine.id]
    assert [j.id for j in jobs.list_jobs(conn, ANONYMOUS)[0]] == [anonymous.id]
    page, total = jobs.list_jobs(conn, admin, limit=2)
    assert total == 3 and [j.id for j in page] == [anonymous.id, theirs.id]  # newest first
    assert jobs.list_jobs(conn, admin, limit=2, offset=2)[0][0].id == mine.id
    assert jobs.list_jobs(conn, admin, status="running") == ([], 0)

    assert jobs.get(conn, str(mine.id), wang).inputs == {"x": 1}
    assert jobs.get(conn, mine.id, admin).id == mine.id
    for who, job in ((li, mine), (ANONYMOUS, mine), (wang, anonymous)):
        with pytest.raises(NotFoundError):
            jobs.get(conn, job.id, who)
        with pytest.raises(NotFoundError):
            jobs.dismiss(conn, job.id, who)
    with pytest.raises(NotFoundError):
        jobs.get(conn, "not-a-uuid", admin)
    with pytest.raises(ValueError, match="status"):
        jobs.list_jobs(conn, admin, status="done")


def test_concurrent_claims_get_different_jobs(db: str) -> None:
    with connect(db, autocommit=True) as setup:
        submitted = [jobs.submit(setup, "locate", {"n": n}, principal=ANONYMOUS).id
                     for n in range(2)]
    with connect(db) as first, connect(db) as second:
        # no wait: a worker that blocked on the other's row would hit this
        second.execute("SET lock_timeout = '5s'")
        a = jobs.claim_next(first, "worker-a")  # its transaction stays open: row locked
        b = jobs.claim_next(second, "worker-b")
        assert a is not None and b is not None
        assert {a.id, b.id} == set(submitted) and a.id == submitted[0]
        assert jobs.claim_next(second, "worker-b") is None  # the locked one is skipped
        first.commit()
        second.commit()
    with connect(db, autocommit=True) as check:
        rows = {r["id"]: r for r in check.execute("SELECT * FROM onemap.job").fetchall()}
    assert {rows[a.id]["worker"], rows[b.id]["worker"]} == {"worker-a", "worker-b"}
    assert all(r["status"] == "running" and r["attempts"] == 1 for r in rows.values())


def test_claim_only_the_processes_a_worker_knows(conn: psycopg.Connection) -> None:
    jobs.submit(conn, "grid-statistics", {}, principal=ANONYMOUS)
    assert jobs.claim_next(conn, "w", process_ids=["locate"]) is None
    assert jobs.claim_next(conn, "w", process_ids=[]) is None
    claimed = jobs.claim_next(conn, "w", process_ids=["locate", "grid-statistics"])
    assert claimed is not None and claimed.process_id == "grid-statistics"


def test_progress_lease_and_result(conn: psycopg.Connection) -> None:
    job = jobs.submit(conn, "locate", {}, principal=ANONYMOUS, retention=timedelta(hours=2))
    claimed = jobs.claim_next(conn, "w1", lease=timedelta(seconds=30))
    assert claimed is not None and claimed.id == job.id and claimed.status == "running"
    assert claimed.lease_until is not None and claimed.started_at is not None

    assert jobs.heartbeat(conn, job.id, "w1", progress=40, message="half-way")
    seen = jobs.get(conn, job.id, ANONYMOUS)
    assert (seen.status, seen.progress, seen.message) == ("running", 40, "half-way")
    assert seen.lease_until is not None and seen.lease_until > claimed.lease_until - timedelta(1)
    assert not jobs.heartbeat(conn, job.id, "someone-else", progress=50)
    with pytest.raises(ValueError):
        jobs.heartbeat(conn, job.id, "w1", progress=101)
    with pytest.raises(NotFoundError, match="no result"):
        jobs.get_result(conn, job.id, ANONYMOUS)

    assert jobs.complete(conn, job.id, "w1", media_type="application/json",
                         result={"grid": "第一网格"})
    done = jobs.get(conn, job.id, ANONYMOUS)
    assert (done.status, done.progress, done.result_media_type) == (
        "successful", 100, "application/json")
    assert done.finished_at is not None and done.expires_at == done.finished_at + timedelta(hours=2)
    assert jobs.get_result(conn, job.id, ANONYMOUS) == ("application/json", {"grid": "第一网格"})
    assert not jobs.complete(conn, job.id, "w1", media_type="application/json", result={})
    assert not jobs.fail(conn, job.id, "w1", "too late")


def test_results_of_other_media_types_are_bytes(conn: psycopg.Connection) -> None:
    jobs.submit(conn, "render", {}, principal=ANONYMOUS)
    job = jobs.claim_next(conn, "w")
    assert job is not None
    with pytest.raises(TypeError):
        jobs.complete(conn, job.id, "w", media_type="image/png", result={"not": "bytes"})
    assert jobs.complete(conn, job.id, "w", media_type="text/csv", result="a,b\n1,2\n")
    assert jobs.get_result(conn, job.id, ANONYMOUS) == ("text/csv", b"a,b\n1,2\n")


def test_dismissal_cancels_and_drops_the_result(conn: psycopg.Connection) -> None:
    wang = _user(conn, "wang", "grid_worker")
    job = jobs.submit(conn, "locate", {}, principal=wang)
    assert jobs.claim_next(conn, "w") is not None
    dismissed = jobs.dismiss(conn, job.id, wang)
    assert dismissed.status == "dismissed"
    with pytest.raises(NotFoundError):
        jobs.get(conn, job.id, wang)
    with pytest.raises(NotFoundError):
        jobs.dismiss(conn, job.id, wang)
    assert not jobs.heartbeat(conn, job.id, "w")  # the worker learns it should stop
    assert not jobs.complete(conn, job.id, "w", media_type="application/json", result={"a": 1})
    row = _row(conn, job.id)
    assert row["status"] == "dismissed" and row["result"] is None

    # a finished job's result goes too
    other = jobs.submit(conn, "locate", {}, principal=wang)
    assert jobs.claim_next(conn, "w") is not None
    jobs.complete(conn, other.id, "w", media_type="application/json", result={"a": 1})
    jobs.dismiss(conn, other.id, wang)
    assert _row(conn, other.id)["result"] is None


def test_expired_jobs_vanish_and_are_purged(conn: psycopg.Connection) -> None:
    finished = jobs.submit(conn, "locate", {}, principal=ANONYMOUS, retention=timedelta(0))
    waiting = jobs.submit(conn, "locate", {"later": True}, principal=ANONYMOUS)
    assert jobs.claim_next(conn, "w") is not None
    jobs.complete(conn, finished.id, "w", media_type="application/json", result=[1])
    with pytest.raises(NotFoundError):  # expired: gone for clients before the purge
        jobs.get(conn, finished.id, ANONYMOUS)
    assert jobs.purge_expired(conn) == 1
    assert _row(conn, finished.id) is None
    assert _row(conn, waiting.id)["status"] == "accepted"  # unfinished jobs do not expire
    assert jobs.purge_expired(conn) == 0


def test_a_dead_workers_job_is_requeued_until_attempts_run_out(conn: psycopg.Connection) -> None:
    job = jobs.submit(conn, "locate", {}, principal=ANONYMOUS, max_attempts=2)
    sync = jobs.submit(conn, "locate", {}, principal=ANONYMOUS, mode="sync", worker="sync:w")
    assert sync.status == "running" and sync.attempts == 1
    assert jobs.claim_next(conn, "w") is not None
    assert jobs.requeue_stale(conn) == (0, 0)  # leases still valid

    conn.execute("UPDATE onemap.job SET lease_until = now() - interval '1 second'")
    assert jobs.requeue_stale(conn) == (1, 1)
    row = _row(conn, job.id)
    assert (row["status"], row["attempts"], row["worker"]) == ("accepted", 1, None)
    assert "attempt 1 of 2" in row["message"]
    # nobody waits for a sync job any more: it fails rather than run again
    assert _row(conn, sync.id)["status"] == "failed"

    again = jobs.claim_next(conn, "w2")
    assert again is not None and again.id == job.id and again.attempts == 2
    conn.execute("UPDATE onemap.job SET lease_until = now() - interval '1 second' "
                 "WHERE id = %s", (job.id,))
    assert jobs.requeue_stale(conn) == (0, 1)
    row = _row(conn, job.id)
    assert row["status"] == "failed" and "2 of 2 attempts" in row["message"]
    assert row["expires_at"] is not None


def test_worker_runs_a_job_as_its_submitter(db: str, conn: psycopg.Connection) -> None:
    wang = _user(conn, "wang", "grid_worker", "analyst")
    seen: list[Principal] = []
    reported: list[bool] = []

    def handler(job: jobs.Job) -> tuple[str, Any]:
        seen.append(current_principal())
        reported.append(jobs.report_progress(50, "half-way"))
        progress = conn.execute("SELECT progress, message FROM onemap.job WHERE id = %s",
                                (job.id,)).fetchone()
        return "application/json", {"progress_seen": progress["progress"],
                                    "message_seen": progress["message"]}

    job = jobs.submit(conn, "locate", {"x": 1}, principal=wang)
    worker = jobs.JobWorker({"locate": handler}, conninfo=db)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    [who] = seen
    assert who.user_id == wang.user_id and who.roles == frozenset({"grid_worker", "analyst"})
    assert reported == [True]
    assert jobs.get_result(conn, job.id, wang)[1] == {"progress_seen": 50,
                                                      "message_seen": "half-way"}
    assert current_principal() is ANONYMOUS


def test_job_of_a_disabled_user_fails(db: str, conn: psycopg.Connection) -> None:
    gone = _user(conn, "qian", "analyst", active=False)
    job = jobs.submit(conn, "locate", {}, principal=gone)
    outcome = jobs.JobWorker({"locate": _echo}, conninfo=db).run_next()
    assert outcome is not None and outcome.status == "failed"
    row = _row(conn, job.id)
    assert row["status"] == "failed" and row["message"] == jobs.MSG_NO_SUBMITTER


def test_failures_store_a_safe_message_and_log_the_details(
        db: str, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    def broken(job: jobs.Job) -> tuple[str, Any]:
        raise RuntimeError("connection to postgresql://onemap:s3cret@db/onemap failed")

    def refused(job: jobs.Job) -> tuple[str, Any]:
        raise InvalidInputError("tolerance_m must be ≥ 0, got -1")

    worker = jobs.JobWorker({"broken": broken, "refused": refused}, conninfo=db)
    bad = jobs.submit(conn, "broken", {}, principal=ANONYMOUS)
    with caplog.at_level(logging.ERROR, logger="spatial.jobs"):
        outcome = worker.run_next()
    assert outcome is not None and isinstance(outcome.error, RuntimeError)
    row = _row(conn, bad.id)
    assert row["status"] == "failed" and str(bad.id) in row["message"]
    assert "s3cret" not in row["message"] and "postgresql" not in row["message"]
    assert "s3cret" in caplog.text  # the details are in the log

    wrong = jobs.submit(conn, "refused", {}, principal=ANONYMOUS)
    worker.run_next()
    assert _row(conn, wrong.id)["message"] == "tolerance_m must be ≥ 0, got -1"


def test_worker_thread_is_woken_by_a_new_job(db: str, conn: psycopg.Connection) -> None:
    worker = jobs.JobWorker({"locate": _echo}, conninfo=db, poll_seconds=60)
    worker.start()
    try:
        # the first look at the queue happens at start; wait until the thread listens
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND query ILIKE 'LISTEN%%'").fetchone():
            time.sleep(0.05)
        job = jobs.submit(conn, "locate", {"n": 7}, principal=ANONYMOUS)
        deadline = time.monotonic() + 30  # far below the 60 s poll: NOTIFY woke it
        while time.monotonic() < deadline and _row(conn, job.id)["status"] != "successful":
            time.sleep(0.05)
    finally:
        worker.stop()
    assert _row(conn, job.id)["status"] == "successful"
    assert jobs.get_result(conn, job.id, ANONYMOUS)[1] == {"echo": {"n": 7}}
