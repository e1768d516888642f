"""The HTTP app of ``ml serve``: ``POST /predict``, ``GET /health``, ``GET /info`` and
the OpenAPI docs (``/docs``, ``/openapi.json``).

``/predict`` reads its body in the event loop and does everything else (parsing the
JSON or CSV, decoding images, the model) in the thread pool, so a request never holds
the loop while torch runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from vml.errors import UsageError
from vml.serve.predictor import Predictor
from vml.train.inference import InputError, check_kind, is_image_name
from vml.version import __version__

JSON, CSV, MULTIPART = "application/json", "text/csv", "multipart/form-data"
TOP_HELP = "How many labels to answer per input, most probable first (classification)."


def create_app(predictor: Predictor) -> FastAPI:
    """The app serving ``predictor``'s model."""
    info = predictor.info()
    served = info["model"] or f"run {info['run']}"
    app = FastAPI(
        title=f"vml: {served}",
        version=__version__,
        description=_description(info),
    )

    @app.get("/health", summary="Whether the server is up (the model is loaded before it listens)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info", summary="The run, model, labels, what it takes, test metrics and commit")
    async def get_info() -> dict[str, Any]:
        return info

    @app.post(
        "/predict",
        summary="Predict: labels with probabilities (top k) or regression values",
        openapi_extra={"requestBody": _request_body(predictor)},
        responses={
            200: {"content": {JSON: {"example": _example_answer(predictor)}}},
            413: {"description": "The body is over the server's --max-body."},
            415: {"description": "The body is not JSON, CSV or multipart files."},
            422: {"description": "A bad input: the detail names the field and why."},
        },
        response_class=Response,
    )
    async def predict(request: Request, top: int = Query(3, ge=1, description=TOP_HELP)) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if kind == MULTIPART:
                files = await _uploads(request, predictor)
                call = predictor.image_files if predictor.images else predictor.csv
                answer = await run_in_threadpool(_answer, call, files, top)
            elif kind == CSV or (kind.endswith("+json") or kind == JSON):
                body = await request.body()
                answer = await run_in_threadpool(_answer, _from_body, predictor, kind, body, top)
            else:
                return _error(
                    415,
                    f"unsupported content type {kind or 'none'!r} "
                    f"(send {JSON} rows, {CSV}, or {MULTIPART} files)",
                )
        except InputError as exc:
            return _invalid(exc.message, exc.where)
        except UsageError as exc:
            return _invalid(exc.message, ())
        return Response(answer, media_type=JSON)

    return app


def _answer(call: Callable[..., list[dict[str, Any]]], *args: Any) -> bytes:
    """``call(*args)``'s predictions as the JSON answer, written in the thread pool too
    (1,000 rows' answer takes about 10 ms to write: not in the event loop)."""
    return json.dumps({"predictions": call(*args)}).encode()


def _from_body(predictor: Predictor, kind: str, body: bytes, top: int) -> list[dict[str, Any]]:
    """Predictions for a JSON ``{"rows": [...]}`` body or a CSV one (in the thread pool)."""
    if kind == CSV:
        return predictor.csv([("body", body)], top)
    if predictor.images:
        raise InputError("this model takes images: send them as multipart files (curl -F file=@a.png)", ())
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InputError(f"the body is not JSON ({exc})", ()) from None
    if not isinstance(document, dict) or "rows" not in document:
        raise InputError('the body must be an object with "rows": a list of column: number objects', ())
    rows = document["rows"]
    if not isinstance(rows, list):
        raise InputError(f'"rows" is {type(rows).__name__}, not a list of rows', ("rows",))
    return predictor.rows(rows, top) if rows else []


async def _uploads(request: Request, predictor: Predictor) -> list[tuple[str, bytes]]:
    """The files of a multipart body as (name, bytes), each of the kind the model takes."""
    form = await request.form()
    files = []
    for field, value in form.multi_items():
        if not isinstance(value, UploadFile):
            raise InputError(f"form field {field!r} is not a file (send CSV or image files)", (field,))
        name = value.filename or field
        image = is_image_name(name) or (value.content_type or "").startswith("image/")
        check_kind(name, image, predictor.checkpoint)
        files.append((name, await value.read()))
    if not files:
        example = "-F file=@a.png" if predictor.images else "-F file=@rows.csv"
        raise InputError(f"no files in the form (send them as file fields, e.g. curl {example})", ())
    return files


def _invalid(message: str, where: tuple[str | int, ...]) -> JSONResponse:
    """422 in FastAPI's own shape: ``detail``, a list of errors with ``loc`` and ``msg``."""
    return JSONResponse(
        {"detail": [{"loc": ["body", *where], "msg": message, "type": "value_error"}]}, status_code=422
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _description(info: dict[str, Any]) -> str:
    takes = info["input"]
    what = (
        f"{takes['width']}x{takes['height']} images ({takes['channels']} channel(s)) as multipart files"
        if takes["type"] == "image"
        else f"rows of {len(takes['columns'])} columns as JSON or CSV"
    )
    return (
        f"Predictions of vml run `{info['run']}` ({info['network']}, {info['task']}) for {what}. "
        "`GET /info` says what it takes and how it scored."
    )


def _request_body(predictor: Predictor) -> dict[str, Any]:
    """The OpenAPI request body of ``/predict``: the forms the model takes."""
    files = {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        }
    }
    if predictor.images:
        return {"required": True, "content": {MULTIPART: files}}
    row = {"type": "object", "additionalProperties": {"type": "number"}}
    return {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["rows"],
                    "properties": {"rows": {"type": "array", "items": row}},
                },
                "example": {"rows": [predictor.example_row()]},
            },
            CSV: {"schema": {"type": "string"}, "example": ",".join(predictor.features) + "\n"},
            MULTIPART: files,
        },
    }


def _example_answer(predictor: Predictor) -> dict[str, Any]:
    if not predictor.labels:
        return {"predictions": [{"input": "rows[0]", "value": 0.5}]}
    labels = predictor.labels[:2]
    return {
        "predictions": [
            {
                "input": "rows[0]",
                "predictions": [
                    {"label": label, "probability": p} for label, p in zip(labels, (0.9, 0.1), strict=False)
                ],
            }
        ]
    }
