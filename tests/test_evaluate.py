"""Evaluation at the end of every run: the test split's predictions kept in the run
folder, per-class metrics, AUC, AP and the confusion matrix (checked against
scikit-learn here), the run columns, ``ml test`` for old runs, and ``ml plot``."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import yaml
from data_factories import digits, image_project
from helpers import run_ml_in_process_report_torch
from PIL import Image
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.preprocessing import label_binarize
from test_regression import make_regression_project

from vml import api


def train(root: Path, name: str, *overrides: str) -> dict:
    """Train in this process; the run as ``ml list --format json`` shows it."""
    out = io.StringIO()
    result = api.Project(root).train_in_process(list(overrides), name=name, stderr=out)
    assert result.status == "finished", out.getvalue()
    return next(r for r in api.Project(root).list_runs() if r["instance"] == name)


def predictions(root: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(root / "trainings" / name / "predictions.npz") as kept:
        return {key: kept[key] for key in kept.files}


def binary_project(root: Path) -> Path:
    """Digits as a yes/no question with string labels: is it a 5 or more?"""
    header, x, y = digits(per_class=30)
    (root / "data").mkdir(parents=True)
    lines = [",".join([*header, "big"])]
    lines += [
        ",".join([*map(str, row), "yes" if label >= 5 else "no"]) for row, label in zip(x, y, strict=True)
    ]
    (root / "data" / "big.csv").write_text("\n".join(lines) + "\n")
    spec = {
        "model": "mlp",
        "test-split": "20%",
        "data": {
            "input": {"type": "csv", "file": "big.csv", "target": "big"},
            "preprocess": [{"op": "standardize"}],
        },
        "train": {"epochs": 2},
    }
    (root / "vergeml.yaml").write_text(yaml.safe_dump(spec))
    return root


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = binary_project(tmp_path_factory.mktemp("binary") / "big")
    train(root, "yes-no")
    return root


def test_a_binary_run_keeps_its_predictions_and_the_metrics_of_sklearn(binary: Path) -> None:
    run = next(iter(api.Project(binary).list_runs()))
    kept = predictions(binary, "yes-no")
    assert list(kept["labels"]) == ["no", "yes"]  # the label names, in class order
    y, scores = kept["y_true"], kept["scores"]
    assert scores.shape == (len(y), 2) and np.allclose(scores.sum(axis=1), 1)
    predicted = scores.argmax(axis=1)
    assert run["test_acc"] == pytest.approx(float((predicted == y).mean()))
    assert run["test_f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert run["test_auc"] == pytest.approx(roc_auc_score(y, scores[:, 1]))
    assert run["test_ap"] == pytest.approx(average_precision_score(y, scores[:, 1]))
    assert run["test_mae"] is None

    evaluation = json.loads((binary / "trainings" / "yes-no" / "evaluation.json").read_text())
    assert evaluation["positive"] == "yes"
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted)
    for index, row in enumerate(evaluation["classes"]):
        assert row["label"] == ["no", "yes"][index]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(
            (precision[index], recall[index], f1[index])
        )
        assert row["support"] == support[index]
    assert evaluation["confusion_matrix"] == confusion_matrix(y, predicted).tolist()


def test_the_metric_columns_sort_filter_and_compare(binary: Path, ml) -> None:
    train(binary, "lower-rate", "--learning-rate=0.0001")
    runs = {r["instance"]: r for r in api.Project(binary).list_runs()}
    best = max(runs, key=lambda name: runs[name]["test_f1"])
    listed = ml(
        "list", "--sort=-test_f1", "--columns", "instance,test_f1,test_auc", "--format", "csv", cwd=binary
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith(best)
    cut = (runs["yes-no"]["test_auc"] + runs["lower-rate"]["test_auc"]) / 2
    where = ml("list", "--where", f"test_auc>{cut}", "--format", "json", cwd=binary)
    assert [r["instance"] for r in json.loads(where.stdout)] == [
        name for name in runs if runs[name]["test_auc"] > cut
    ]
    compared = ml("compare", "yes-no", "lower-rate", "--format", "json", cwd=binary)
    fields = {row["field"]: row["values"] for row in json.loads(compared.stdout)["rows"]}
    assert fields["test_f1"]["yes-no"] == pytest.approx(runs["yes-no"]["test_f1"])
    assert "test_mae" not in fields  # a classification has no regression metrics
    shown = ml("show", "yes-no", cwd=binary)
    assert "test_auc" in shown.stdout and "evaluation: " in shown.stdout
    assert any(line.split()[:1] == ["yes"] for line in shown.stdout.splitlines())  # the per-class report


def test_a_multiclass_run_averages_one_vs_rest(project: Path) -> None:
    run = train(project, "ten", "--epochs=1")
    kept = predictions(project, "ten")
    y, scores = kept["y_true"], kept["scores"]
    assert scores.shape[1] == 10
    assert run["test_auc"] == pytest.approx(roc_auc_score(y, scores, multi_class="ovr"))
    assert run["test_ap"] == pytest.approx(
        average_precision_score(label_binarize(y, classes=range(10)), scores)
    )
    assert run["test_f1"] == pytest.approx(f1_score(y, scores.argmax(axis=1), average="macro"))


def test_an_image_project_is_evaluated_with_its_folder_names(tmp_path: Path) -> None:
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    root = image_project(tmp_path / "images", per_class=12, names=names, **{"test-split": 30})
    train(root, "pictures", "--epochs=1")
    kept = predictions(root, "pictures")
    assert sorted(kept["labels"]) == sorted(names) and len(kept["y_true"]) == 30
    plot = api.Project(root).plot("pictures", "confusion-matrix")
    assert sum(map(sum, plot.values)) == 30


def test_a_regression_gets_mae_rmse_and_r2_and_no_curves(tmp_path: Path, ml) -> None:
    root = make_regression_project(tmp_path / "houses", "mse")
    run = train(root, "prices", "--epochs=5")
    kept = predictions(root, "prices")
    y, predicted = kept["y_true"], kept["scores"]
    assert list(kept["labels"]) == [] and predicted.shape == y.shape
    assert run["test_mae"] == pytest.approx(mean_absolute_error(y, predicted))
    assert run["test_rmse"] == pytest.approx(root_mean_squared_error(y, predicted))
    assert run["test_r2"] == pytest.approx(r2_score(y, predicted))
    assert run["test_f1"] is None and run["test_auc"] is None
    refused = ml("plot", "roc", "prices", cwd=root)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "ml: error: run 'prices' is a regression: roc plots are for classifications "
        "(its test_mae, test_rmse and test_r2 are in ml show prices)"
    ]


def test_plots_are_written_as_png_svg_and_pdf(binary: Path, ml, tmp_path: Path) -> None:
    png, svg, pdf = tmp_path / "roc.png", tmp_path / "matrix.svg", tmp_path / "pr.pdf"
    for args in (
        ("plot", "roc", "yes-no", "--out", str(png)),
        ("plot:confusion-matrix", "yes-no", "--normalize", "--out", str(svg)),
        ("plot", "pr", "yes-no", "-o", str(pdf)),
    ):
        result = ml(*args, cwd=binary)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == args[-1]
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 300
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "confusion matrix of yes-no" in ElementTree.tostring(root, encoding="unicode")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_compare_overlays_the_runs_curves(binary: Path, ml, tmp_path: Path) -> None:
    if len(api.Project(binary).list_runs()) < 2:
        train(binary, "lower-rate", "--learning-rate=0.0001")
    out = tmp_path / "both.png"
    result = ml("compare", "yes-no", "lower-rate", "--plot", "roc", "--out", str(out), cwd=binary)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).format == "PNG"
    overlaid = api.Project(binary).compare_plot(["yes-no", "lower-rate"], "pr")
    assert [curve.name for curve in overlaid.curves] == ["yes-no", "lower-rate"]
    refused = ml("compare", "yes-no", "lower-rate", "--plot", "confusion-matrix", cwd=binary)
    assert refused.returncode == 2 and "overlays roc or pr" in refused.stderr


def test_plot_mistakes_get_one_line_and_exit_2(binary: Path, ml, tmp_path: Path) -> None:
    cases = {
        ("plot", "roc", "yes-no", "--class", "maybe"): "--class 'maybe' is not a label of run 'yes-no'",
        ("plot", "roc-curve", "yes-no"): "unknown plot 'roc-curve'",
        ("plot", "roc", "yes-no", "--out", str(tmp_path / "roc.jpg")): "write a .png, .svg or .pdf file",
        ("plot", "roc", "yes-no", "--normalize"): "--normalize applies to confusion-matrix plots",
    }
    for args, message in cases.items():
        result = ml(*args, cwd=binary)
        assert result.returncode == 2, args
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "roc.jpg").exists()


def test_ml_test_makes_the_predictions_of_a_run_that_has_none(binary: Path, ml) -> None:
    folder = binary / "trainings" / "yes-no"
    before = json.loads((folder / "evaluation.json").read_text())
    for name in ("predictions.npz", "evaluation.json"):
        (folder / name).unlink()
    refused = ml("plot", "pr", "yes-no", cwd=binary)
    assert refused.returncode == 2
    assert refused.stderr == "ml: error: run 'yes-no' has no predictions yet (ml test yes-no makes them)\n"
    tested = ml("test", "yes-no", cwd=binary)
    assert tested.returncode == 0, tested.stderr
    assert f"test_f1 {before['metrics']['test_f1']:.4f}" in tested.stdout
    assert json.loads((folder / "evaluation.json").read_text())["metrics"] == pytest.approx(before["metrics"])


def test_the_terminal_plot_reads_the_kept_files_without_torch(binary: Path) -> None:
    stdout, imported_torch = run_ml_in_process_report_torch(["plot", "roc", "yes-no"], binary)
    assert "ROC of yes-no" in stdout and "yes (AUC " in stdout
    assert not imported_torch
    matrix, _ = run_ml_in_process_report_torch(
        ["plot", "confusion-matrix", "yes-no", "--class", "no"], binary
    )
    assert [line.split()[0] for line in matrix.splitlines()[3:]] == ["no", "not"]


HELPER_SCRIPT = """
import json, sys
from pathlib import Path
from vml.evaluate import service
service.start_helper()
helper = service._helper
print(helper.pid, flush=True)
if sys.argv[1] == "kill":
    helper.kill()
    helper.wait()
print(json.dumps(service.evaluate_folder(Path(sys.argv[2]))), flush=True)
print("sklearn.metrics" in sys.modules, flush=True)
"""


@pytest.mark.parametrize("helper", ["alive", "kill"])
def test_the_helper_process_evaluates_or_this_one_does_and_it_dies_with_its_parent(
    binary: Path, helper: str
) -> None:
    import subprocess
    import sys
    import time

    import psutil

    folder = binary / "trainings" / "yes-no"
    expected = json.loads((folder / "evaluation.json").read_text())["metrics"]
    (folder / "evaluation.json").unlink()
    result = subprocess.run(
        [sys.executable, "-c", HELPER_SCRIPT, helper, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pid, columns, imported_here = result.stdout.splitlines()
    assert json.loads(columns) == pytest.approx({k: expected[k] for k in ("test_f1", "test_auc", "test_ap")})
    assert json.loads((folder / "evaluation.json").read_text())["metrics"] == pytest.approx(expected)
    # The helper did the work (this process never imported scikit-learn), unless it was gone.
    assert imported_here == ("True" if helper == "kill" else "False")
    deadline = time.monotonic() + 30
    while psutil.pid_exists(int(pid)) and psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the helper outlived its parent"
        time.sleep(0.05)
