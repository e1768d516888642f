"""``ml compare``: runs side by side, differing values marked, in text and JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

from vml import api


def test_compare_prints_results_final_metrics_and_what_differs(project: Path, ml) -> None:
    for name, rate in (("slow", "0.0005"), ("fast", "0.01")):
        result = api.Project(project).train_in_process(
            ["--epochs=2", f"--learning-rate={rate}"], name=name, stderr=io.StringIO()
        )
        assert result.status == "finished"

    table = ml("compare", "slow", "fast", cwd=project)
    assert table.returncode == 0, table.stderr
    lines = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in table.stdout.splitlines()[2:]
    }
    assert lines["learning_rate"].split() == ["*", "learning_rate", "0.0005", "0.01"]
    assert lines["status"].split() == ["status", "finished", "finished"]
    assert "final" in table.stdout and "val_acc" in table.stdout
    assert "batch_size" not in table.stdout  # the same in both: only with --all
    assert "batch_size" in ml("compare", "slow", "fast", "--all", cwd=project).stdout

    document = json.loads(ml("compare", "slow", "fast", "-f", "json", cwd=project).stdout)
    assert document["runs"] == ["slow", "fast"]
    rows = {row["field"]: row for row in document["rows"]}
    assert rows["learning_rate"] == {
        "field": "learning_rate",
        "values": {"slow": 0.0005, "fast": 0.01},
        "differs": True,
    }
    assert rows["epoch"]["values"] == {"slow": 2, "fast": 2} and rows["epoch"]["differs"] is False
    assert isinstance(rows["final val_acc"]["values"]["fast"], float)

    for args in (("slow",), ("slow", "nope"), ("slow", "fast", "-f", "xml")):
        refused = ml("compare", *args, cwd=project)
        assert refused.returncode in (2, 3) and refused.stderr.startswith("ml: error:"), args
