"""Apps that raise or break the WSGI contract: 500 or a cut response, a log line, and the worker lives on."""

import uuid

import pytest
import requests

from httpraw import curl


def assert_still_serving(stack, times=4):
    for _ in range(times):
        response = requests.get(stack.url("/broken/ok"), timeout=30)
        assert response.status_code == 200
        assert response.content.startswith(b"ok ")


def test_exception_before_start_response_is_500_with_traceback(broken):
    token = uuid.uuid4().hex
    marks = broken.ferrocorn.log_marks()
    response = requests.get(broken.url("/broken/raise_before?%s" % token), timeout=30)
    assert response.status_code == 500
    broken.ferrocorn.wait_for_log("Traceback", since=marks)
    broken.ferrocorn.wait_for_log("RuntimeError: boom before start_response %s" % token, since=marks)
    assert_still_serving(broken)


@pytest.mark.parametrize("endpoint", ["raise_after", "raise_after_length"])
def test_exception_after_first_chunk_cuts_the_response(broken, endpoint):
    token = uuid.uuid4().hex
    marks = broken.ferrocorn.log_marks()
    result = curl("-o", "/dev/null", broken.url("/broken/%s?%s" % (endpoint, token)))
    # curl 18 (body cut short) once nginx sent the head, 52 (empty reply) when
    # nginx still held it: either way the client never sees a complete response.
    assert result.returncode in (18, 52, 56), (result.returncode, result.stderr)
    broken.ferrocorn.wait_for_log("boom after first chunk.* %s" % token, since=marks)
    assert_still_serving(broken)


def test_exception_after_first_chunk_is_incomplete_for_requests(broken):
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(broken.url("/broken/raise_after?%s" % uuid.uuid4().hex), timeout=30)
    assert_still_serving(broken)


# (endpoint, regex that a log line naming the problem must match)
CONTRACT_BREAKS = [
    ("str_body", r"(?i)bytes"),
    # uWSGI sends a bare bytes object (test_uwsgi_compat.py), not these.
    ("bare_str", r"TypeError: the app returned a str, not an iterable of bytes: encode it"),
    ("bare_bytearray", r"TypeError: the app returned a bytearray, not an iterable of bytes: return \[bytes\(body\)\]"),
    ("non_iterable", r"(?i)iterable"),
    ("bad_status", r"(?i)status.*abc|abc.*status"),
    ("newline_header", r"(?i)header"),
    ("no_start_response", r"(?i)start_response"),
]


@pytest.mark.parametrize("endpoint,log_pattern", CONTRACT_BREAKS, ids=[c[0] for c in CONTRACT_BREAKS])
def test_contract_break_is_500_with_a_log_line(broken, endpoint, log_pattern):
    marks = broken.ferrocorn.log_marks()
    response = requests.get(broken.url("/broken/%s" % endpoint), timeout=30)
    assert response.status_code == 500
    assert b"evil" not in response.content
    assert "evil" not in response.headers.get("Set-Cookie", "")
    broken.ferrocorn.wait_for_log(log_pattern, since=marks)
    assert_still_serving(broken)
