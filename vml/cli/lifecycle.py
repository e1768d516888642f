"""``ml wait``, ``ml cancel``, ``ml delete`` and ``ml prune``: runs over their lifetime."""

from __future__ import annotations

import sys

import typer

from vml import api
from vml.cli import render
from vml.cli.options import OPTIONAL_RUNS, RUNS
from vml.errors import ExitCode, NotFoundError, UsageError
from vml.views import local_time


def wait(
    runs: list[str] = OPTIONAL_RUNS,
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds (exit 1)."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between checks."),
    sweep_id: str | None = typer.Option(None, "--sweep", help="Wait for every run of this sweep."),
) -> None:
    """Block until the runs end; exit 0 if all finished, 1 otherwise."""
    if timeout is not None and timeout < 0:
        raise UsageError(f"--timeout {timeout:g} must be 0 or more (seconds)")
    if poll <= 0:
        raise UsageError(f"--poll {poll:g} must be more than 0 (seconds, e.g. --poll 1)")
    if not runs and sweep_id is None:
        raise UsageError("name the runs to wait for (e.g. ml wait @last) or a sweep (--sweep ID)")
    project = api.Project()
    refs = list(runs or ())
    if sweep_id is not None:
        names = [r["instance"] for r in project.list_runs(where=f"sweep={sweep_id}")]
        if not names:
            raise NotFoundError(
                f"no runs in sweep {sweep_id!r} (ml list --columns instance,sweep shows the sweeps)"
            )
        refs += [f"@{name}" for name in reversed(names)]  # in the order they were queued
    handles = [project.run(ref) for ref in refs]
    ok = True
    for handle in handles:
        try:
            info = handle.wait(poll=poll, timeout=timeout)
            acc = f", test_acc {info['test_acc']:.4f}" if info["test_acc"] is not None else ""
            print(f"{handle.name}: finished{acc}")
        except api.RunFailed as exc:
            print(f"{handle.name}: {exc.status}" + (f": {exc.error}" if exc.error else ""))
            ok = False
        except TimeoutError:
            print(f"{handle.name}: still {handle.status()} after {timeout:g} s")
            ok = False
    if not ok:
        sys.exit(int(ExitCode.FAILURE))


def cancel(
    runs: list[str] = OPTIONAL_RUNS,
    timeout: float = typer.Option(
        30.0, "--timeout", help="Seconds to wait for a clean stop before SIGTERM, then SIGKILL."
    ),
    sweep_id: str | None = typer.Option(
        None, "--sweep", help="Cancel a whole sweep: its queued runs leave the queue, its running runs stop."
    ),
) -> None:
    """Stop runs at the next batch boundary, keeping best.pt; kill them if they do not stop in time."""
    if timeout < 0:
        raise UsageError(f"--timeout {timeout:g} must be 0 or more")
    if not runs and sweep_id is None:
        raise UsageError("name the runs to cancel (e.g. ml cancel @last) or a sweep (--sweep ID)")
    project = api.Project()
    if sweep_id is not None:
        statuses = project.cancel_sweep(sweep_id, timeout)
        for name, status in statuses.items():
            print(f"{name}: {status}")
        if not statuses:
            print(f"sweep {sweep_id}: no queued or running run; nothing to cancel", file=sys.stderr)
    for ref in runs or ():
        handle = project.run(ref)
        before = handle.status()
        if before not in api.ACTIVE_STATES:
            print(f"{handle.name}: already {before}; nothing to cancel", file=sys.stderr)
            continue
        after = handle.cancel(timeout)
        if after == "killed":
            print(f"{handle.name}: killed: {handle.info()['error']}")
        elif after in api.ACTIVE_STATES:
            print(f"{handle.name}: asked to stop (it runs on another host; ml wait {handle.name})")
        else:
            print(f"{handle.name}: {after}")


def delete(
    runs: list[str] = RUNS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    force: bool = typer.Option(False, "--force", help="Cancel (or kill) queued and running runs first."),
) -> None:
    """Delete runs: their records, metrics and folders (checkpoints, logs)."""
    project = api.Project()
    names = [project.find_run(ref)["name"] for ref in runs]
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"delete {', '.join(names)}? pass --yes to confirm (stdin is not a terminal)")
        if not typer.confirm(f"delete {', '.join(names)} and their folders?"):
            raise typer.Exit(int(ExitCode.FAILURE))
    for name in names:
        print(f"deleted {project.delete(f'@{name}', force=force)}")


def prune(
    older_than: str = typer.Option(..., "--older-than", help="Age since the run ended: 30m, 12h, 7d, 2w."),
    status: list[str] = typer.Option(
        [], "--status", help="Only runs in this state (repeatable; default: every ended state)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete them; without it, only list them."),
) -> None:
    """Delete runs that ended long ago (a retention policy); lists them unless --yes."""
    project = api.Project()
    doomed = project.prune(older_than, status or None, dry_run=not yes)
    if not doomed:
        print(f"no ended runs older than {older_than}")
        return
    rows = [
        [r["instance"], r["status"], local_time(r["training_end"] or r["training_start"])] for r in doomed
    ]
    render.print_table(["instance", "status", "ended"], rows)
    if yes:
        print(f"deleted {len(doomed)} run(s)")
    else:
        print(f"{len(doomed)} run(s) would be deleted; run again with --yes to delete them")
