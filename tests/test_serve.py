"""``ml serve``: a real server (``python -m vml serve``) on a free loopback port, asked
over HTTP by a real client (httpx). One digits run, stored twice in the model store
(the digits server serves ``digits:v2``), and one image run served by its name."""

from __future__ import annotations

import csv
import io
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import image_project, start_ml
from PIL import Image

from vml import api
from vml.cli.serve import parse_size
from vml.errors import UsageError
from vml.serve import require_extra
from vml.serve.server import bind

DEADLINE_SECONDS = 60
START_LINE = re.compile(r"^serving .* at http://127\.0\.0\.1:(\d+) ")


class Server:
    """``python -m vml serve ARGS`` in ``cwd``, on a free port (``--port 0``), its
    stdout and stderr read by threads; ``url`` once it said where it listens."""

    def __init__(self, cwd: Path, home: Path, *args: str) -> None:
        self.process = start_ml("serve", *args, "--port", "0", cwd=cwd, home=home)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(
            target=self._read, args=(self.process.stderr, self.stderr.append), daemon=True
        ).start()
        try:
            self.start_line = self.lines.get(timeout=DEADLINE_SECONDS)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"no start line before the deadline: {''.join(self.stderr)}") from None
        found = START_LINE.match(self.start_line)
        assert found, self.start_line
        self.url = f"http://127.0.0.1:{found[1]}"
        self.client = httpx.Client(base_url=self.url, timeout=DEADLINE_SECONDS)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while self.client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "no /health before the deadline"

    @staticmethod
    def _read(stream, put) -> None:
        for line in stream:
            put(line)

    def stop(self) -> int:
        """Ctrl-C, then its exit code (killed, and failing, past the deadline)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("ml serve did not stop on SIGINT") from None


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """The digits demo in a git repository, one epoch of ``ml train`` (run ``served``),
    stored twice as ``digits`` (v1, v2)."""
    project = api.create_project(tmp_path_factory.mktemp("digits") / "demo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "demo"], cwd=project, check=True)
    out = io.StringIO()
    result = api.Project(project).train_in_process(["--epochs=1"], name="served", stderr=out)
    assert result.status == "finished", out.getvalue()
    for _ in range(2):
        api.Project(project).store_model("served", "digits")
    return project


@pytest.fixture(scope="module")
def server(digits: Path, home: Path) -> Iterator[Server]:
    running = Server(digits, home, "digits:v2", "--max-body", "64KiB")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    project = image_project(tmp_path_factory.mktemp("images") / "eyes", per_class=10)
    out = io.StringIO()
    result = api.Project(project).train_in_process(["--epochs=2"], name="eyes", stderr=out)
    assert result.status == "finished", out.getvalue()
    return project


@pytest.fixture(scope="module")
def rows(digits: Path, tmp_path_factory) -> Path:
    """The first 20 rows of the digits data (with their label column) as a CSV file."""
    with (digits / "data" / "digits.csv").open() as handle:
        lines = list(csv.reader(handle))[:21]
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    path.write_text("\n".join(",".join(line) for line in lines) + "\n")
    return path


def answers(predictions: list[dict]) -> list[list[tuple[str, float]]]:
    """Each input's labels with probabilities, without the input's name."""
    return [[(p["label"], round(p["probability"], 6)) for p in item["predictions"]] for item in predictions]


def test_predictions_equal_ml_predict(server: Server, digits: Path, rows: Path) -> None:
    # What ml predict RUN FILE prints (tests/test_run_commands.py runs the command).
    wanted = answers(api.Project(digits).predict("served", [rows]))
    assert len(wanted) == 20 and all(len(labels) == 3 for labels in wanted)

    with rows.open() as handle:
        table = list(csv.DictReader(handle))
    as_json = server.client.post("/predict", json={"rows": table})
    as_upload = server.client.post("/predict", files={"file": ("rows.csv", rows.read_bytes(), "text/csv")})
    as_body = server.client.post("/predict", content=rows.read_bytes(), headers={"content-type": "text/csv"})
    for response in (as_json, as_upload, as_body):
        assert response.status_code == 200, response.text
        assert answers(response.json()["predictions"]) == wanted
    assert [p["input"] for p in as_json.json()["predictions"][:2]] == ["rows[0]", "rows[1]"]
    assert as_upload.json()["predictions"][0]["input"] == "rows.csv:2"
    top1 = server.client.post("/predict", params={"top": 1}, json={"rows": table[:1]}).json()
    assert answers(top1["predictions"]) == [wanted[0][:1]]


def test_health_info_and_docs(server: Server, digits: Path) -> None:
    assert server.start_line.startswith("serving model digits:v2 (run served), mlp on rows of 64 columns")
    assert server.client.get("/health").json() == {"status": "ok"}
    info = server.client.get("/info").json()
    run = api.Project(digits).find_run("served")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=digits, capture_output=True, text=True)
    assert info["run"] == "served" and info["model"] == "digits:v2" and info["network"] == "mlp"
    assert info["labels"] == [str(i) for i in range(10)] and info["task"] == "classification"
    assert info["input"] == {
        "type": "table",
        "columns": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
    }
    assert info["test_metrics"]["test_acc"] == pytest.approx(run["test_acc"])
    assert info["commit"] == commit.stdout.strip()
    docs = server.client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "swagger" in docs.text.lower()
    schema = server.client.get("/openapi.json").json()
    assert {"/predict", "/health", "/info"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv", "multipart/form-data"}
    assert list(body["application/json"]["example"]["rows"][0]) == info["input"]["columns"]


def test_bad_requests_get_422_naming_the_field(server: Server, rows: Path, images: Path) -> None:
    with rows.open() as handle:
        row = next(csv.DictReader(handle))

    def refused(**request) -> dict:
        response = server.client.post("/predict", **request)
        assert response.status_code == 422, response.text
        return response.json()["detail"][0]

    missing = refused(json={"rows": [{k: v for k, v in row.items() if k != "pixel_3_4"}]})
    assert missing["loc"] == ["body", "rows", 0, "pixel_3_4"]
    assert missing["msg"] == "row 0 lacks the column(s) pixel_3_4 the run was trained on"
    word = refused(json={"rows": [row, row | {"pixel_0_2": "dark"}]})
    assert word["loc"] == ["body", "rows", 1, "pixel_0_2"]
    assert word["msg"] == "row 1, column 'pixel_0_2': 'dark' is not a number"
    assert refused(json={"rows": [row | {"pixel_0_2": None}]})["loc"] == ["body", "rows", 0, "pixel_0_2"]
    assert refused(json={"rows": "all"})["loc"] == ["body", "rows"]
    assert refused(json={"samples": []})["msg"].startswith('the body must be an object with "rows"')
    assert refused(content=b"{", headers={"content-type": "application/json"})["msg"].startswith(
        "the body is not JSON"
    )
    picture = next((images / "samples" / "3").glob("*.png"))
    image = refused(files={"file": ("three.png", picture.read_bytes(), "image/png")})
    assert image["loc"] == ["body", "files", "three.png"]
    assert "is an image; this run was trained on table rows" in image["msg"]
    short = refused(content=b"pixel_0_0,label\n1,2\n", headers={"content-type": "text/csv"})
    assert short["loc"] == ["body", "files", "body", "pixel_0_1"]
    top = server.client.post("/predict", params={"top": 0}, json={"rows": [row]})
    assert top.status_code == 422 and top.json()["detail"][0]["loc"] == ["query", "top"]
    form = server.client.post("/predict", data={"rows": "1,2"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]


def test_a_body_over_the_limit_gets_413(server: Server, rows: Path) -> None:
    big = rows.read_bytes() * 40  # about 100 kB, over the server's --max-body 64KiB
    declared = server.client.post("/predict", content=big, headers={"content-type": "text/csv"})
    assert declared.status_code == 413
    assert "over the limit of 64.0 KiB" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what comes
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = server.client.post("/predict", content=chunks(), headers={"content-type": "text/csv"})
    assert streamed.status_code == 413 and "over the limit" in streamed.json()["detail"]
    assert server.client.get("/health").status_code == 200


def test_image_uploads(images: Path, home: Path) -> None:
    files = sorted((images / "samples" / "3").glob("*.png"))[:4]
    expected = answers(api.Project(images).predict("eyes", files, top=2))
    running = Server(images, home, "eyes")
    try:
        assert running.start_line.startswith("serving run eyes, cnn on 8x8 images")
        info = running.client.get("/info").json()
        assert info["model"] is None
        assert info["input"] == {"type": "image", "width": 8, "height": 8, "channels": 1}
        upload = [("file", (path.name, path.read_bytes(), "image/png")) for path in files]
        response = running.client.post("/predict", params={"top": 2}, files=upload)
        assert response.status_code == 200, response.text
        assert answers(response.json()["predictions"]) == expected
        assert [p["input"] for p in response.json()["predictions"]] == [path.name for path in files]

        large = io.BytesIO()
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8), mode="L").save(large, format="PNG")
        wrong = running.client.post("/predict", files={"file": ("big.png", large.getvalue(), "image/png")})
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["loc"] == ["body", "files", "big.png"]
        assert "big.png is 16x16 grey after the run's preprocess ops" in wrong.json()["detail"][0]["msg"]
        broken = running.client.post("/predict", files={"file": ("bad.png", b"not a png", "image/png")})
        assert broken.status_code == 422 and "unreadable image bad.png" in broken.text
        table = running.client.post("/predict", json={"rows": [{"pixel_0_0": 1}]})
        assert table.status_code == 422 and "send them as multipart files" in table.text
        csv_file = running.client.post("/predict", files={"file": ("rows.csv", b"a,b\n1,2\n", "text/csv")})
        assert csv_file.status_code == 422 and "rows.csv is not an image" in csv_file.text
    finally:
        assert running.stop() == 130
    assert "Traceback" not in "".join(running.stderr)


def test_stored_models_by_name_and_version(digits: Path, server: Server) -> None:
    project = api.Project(digits)
    assert [m["ref"] for m in project.models("digits")] == ["digits:v1", "digits:v2"]
    assert project.served("digits").model == "digits:v2"
    assert project.served("digits:v1").model == "digits:v1"
    assert project.served("@served").model is None
    assert server.client.get("/info").json()["model"] == "digits:v2"


def test_refusals_before_serving(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(UsageError) as taken:
        bind("127.0.0.1", port)
    assert taken.value.message == (
        f"port {port} on 127.0.0.1 is in use (pick another with --port, or stop what listens there)"
    )
    assert parse_size("64KiB") == 65536 and parse_size("16MiB") == 16 * 1024 * 1024
    with pytest.raises(UsageError, match="--max-body 'lots' is not a size"):
        parse_size("lots")
    # Without FastAPI (a module set to None in sys.modules cannot be imported): one line naming the extra.
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(UsageError) as missing:
        require_extra()
    assert missing.value.message == (
        "ml serve needs the serve extra (pip install 'vml[serve]'); fastapi is not installed"
    )


def test_ctrl_c_stops_the_server(server: Server) -> None:
    assert server.client.get("/health").status_code == 200
    server.client.close()
    assert server.stop() == 130
    assert "Traceback" not in "".join(server.stderr), server.stderr
