"""A real Flask app from the project venv, served through nginx and ferrocorn."""

import hashlib
import os

import requests


def test_index(flask_stack):
    response = requests.get(flask_stack.url("/flask/"), timeout=30)
    assert response.status_code == 200
    assert response.content == b"flask ok\n"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_form_post(flask_stack):
    response = requests.post(flask_stack.url("/flask/form"), data={"name": "Zoë", "comment": "a & b = c"}, timeout=30)
    assert response.status_code == 200
    assert response.content == "hello Zoë: a & b = c\n".encode("utf-8")


def test_multipart_file_upload(flask_stack):
    data = os.urandom(512 * 1024)
    response = requests.post(
        flask_stack.url("/flask/upload"),
        files={"file": ("payload.bin", data, "application/octet-stream")},
        data={"note": "with a note"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json() == {
        "filename": "payload.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "with a note",
    }


def test_json_in_and_out(flask_stack):
    payload = {"values": [1, 2, 3, 4.5], "label": "naïve"}
    response = requests.post(flask_stack.url("/flask/json"), json=payload, timeout=30)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"sum": 10.5, "echo": payload}


def test_redirect(flask_stack):
    response = requests.get(flask_stack.url("/flask/redirect"), allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert response.headers["Location"] == "/flask/target"
    followed = requests.get(flask_stack.url("/flask/redirect"), timeout=30)
    assert followed.status_code == 200
    assert followed.content == b"target reached\n"
    assert followed.url == flask_stack.url("/flask/target")
