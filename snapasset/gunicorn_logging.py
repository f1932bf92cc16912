"""The web process's gunicorn logger (the Procfile's `--logger-class`): gunicorn's own, with every
line passed through snapasset.redaction first — the access log's request line and referrer carry
the SSE routes' `?access_token=` and `?token=` credentials."""

from __future__ import annotations

from gunicorn.glogging import Logger

from snapasset.redaction import install_log_redaction

__all__ = ["RedactingLogger"]


class RedactingLogger(Logger):
    def setup(self, cfg) -> None:
        install_log_redaction()   # process-wide: the app's own log lines too
        super().setup(cfg)
