"""Conformance of the replica to the source API contract (docs/source-api.md), quirks included.

One in-process server (small scale) serves most tests; tests that need another
process key or other settings start their own.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
import requests

from sample_api.data import Dataset, build_dataset
from sample_api.dump import ground_truth_of
from sample_api.server import RunningServer, run_in_thread
from sample_api.settings import ServerSettings
from sample_api.testing import get_page, login, walk
from sample_api.tokens import FIXED_ACCESS_TOKEN

SETTINGS = ServerSettings(scale=300, seed=7, generation=1)
APPRENTICESHIP_FIELDS = ["id", "name", "programme_id", "modified_date", "first_name", "last_name", "email_address"]
PROJECT_FIELDS = ["id", "title", "description", "status"]
PROGRAMME_FIELDS = ["id", "name", "duration", "description"]
DATA_PATHS = ["/apprenticeships", "/apprenticeships/1/projects", "/programmes"]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return build_dataset(SETTINGS.scale, SETTINGS.seed, SETTINGS.generation)


@pytest.fixture(scope="module")
def truth(dataset: Dataset) -> dict[str, list[dict[str, Any]]]:
    return ground_truth_of(dataset)


@pytest.fixture(scope="module")
def server(dataset: Dataset) -> Iterator[RunningServer]:
    with run_in_thread(SETTINGS, dataset=dataset) as srv:
        yield srv


@pytest.fixture()
def client(server: RunningServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        login(session, server.url)
        yield session


def projects_of(truth: dict[str, list[dict[str, Any]]], aid: int) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in p.items() if k != "apprenticeship_id"}
        for p in truth["projects"]
        if p["apprenticeship_id"] == aid
    ]


def many_projects_id(truth: dict[str, list[dict[str, Any]]]) -> int:
    counts: dict[int, int] = {}
    for p in truth["projects"]:
        counts[p["apprenticeship_id"]] = counts.get(p["apprenticeship_id"], 0) + 1
    return max(counts, key=counts.__getitem__)


# ---------------------------------------------------------------- login


def test_login_success_gives_one_fixed_bearer_token(server: RunningServer) -> None:
    for _ in range(2):
        answer = requests.post(f"{server.url}/login", data={"username": "multiverse", "password": "mult1v3r53"})
        assert answer.status_code == 200
        assert answer.json() == {"access_token": FIXED_ACCESS_TOKEN, "token_type": "bearer"}


@pytest.mark.parametrize(
    "form", [{"username": "multiverse", "password": "wrong"}, {"username": "someone", "password": "mult1v3r53"}]
)
def test_login_wrong_credentials_400(server: RunningServer, form: dict[str, str]) -> None:
    answer = requests.post(f"{server.url}/login", data=form)
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Invalid username or password"}


def test_login_is_a_form_not_json(server: RunningServer) -> None:
    answer = requests.post(f"{server.url}/login", json={"username": "multiverse", "password": "mult1v3r53"})
    assert answer.status_code == 422
    missing = {tuple(e["loc"]) for e in answer.json()["detail"] if e["type"] == "missing"}
    assert missing == {("body", "username"), ("body", "password")}


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("path", DATA_PATHS)
@pytest.mark.parametrize("header", [None, "Basic bXVsdGl2ZXJzZQ==", "Token abc"])
def test_not_authenticated_401(server: RunningServer, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    answer = requests.get(f"{server.url}{path}", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Not authenticated"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", DATA_PATHS)
def test_wrong_token_401(server: RunningServer, path: str) -> None:
    answer = requests.get(f"{server.url}{path}", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Invalid token"}


def test_auth_is_checked_before_validation(server: RunningServer) -> None:
    answer = requests.get(f"{server.url}/apprenticeships/abc/projects?page_size=x")
    assert answer.status_code == 401


# ---------------------------------------------------------------- list shape and paging


def test_default_page_size_is_20(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]]
) -> None:
    page = client.get(f"{server.url}/apprenticeships").json()
    assert list(page) == ["data", "pagination"]
    assert list(page["pagination"]) == ["next_token", "previous_token", "page_size"]
    assert page["pagination"]["page_size"] == 20
    assert page["pagination"]["previous_token"] is None
    assert isinstance(page["pagination"]["next_token"], str)
    assert page["data"] == truth["apprenticeships"][:20]
    assert [list(r) for r in page["data"]] == [APPRENTICESHIP_FIELDS] * 20


@pytest.mark.parametrize("page_size", [1, 7, None, 43, 299, 5000])
def test_full_walk_apprenticeships(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]], page_size: int | None
) -> None:
    rows = walk(client, server.url, "/apprenticeships", page_size)
    assert rows == truth["apprenticeships"]
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("page_size", [1, 20, 42, 43, 100])
def test_full_walk_programmes(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]], page_size: int
) -> None:
    rows = walk(client, server.url, "/programmes", page_size)
    assert rows == truth["programmes"]
    assert [list(r) for r in rows] == [PROGRAMME_FIELDS] * len(rows)
    assert len(rows) % 20 != 0


@pytest.mark.parametrize("page_size", [1, None, 40, 1000])
def test_walk_projects_of_a_many_project_apprenticeship(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]], page_size: int | None
) -> None:
    aid = many_projects_id(truth)
    expected = projects_of(truth, aid)
    assert len(expected) > 40
    rows = walk(client, server.url, f"/apprenticeships/{aid}/projects", page_size)
    assert rows == expected
    assert all(list(r) == PROJECT_FIELDS for r in rows)  # no apprenticeship_id


def test_fan_out_returns_every_project_once(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]]
) -> None:
    landed = []
    for app in truth["apprenticeships"]:
        for project in walk(client, server.url, f"/apprenticeships/{app['id']}/projects", 50):
            landed.append({**project, "apprenticeship_id": app["id"]})
    assert landed == truth["projects"]
    assert {p["status"] for p in landed} == {"pending", "submitted", "graded"}


def test_last_page_has_null_next_and_previous_walks_back(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]]
) -> None:
    url = f"{server.url}/programmes"
    first = client.get(url, params={"page_size": 20}).json()
    second = client.get(url, params={"page_size": 20, "pagination_token": first["pagination"]["next_token"]}).json()
    back = client.get(url, params={"page_size": 20, "pagination_token": second["pagination"]["previous_token"]})
    assert back.json()["data"] == first["data"]
    last = client.get(url, params={"page_size": 20, "pagination_token": second["pagination"]["next_token"]}).json()
    assert last["pagination"]["next_token"] is None
    assert len(last["data"]) == len(truth["programmes"]) - 40


@pytest.mark.parametrize("size", [10**9, 10**30])
def test_no_maximum_page_size(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]], size: int
) -> None:
    page = client.get(f"{server.url}/apprenticeships", params={"page_size": size}).json()
    assert page["data"] == truth["apprenticeships"]
    assert page["pagination"] == {"next_token": None, "previous_token": None, "page_size": size}


def test_page_size_zero_gives_empty_pages_with_next_token_forever(
    server: RunningServer, client: requests.Session
) -> None:
    params: dict[str, Any] = {"page_size": 0}
    for _ in range(5):
        page = client.get(f"{server.url}/programmes", params=params).json()
        assert page["data"] == []
        assert page["pagination"]["next_token"] is not None
        assert page["pagination"]["page_size"] == 0
        params["pagination_token"] = page["pagination"]["next_token"]
    with pytest.raises(AssertionError, match="more than"):
        walk(client, server.url, "/programmes", 0, max_pages=20)


def assert_internal_error(answer: requests.Response) -> None:
    assert answer.status_code == 500
    assert answer.text == "Internal Server Error"
    assert answer.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("path", DATA_PATHS)
def test_negative_page_size_500(server: RunningServer, client: requests.Session, path: str) -> None:
    assert_internal_error(client.get(f"{server.url}{path}", params={"page_size": -1}))


@pytest.mark.parametrize("token", ["garbage", "gAAAAABk-not-a-token", "", "A" * 32, "%%%"])
def test_garbage_token_500(server: RunningServer, client: requests.Session, token: str) -> None:
    answer = client.get(f"{server.url}/apprenticeships", params={"pagination_token": token})
    if token == "":  # an empty token is no token: first page
        assert answer.status_code == 200
        return
    assert_internal_error(answer)


def test_tampered_token_500(server: RunningServer, client: requests.Session) -> None:
    token = client.get(f"{server.url}/programmes").json()["pagination"]["next_token"]
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert_internal_error(client.get(f"{server.url}/programmes", params={"pagination_token": flipped}))


def test_later_page_with_larger_page_size_500(server: RunningServer, client: requests.Session) -> None:
    url = f"{server.url}/apprenticeships"
    token = client.get(url, params={"page_size": 5}).json()["pagination"]["next_token"]
    assert client.get(url, params={"page_size": 5, "pagination_token": token}).status_code == 200
    assert_internal_error(client.get(url, params={"page_size": 6, "pagination_token": token}))


def test_token_from_an_earlier_process_500(dataset: Dataset) -> None:
    with requests.Session() as session:
        with run_in_thread(SETTINGS, dataset=dataset) as first:
            login(session, first.url)
            token = get_page(session, first.url, "/apprenticeships", {})["pagination"]["next_token"]
            port = first.port
        with run_in_thread(SETTINGS, dataset=dataset, port=port) as second:
            answer = session.get(f"{second.url}/apprenticeships", params={"pagination_token": token})
            assert_internal_error(answer)
            # the login token is the original's fixed one: it survives the restart
            assert session.get(f"{second.url}/apprenticeships").status_code == 200


# ---------------------------------------------------------------- modified_after


@pytest.mark.parametrize(
    "after",
    [
        "2024-06-01T00:00:00",
        "2024-06",
        "2024-06-01 12:00:00",
        "2024-06-01t00:00:00",
        "",
        "9",
        "2025",
        "2024-12-31T23:59:59",
    ],
)
def test_modified_after_is_a_string_comparison(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]], after: str
) -> None:
    rows = walk(client, server.url, "/apprenticeships", 100, modified_after=after)
    assert rows == [r for r in truth["apprenticeships"] if r["modified_date"] > after]


# ---------------------------------------------------------------- ids


def test_unknown_apprenticeship_ids_give_empty_data(
    server: RunningServer, client: requests.Session, truth: dict[str, list[dict[str, Any]]]
) -> None:
    ids = {r["id"] for r in truth["apprenticeships"]}
    gap = next(i for i in range(1, max(ids)) if i not in ids)
    for aid in (gap, 0, -3, max(ids) + 1000, 10**17):
        page = client.get(f"{server.url}/apprenticeships/{aid}/projects").json()
        assert page == {"data": [], "pagination": {"next_token": None, "previous_token": None, "page_size": 20}}


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "%20"])
def test_non_integer_apprenticeship_id_422(server: RunningServer, client: requests.Session, raw: str) -> None:
    answer = client.get(f"{server.url}/apprenticeships/{raw}/projects")
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["path", "id"]
    assert error["type"] == "int_parsing"


@pytest.mark.parametrize("raw", ["x", "1.5", ""])
def test_non_integer_page_size_422(server: RunningServer, client: requests.Session, raw: str) -> None:
    answer = client.get(f"{server.url}/programmes", params={"page_size": raw})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "page_size"]


# ---------------------------------------------------------------- fast path == FastAPI


def _normalise(answer: requests.Response) -> tuple[int, str, Any]:
    body: Any = answer.text
    if answer.headers.get("content-type") == "application/json":
        body = answer.json()
        if isinstance(body, dict) and "pagination" in body:
            body["pagination"] = {k: (v if k == "page_size" else v is not None) for k, v in body["pagination"].items()}
    return answer.status_code, answer.headers.get("content-type", ""), body


FAST_PATH_CASES = [
    ("/apprenticeships", {}),
    ("/apprenticeships", {"page_size": "007"}),
    ("/apprenticeships", {"page_size": "+5"}),
    ("/apprenticeships", {"page_size": " 5"}),
    ("/apprenticeships", {"page_size": "5.0"}),
    ("/apprenticeships", {"page_size": "-0"}),
    ("/apprenticeships", {"page_size": "abc"}),
    ("/apprenticeships", {"page_size": "-1"}),
    ("/apprenticeships", {"modified_after": "2024-05", "page_size": "3"}),
    ("/apprenticeships", {"page_size": ["2", "4"]}),
    ("/apprenticeships", {"extra": "1"}),
    ("/apprenticeships", {"pagination_token": "junk"}),
    ("/programmes", {"page_size": "0"}),
    ("/programmes", {"page_size": "99999999999999999999"}),
    ("/apprenticeships/1/projects", {}),
    ("/apprenticeships/+1/projects", {}),
    ("/apprenticeships/01/projects", {}),
    ("/apprenticeships/-1/projects", {}),
    ("/apprenticeships/x/projects", {}),
    ("/apprenticeships/1/projects/", {}),
    ("/apprenticeships/1/2/projects", {}),
    ("/apprenticeships//projects", {}),
]


def test_fast_path_answers_like_fastapi(dataset: Dataset, server: RunningServer) -> None:
    with run_in_thread(SETTINGS, dataset=dataset, fast_path=False) as slow:
        for auth in (f"Bearer {FIXED_ACCESS_TOKEN}", f"bearer   {FIXED_ACCESS_TOKEN} ", None, "Bearer bad", "Basic x"):
            headers = {"Authorization": auth} if auth else {}
            for path, params in FAST_PATH_CASES:
                fast = requests.get(f"{server.url}{path}", params=params, headers=headers)
                ref = requests.get(f"{slow.url}{path}", params=params, headers=headers)
                assert _normalise(fast) == _normalise(ref), (auth, path, params)
                assert fast.headers.get("www-authenticate") == ref.headers.get("www-authenticate")


# ---------------------------------------------------------------- docs


def test_swagger_and_openapi(server: RunningServer) -> None:
    docs = requests.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = requests.get(f"{server.url}/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/login", "/apprenticeships", "/apprenticeships/{id}/projects", "/programmes"}
    params = {p["name"] for p in paths["/apprenticeships"]["get"]["parameters"]}
    assert params == {"modified_after", "page_size", "pagination_token"}
    project_get = paths["/apprenticeships/{id}/projects"]["get"]
    project_params = {p["name"] for p in project_get["parameters"]}
    assert project_params == {"id", "page_size", "pagination_token"}
    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "login"
    assert "application/x-www-form-urlencoded" in paths["/login"]["post"]["requestBody"]["content"]


def test_realistic_uncleaned_values_are_served(truth: dict[str, list[dict[str, Any]]]) -> None:
    apps = truth["apprenticeships"]
    texts = [v for r in apps for v in r.values() if isinstance(v, str)]
    assert any(t != t.strip() for t in texts)
    assert any(r["email_address"].strip() != r["email_address"].strip().lower() for r in apps)
    assert any(re.search(r"[^\x00-\x7f]", t) for t in texts)
    programme_ids = {p["id"] for p in truth["programmes"]}
    assert any(r["programme_id"] not in programme_ids for r in apps)
