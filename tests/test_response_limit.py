"""Bounded memory: `api.max_response_bytes` caps an answer body after decompression, while it is read.

A gzip bomb (a small gzip body that inflates to 200 MB) ends the request with ResponseTooLarge naming the page
and the limit, after the client held about the limit, never the 200 MB; a page under the limit is unaffected.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
from aiohttp import web

from multiverse_etl.config import ConfigError, load_config
from multiverse_etl.errors import EtlError
from multiverse_etl.extract import ApiError, ResponseTooLarge
from multiverse_etl.extract.http import ApiClient
from test_client import PAGE, PASSWORD, Script, api_config, creds, run, serve

MiB = 1024 * 1024
LIMIT = 1 * MiB
BOMB_INFLATED = 200 * MiB


def gzip_bomb(inflated: int = BOMB_INFLATED) -> bytes:
    """A valid gzip stream of a JSON page whose one string is `inflated` bytes of 'a' (~200 KB compressed)."""
    zipper = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [zipper.compress(b'{"data":["')]
    block = b"a" * MiB
    for _ in range(inflated // MiB):
        out.append(zipper.compress(block))
    out.append(zipper.compress(b'"],"pagination":{"next_token":null,"previous_token":null,"page_size":20}}'))
    out.append(zipper.flush())
    return b"".join(out)


BOMB = gzip_bomb()


async def bomb(script: Script, request: web.Request) -> web.Response:
    return web.Response(body=BOMB, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})


def test_the_bomb_is_small_on_the_wire_and_huge_inflated():
    assert len(BOMB) < 400_000
    assert len(zlib.decompressobj(31).decompress(BOMB, 10 * MiB)) == 10 * MiB  # (more to come)


def test_a_gzip_bomb_is_refused_by_name_after_reading_about_the_limit():
    async def main():
        script = Script(bomb)
        async with serve(script) as url, ApiClient(api_config(url, max_response_bytes=LIMIT), creds()) as client:
            tracemalloc.start()
            try:
                with pytest.raises(ResponseTooLarge) as failure:
                    await client.get_page("/apprenticeships", {"page_size": 20}, entity="apprenticeships")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            token = client.auth.secret.reveal()
        return failure.value, peak, script, token, url

    error, peak, script, token, url = run(main())
    message = str(error)
    assert isinstance(error, ApiError) and isinstance(error, EtlError)
    assert f"GET {url}/apprenticeships?page_size=20" in message, message
    assert "api.max_response_bytes" in message and str(LIMIT) in message, message
    assert token not in message and PASSWORD not in message
    assert script.requests == 1  # a body over the limit will not shrink: not retried
    # Everything allocated while the request ran (server side included): a few times the limit, not 200 MB.
    assert peak < 8 * LIMIT, f"peak {peak / MiB:.1f} MiB while refusing a {BOMB_INFLATED // MiB} MiB bomb"


def test_a_plain_body_over_the_limit_is_refused_too():
    big = PAGE.replace(b'{"id":1}', b'{"id":1,"name":"' + b"x" * (LIMIT + 10) + b'"}')

    async def data(script, request):
        return web.Response(body=big, content_type="application/json")

    async def main():
        async with serve(Script(data)) as url, ApiClient(api_config(url, max_response_bytes=LIMIT), creds()) as c:
            with pytest.raises(ResponseTooLarge, match="larger than api.max_response_bytes"):
                await c.get_page("/programmes", {"page_size": 20}, entity="programmes")

    run(main())


def test_pages_under_the_limit_gzipped_or_not_are_read_whole():
    name = b"y" * (LIMIT - len(PAGE) - 100)
    page = PAGE.replace(b'{"id":1}', b'{"id":1,"name":"' + name + b'"}')
    assert len(page) < LIMIT

    async def data(script, request):
        if request.query.get("gzip"):
            return web.Response(
                body=gzip.compress(page), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
            )
        return web.Response(body=page, content_type="application/json")

    async def main():
        async with serve(Script(data)) as url, ApiClient(api_config(url, max_response_bytes=LIMIT), creds()) as c:
            plain = await c.get_page("/programmes", {"page_size": 20}, entity="programmes")
            zipped = await c.get_page("/programmes", {"page_size": 20, "gzip": 1}, entity="programmes")
        return plain, zipped

    plain, zipped = run(main())
    assert plain.body == page and zipped.body == page
    assert plain.doc["data"][0]["name"] == name.decode()


def test_the_default_limit_is_64_mib_and_the_key_is_validated():
    assert load_config("local", environ={}).api.max_response_bytes == 64 * MiB
    assert load_config("local", overrides={"api.max_response_bytes": "1024"}, environ={}).api.max_response_bytes == 1024
    for bad, why in (
        ("0", "must be a positive integer"),
        ("-5", "must be a positive integer"),
        ("lots", "must be an integer"),
    ):
        with pytest.raises(ConfigError) as error:
            load_config("local", overrides={"api.max_response_bytes": bad}, environ={})
        assert f"'api.max_response_bytes' {why}" in str(error.value)
