"""The base URL's encoding (extract/url.py, urllib.parse only) is what yarl's `URL` gave, which it replaced."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from multiverse_etl.extract.redaction import safe_url
from multiverse_etl.extract.url import encoded, path_of, without_userinfo

# (configured URL, encoded, encoded path)
CASES = [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000", "/"),
    ("https://api.example.com/v1/", "https://api.example.com/v1/", "/v1/"),
    ("http://user:p%40ss@h.example:81/api", "http://user:p%40ss@h.example:81/api", "/api"),
    ("http://[::1]:8000", "http://[::1]:8000", "/"),
    ("http://[2001:db8::1]:81/p", "http://[2001:db8::1]:81/p", "/p"),
    ("HTTP://API.Example.COM/V1", "http://api.example.com/V1", "/V1"),
    ("http://h:80/", "http://h/", "/"),
    ("https://h:443/p", "https://h/p", "/p"),
    ("https://H.example:8443/base path/v2/", "https://h.example:8443/base%20path/v2/", "/base%20path/v2/"),
    ("http://h/caf\u00e9/x", "http://h/caf%C3%A9/x", "/caf%C3%A9/x"),
    ("http://b\u00fccher.example/x", "http://xn--bcher-kva.example/x", "/x"),
    ("http://h/a%2fb/%7E", "http://h/a%2Fb/~", "/a%2Fb/~"),
    ("http://h/%3a%40%21%2b%2F%25%20", "http://h/:@!%2B%2F%25%20", "/:@!%2B%2F%25%20"),
    ("http://h/50%/x", "http://h/50%25/x", "/50%25/x"),
    ("http://h/%zz", "http://h/%25zz", "/%25zz"),
    ("http://h/p;x=1/(a)!*'", "http://h/p;x=1/(a)!*'", "/p;x=1/(a)!*'"),
    ("http://h/a+b/@:/~", "http://h/a+b/@:/~", "/a+b/@:/~"),
    ('http://h/a|b{c}^`"<>', "http://h/a%7Cb%7Bc%7D%5E%60%22%3C%3E", "/a%7Cb%7Bc%7D%5E%60%22%3C%3E"),
    ("http://us er:pa ss@h/x", "http://us%20er:pa%20ss@h/x", "/x"),
    ("http://u%3Ax:p%3a%2F@h/", "http://u%3Ax:p%3A%2F@h/", "/"),
    ("http://h/a?b=c&e=%2F", "http://h/a?b=c&e=/", "/a"),
    ("http://h/a#frag x", "http://h/a#frag%20x", "/a"),
]


@pytest.mark.parametrize("url,expected,path", CASES)
def test_a_base_url_is_encoded_as_yarl_encoded_it(url, expected, path):
    assert encoded(url) == expected and path_of(url) == path
    assert encoded(expected) == expected  # encoding is idempotent: what is encoded stays as it is
    try:
        from yarl import URL  # a test dependency (with aiohttp): compare with it where it is installed
    except ImportError:
        return
    assert str(URL(url)) == expected and URL(url).raw_path == path


def test_user_info_is_left_out_of_what_logs_and_messages_show():
    assert without_userinfo("http://user:p%40ss@h.example:81/api") == "http://h.example:81/api"
    assert without_userinfo("http://user@h/x") == "http://h/x"
    assert without_userinfo("http://[::1]:8000/v1") == "http://[::1]:8000/v1"  # none: unchanged
    assert safe_url("http://user:s3cret@Example.com/v1") == "http://example.com/v1"
    assert safe_url("https://api.example.com/v1/") == "https://api.example.com/v1/"
    assert "s3cret" not in safe_url("http://user:s3cret@h:8000")


def test_the_extractor_and_the_jobs_import_without_aiohttp_or_yarl():
    # aiohttp (with yarl) is a test dependency only (setup.py): nothing the jobs import at run time may need it.
    code = (
        "import sys\n"
        "for name in ('aiohttp', 'yarl', 'multidict'):\n"
        "    sys.modules[name] = None  # an import of it fails\n"
        "import multiverse_etl.cli, multiverse_etl.extract, multiverse_etl.extract.server_clock\n"
        "import multiverse_etl.glue, multiverse_etl.maintain, multiverse_etl.pipeline, multiverse_etl.submit\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
