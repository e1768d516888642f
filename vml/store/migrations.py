"""The store's forward migrations, written with sqlite-utils. Imported only when a
database is new or older than this version of vml (sqlite-utils and what it imports
cost ~0.2 s, a lot for ``ml list``)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("vml")


@migrations()
def m001_runs_metrics_events(db: Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "model": str,
            "status": str,
            "created_at": str,
            "started_at": str,
            "ended_at": str,
            "epoch": int,
            "epochs": int,
            "step": int,
            "steps": int,
            "hyperparameters": str,
            "fingerprint": str,
            "pid": int,
            "host": str,
            "heartbeat": str,
            "monitor": str,
            "best_metric": float,
            "best_epoch": int,
            "test_acc": float,
            "test_loss": float,
            "error": str,
        },
        pk="id",
        not_null={"name", "status", "model"},
    )
    db["runs"].create_index(["name"], unique=True)
    db["metrics"].create(
        {"run_id": int, "key": str, "epoch": int, "step": int, "value": float, "time": str},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id", "key", "step"])
    db["events"].create(
        {"id": int, "run_id": int, "time": str, "kind": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["events"].create_index(["run_id"])


@migrations()
def m002_process_identity_and_cancel(db: Database) -> None:
    # A pid alone can be reused: the process start time tells a live worker from a
    # new process that got its pid. cancel_requested lets ml cancel reach a worker
    # through the store, from any host.
    db["runs"].add_column("pid_started", float)
    db["runs"].add_column("cancel_requested", str)
    db["runs"].create_index(["status"])
    db["runs"].create_index(["started_at"])


@migrations()
def m003_resources(db: Database) -> None:
    # What the run's process uses (CPU, memory, GPU), written by its heartbeat, so
    # any reader (the dashboard, another host) can show it.
    db["runs"].add_column("resources", str)


@migrations()
def m004_sweeps(db: Database) -> None:
    # A sweep or runs file queues many runs at once; its scheduler (a process of its
    # own when detached) starts them K at a time and keeps a heartbeat like a worker.
    db["runs"].add_column("sweep", str)
    db["runs"].create_index(["sweep"])
    db["sweeps"].create(
        {
            "id": str,
            "created_at": str,
            "source": str,
            "parallel": int,
            "gpus_per_run": int,
            "cpus_per_run": int,
            "backend": str,
            "address": str,
            "pid": int,
            "host": str,
            "pid_started": float,
            "heartbeat": str,
            "ended_at": str,
        },
        pk="id",
    )


@migrations()
def m005_studies(db: Database) -> None:
    # ml tune: a study is a sweep whose runs are asked for one by one (its search
    # space and settings as JSON in ``study``); each run is one trial, numbered, and
    # a trial its pruner stopped keeps the reason. ``stop_requested``: no new
    # trials (ml cancel --sweep, the dashboard), whichever process drives the study.
    db["sweeps"].add_column("study", str)
    db["sweeps"].add_column("stop_requested", str)
    db["runs"].add_column("trial", int)
    db["runs"].add_column("prune_reason", str)


@migrations()
def m006_evaluation_and_reproduction(db: Database) -> None:
    # The test split's metrics beyond accuracy (vml.evaluate), the command line that
    # recorded the run (its reproducibility record quotes it) and, for ml rerun, the
    # run it repeats.
    for column in ("test_f1", "test_auc", "test_ap", "test_mae", "test_rmse", "test_r2"):
        db["runs"].add_column(column, float)
    db["runs"].add_column("command", str)
    db["runs"].add_column("rerun_of", str)


@migrations()
def m007_revisions_and_hyperparameter_keys(db: Database) -> None:
    # 100,000 runs: a live view asks "what changed since revision N" (every insert or
    # update of a run takes the next revision, kept in ``revision``), and the columns
    # ml list can filter on come from ``hyperparameter_keys`` (reading them out of every
    # run's JSON took 1.0 s at 100,000 runs, the table 0.1 ms). Triggers keep both, so
    # no writer can forget them.
    db["runs"].add_column("rev", int)
    db["runs"].create_index(["rev"])
    db.executescript(
        """
        create table revision (id integer primary key check (id = 0), rev integer not null);
        insert into revision values (0, 0);
        create trigger runs_insert_rev after insert on runs begin
            update revision set rev = rev + 1;
            update runs set rev = (select rev from revision) where id = new.id;
        end;
        create trigger runs_update_rev after update on runs when new.rev is old.rev begin
            update revision set rev = rev + 1;
            update runs set rev = (select rev from revision) where id = new.id;
        end;
        create trigger runs_delete_rev after delete on runs begin
            update revision set rev = rev + 1;
        end;
        create table hyperparameter_keys (key text primary key) without rowid;
        insert or ignore into hyperparameter_keys
            select distinct j.key from runs, json_each(runs.hyperparameters) as j;
        create trigger runs_insert_keys after insert on runs begin
            insert or ignore into hyperparameter_keys select key from json_each(new.hyperparameters);
        end;
        create trigger runs_update_keys after update of hyperparameters on runs begin
            insert or ignore into hyperparameter_keys select key from json_each(new.hyperparameters);
        end;
        update runs set rev = id;
        update revision set rev = coalesce((select max(id) from runs), 0);
        """
    )


def migrate(connection) -> int:
    """Apply the pending migrations on ``connection``; the schema version reached."""
    db = Database(connection)
    db.enable_wal()
    migrations.apply(db)  # a no-op for migrations another process applied
    version = len(migrations.applied(db))
    db.execute(f"PRAGMA user_version = {version}")
    return version
