"""A small Flask app, imported from the project venv (ferrocorn --virtualenv)."""

import hashlib
import os
import time

from flask import Flask, Response, jsonify, redirect, request, session, stream_with_context, url_for

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


# --- used by test_real_flask.py: a JSON API, streaming, sessions and cookies ---

app.secret_key = "ferrocorn-e2e-not-a-secret"


@app.errorhandler(404)
def not_found(error):
    if request.path.startswith("/flask/api/"):
        return jsonify(error="not found", path=request.path), 404
    return error


@app.get("/flask/api/squares")
def squares():
    """A JSON list whose bytes the test can rebuild: `n` objects."""
    n = request.args.get("n", default=10, type=int)
    return jsonify([{"n": i, "square": i * i, "label": "nº%d" % i} for i in range(n)])


@app.route("/flask/api/echo", methods=["POST", "PUT", "PATCH"])
def api_echo():
    data = request.get_json()  # malformed JSON is Flask's own 400
    return jsonify(method=request.method, data=data, args=request.args.to_dict(flat=False))


@app.get("/flask/stream/lines")
def stream_lines():
    """`count` lines, one per yield, no Content-Length: nginx sends them chunked."""
    count = request.args.get("count", default=5, type=int)

    @stream_with_context
    def generate():
        for i in range(count):
            yield "line %d of %d (%s)\n" % (i + 1, count, request.args.get("tag", "-"))

    return Response(generate(), mimetype="text/plain")


@app.get("/flask/live/gate")
def stream_until_gate():
    """Yields one chunk, waits until the test creates the file `path`, then yields the rest."""
    path = request.args["path"]

    def generate():
        yield "first\n"
        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "released\n" if os.path.exists(path) else "timed out\n"

    return Response(generate(), mimetype="text/plain")


@app.post("/flask/session/cart")
def cart_add():
    session["cart"] = session.get("cart", []) + [request.form["item"]]
    return jsonify(cart=session["cart"])


@app.get("/flask/session/cart")
def cart_show():
    return jsonify(cart=session.get("cart", []))


@app.post("/flask/session/clear")
def cart_clear():
    session.clear()
    return jsonify(cart=[])


@app.get("/flask/cookies/set")
def cookies_set():
    response = jsonify(seen=request.cookies.get("theme"))
    response.set_cookie("theme", request.args["theme"], max_age=3600, path="/flask/", httponly=True, samesite="Lax")
    response.set_cookie("visits", str(int(request.cookies.get("visits", "0")) + 1), path="/flask/")
    return response


@app.get("/flask/cookies/show")
def cookies_show():
    return jsonify(dict(request.cookies))


@app.get("/flask/cookies/forget")
def cookies_forget():
    response = jsonify(forgotten="theme")
    response.delete_cookie("theme", path="/flask/")
    return response
