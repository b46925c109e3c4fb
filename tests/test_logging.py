"""Every server log line is printed once: Django's own console handler no longer doubles root's.

Django's default config gave the "django" logger a console handler that also propagated to root's
console handler, so each request line (daphne's runserver logs under django.channels.server) came out twice.
"""

import logging


def _handlers_below_root(name: str) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    logger = logging.getLogger(name)
    while logger is not None and logger is not logging.getLogger():
        handlers.extend(h for h in logger.handlers if not isinstance(h, logging.NullHandler))
        if not logger.propagate:
            break
        logger = logger.parent
    return handlers


def test_request_and_server_log_lines_are_printed_by_root_only():
    for name in ("django.channels.server", "django.request", "django.server", "cltv.services", "celery.worker"):
        assert _handlers_below_root(name) == [], name
    consoles = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    assert len(consoles) == 1
