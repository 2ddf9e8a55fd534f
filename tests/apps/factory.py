"""App factories, for the MODULE:APP forms `mod:create_app()`, `mod:make('x')` and `mod`."""


def _greeter(greeting):
    def app(environ, start_response):
        body = greeting.encode("utf-8") + b"\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def create_app():
    return _greeter("made by create_app()")


def make(greeting, punctuation="!"):
    return _greeter(greeting + punctuation)


# `ferrocorn factory` (no :APP) serves this name, like Gunicorn.
application = _greeter("module-level application")
