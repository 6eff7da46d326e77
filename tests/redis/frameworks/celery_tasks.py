"""The Celery app of the Celery tests. Tests build their own with make_app(url) (an app caches
its broker connections); the worker imports `app`, whose broker is CELERY_BROKER_URL."""

import os

from celery import Celery


def _add(x, y):
    return x + y


def make_app(broker_url: str):
    app = Celery("mqwatch_tests", broker=broker_url)
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
    add = app.task(name="tests.add")(_add)
    return app, add


app, add = make_app(os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
