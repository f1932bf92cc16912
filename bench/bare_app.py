"""A WSGI app that does nothing: bench/load.py serves it under the same gunicorn + gevent as the
web process, so the tail the machine and the server add on their own is measured beside ours."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
    return [b'{"status":"ok"}']
