"""A plain script that publishes with `asgi_sse.redis.Publisher`, as a Celery worker or a
cron job would (test_redis_publisher.py runs it in a process of its own).

``python -m tests.support.publish_script URL PREFIX TOPIC COUNT [--close]``: publishes
``script 0`` ... ``script <COUNT-1>`` to ``TOPIC``, prints each id on a line, and with
``--close`` closes the topic after them.
"""

from __future__ import annotations

import sys

from asgi_sse.redis import Publisher


def main(argv: list[str]) -> None:
    url, prefix, topic, count = argv[:4]
    publisher = Publisher(url, prefix=prefix)
    try:
        for number in range(int(count)):
            print(publisher.publish(topic, f"script {number}"), flush=True)
        if "--close" in argv[4:]:
            publisher.close_topic(topic)
    finally:
        publisher.disconnect()


if __name__ == "__main__":
    main(sys.argv[1:])
