"""The replica's ASGI application: FastAPI routes plus a fast path for well-formed calls.

FastAPI declares every route (so ``/docs`` and ``/openapi.json`` describe the API and
FastAPI itself produces the 401/422 answers and their bodies). In front of it,
``SampleAPI`` applies faults to data endpoints and answers the common case (a GET with an
accepted bearer token and plainly valid parameters) directly from the shared
``Service``, skipping FastAPI's per-request dependency machinery. Anything unusual falls
through to FastAPI, so both paths answer alike; a test checks it.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel
from starlette.datastructures import QueryParams

from .data import Dataset, build_dataset
from .faults import FaultInjector, Receive, Send, is_data_path, send_internal_error
from .service import INTERNAL_ERROR_BODY, Service
from .settings import ServerSettings
from .tokens import TokenError

log = logging.getLogger(__name__)

USERNAME = "multiverse"
PASSWORD = "mult1v3r53"
DEFAULT_PAGE_SIZE = 20

_INT = re.compile(r"-?[0-9]{1,18}")
_JSON_HEADERS = b"application/json"


# ---------------------------------------------------------------- schema (docs only)


class Pagination(BaseModel):
    next_token: Optional[str] = None
    previous_token: Optional[str] = None
    page_size: int


class Apprenticeship(BaseModel):
    id: int
    name: str
    programme_id: int
    modified_date: str
    first_name: str
    last_name: str
    email_address: str


class Project(BaseModel):
    id: int
    title: str
    description: str
    status: str


class Programme(BaseModel):
    id: int
    name: str
    duration: int
    description: str


class ApprenticeshipPage(BaseModel):
    data: list[Apprenticeship]
    pagination: Pagination


class ProjectPage(BaseModel):
    data: list[Project]
    pagination: Pagination


class ProgrammePage(BaseModel):
    data: list[Programme]
    pagination: Pagination


class LoginAnswer(BaseModel):
    access_token: str
    token_type: str


def _doc(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": model, "description": "One page"},
        401: {"description": "Not authenticated / Invalid token"},
        500: {"description": "Garbage, foreign or impossible pagination token"},
    }


# ---------------------------------------------------------------- FastAPI routes


def internal_error() -> Response:
    """The original's plain 500; the connection closes after it, as there."""
    return PlainTextResponse(INTERNAL_ERROR_BODY, status_code=500, headers={"connection": "close"})


def _answer(produce: Callable[[], bytes]) -> Response:
    try:
        return Response(content=produce(), media_type="application/json")
    except TokenError as exc:
        log.debug("500 for pagination: %s", exc)
        return internal_error()


def build_fastapi(service: Service) -> FastAPI:
    """FastAPI app with the original's routes, auth and validation."""
    api = FastAPI(
        title="Multiverse Data Engineering Task API",
        description="Replica of the Multiverse sample API (multiverse-etl sample_api).",
    )
    oauth2 = OAuth2PasswordBearer(tokenUrl="login")

    async def require_token(token: str = Depends(oauth2)) -> str:
        if not service.access.consume(token):
            raise HTTPException(status_code=401, detail="Invalid token", headers={"WWW-Authenticate": "Bearer"})
        return token

    @api.post("/login", response_model=LoginAnswer)
    async def login(form: OAuth2PasswordRequestForm = Depends()) -> dict[str, str]:
        if form.username != USERNAME or form.password != PASSWORD:
            raise HTTPException(status_code=400, detail="Invalid username or password")
        return {"access_token": service.access.issue(), "token_type": "bearer"}

    page_size_q = Query(DEFAULT_PAGE_SIZE, description="Rows per page (no maximum unless the server caps it)")
    token_q = Query(None, description="`next_token` or `previous_token` of an earlier page")

    @api.get("/apprenticeships", response_model=None, responses=_doc(ApprenticeshipPage))
    async def apprenticeships(
        modified_after: Optional[str] = Query(
            None,
            description="Only rows with `modified_date > modified_after` (string comparison), e.g. 2024-03-05T10:21:33",
        ),
        page_size: int = page_size_q,
        pagination_token: Optional[str] = token_q,
        _: str = Depends(require_token),
    ) -> Response:
        return _answer(lambda: service.apprenticeships(modified_after, page_size, pagination_token))

    @api.get("/apprenticeships/{id}/projects", response_model=None, responses=_doc(ProjectPage))
    async def projects(
        id: int = Path(..., description="Apprenticeship id"),  # noqa: A002 (original name)
        page_size: int = page_size_q,
        pagination_token: Optional[str] = token_q,
        _: str = Depends(require_token),
    ) -> Response:
        return _answer(lambda: service.projects(id, page_size, pagination_token))

    @api.get("/programmes", response_model=None, responses=_doc(ProgrammePage))
    async def programmes(
        page_size: int = page_size_q,
        pagination_token: Optional[str] = token_q,
        _: str = Depends(require_token),
    ) -> Response:
        return _answer(lambda: service.programmes(page_size, pagination_token))

    return api


# ---------------------------------------------------------------- outer ASGI app


class SampleAPI:
    """ASGI entry point: faults, then the fast path, then FastAPI."""

    def __init__(self, api: FastAPI, service: Service, faults: FaultInjector, fast_path: bool = True) -> None:
        self.api = api
        self.service = service
        self.faults = faults
        self.fast_path = fast_path

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_data_path(scope["path"]):
            await self.api(scope, receive, send)
            return
        faults = self.faults
        slots = faults.slots
        if slots is None:
            if faults.active and await faults.intercept(scope, receive, send):
                return
            await self._answer(scope, receive, send)
            return
        if await faults.rate_limited(send):  # a rate limit answers before the queue, as a gateway would
            return
        async with slots:  # FIFO: beyond C at once, requests wait, so latency grows with load
            if await faults.after_admission(scope, receive, send):
                return
            await self._answer(scope, receive, send)

    async def _answer(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The answer of the app itself: the fast path, else FastAPI."""
        if self.fast_path and scope["method"] == "GET":
            answer = self._fast(scope)
            if answer is not None:
                await _send_answer(send, answer)
                return
        await self.api(scope, receive, send)

    def _fast(self, scope: dict[str, Any]) -> Optional[bytes | TokenError]:
        """Body (or TokenError) for a plainly valid, authorised request; None = let FastAPI."""
        path: str = scope["path"]
        apprenticeship_id: Optional[int] = None
        if path.endswith("/projects"):
            raw_id = path[len("/apprenticeships/") : -len("/projects")]
            if not _INT.fullmatch(raw_id):
                return None
            apprenticeship_id = int(raw_id)
        query = scope["query_string"]
        params = QueryParams(query) if query else _NO_PARAMS
        raw_size = params.get("page_size")
        if raw_size is None:
            page_size = DEFAULT_PAGE_SIZE
        elif _INT.fullmatch(raw_size):
            page_size = int(raw_size)
        else:
            return None
        if not self._authorised(scope):
            return None
        token = params.get("pagination_token")
        service = self.service
        try:
            if apprenticeship_id is not None:
                return service.projects(apprenticeship_id, page_size, token)
            if path == "/programmes":
                return service.programmes(page_size, token)
            return service.apprenticeships(params.get("modified_after"), page_size, token)
        except TokenError as exc:
            return exc

    def _authorised(self, scope: dict[str, Any]) -> bool:
        """Accepted bearer token (counted); anything else is FastAPI's to answer."""
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, param = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return False
                return self.service.access.consume(param.strip())
        return False


_NO_PARAMS = QueryParams(b"")


async def _send_answer(send: Send, answer: bytes | TokenError) -> None:
    if isinstance(answer, TokenError):
        log.debug("500 for pagination: %s", answer)
        await send_internal_error(send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(answer)).encode()),
                (b"content-type", _JSON_HEADERS),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def create_app(settings: ServerSettings, dataset: Optional[Dataset] = None, *, fast_path: bool = True) -> SampleAPI:
    """ASGI app for ``settings`` (builds the dataset unless one is given).

    Each call makes a new pagination key: tokens of an earlier app answer 500.
    """
    if dataset is None:
        dataset = build_dataset(settings.scale, settings.seed, settings.generation, settings.corrupt_rate)
    service = Service(
        dataset,
        token_ttl=settings.token_ttl,
        max_page_size=settings.max_page_size,
        extra_fields=settings.extra_fields,
        poison=settings.poison,
    )
    return SampleAPI(build_fastapi(service), service, FaultInjector(settings), fast_path)
