"""A small Flask app, imported from the project venv (ferrocorn --virtualenv)."""

import hashlib

from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.get("/flask/")
def index():
    return "flask ok\n"


@app.post("/flask/form")
def form():
    return "hello %s: %s\n" % (request.form["name"], request.form["comment"])


@app.post("/flask/upload")
def upload():
    uploaded = request.files["file"]
    data = uploaded.read()
    return jsonify(
        filename=uploaded.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        note=request.form.get("note"),
    )


@app.post("/flask/json")
def json_sum():
    data = request.get_json()
    return jsonify(sum=sum(data["values"]), echo=data), 201


@app.get("/flask/redirect")
def go_elsewhere():
    return redirect(url_for("target"))


@app.get("/flask/target")
def target():
    return "target reached\n"
