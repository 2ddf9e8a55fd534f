"""The Flask part of the benchmark app: a JSON endpoint, mounted by hello.py
under /flask/ (the route carries the full path, so no prefix is stripped)."""

from flask import Flask, jsonify

app = Flask(__name__)

# What /flask/json answers; the nginx-only rows send json.dumps of it verbatim.
JSON_PAYLOAD = {"message": "Hello, World!", "framework": "flask", "items": [1, 2, 3]}


@app.get("/flask/json")
def json_endpoint():
    return jsonify(JSON_PAYLOAD)
