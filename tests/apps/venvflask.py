"""A minimal Flask app behind /dedicated/, for test_pythons.py: it says
where Flask was imported from and which Python runs it, and takes a form
and JSON, so each CPython's venv shows it serves Flask from its own
site-packages."""

import sys

import flask
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/dedicated/flask")
def where():
    return jsonify(flask_file=flask.__file__, prefix=sys.prefix, version_info=list(sys.version_info[:3]))


@app.post("/dedicated/flask/form")
def form():
    return "hello %s: %s\n" % (request.form["name"], request.form["comment"])


@app.post("/dedicated/flask/json")
def json_sum():
    data = request.get_json()
    return jsonify(sum=sum(data["values"])), 201
