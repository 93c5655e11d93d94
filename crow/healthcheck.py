"""``python -m crow.healthcheck``: exit 0 if this container's server answers ``/v2/``, else 1.

The image's ``HEALTHCHECK``: it asks the server at ``CROW_BIND`` (a wildcard host is asked on
loopback) over HTTPS when ``CROW_TLS_CERT`` is set, without checking the certificate (it names the
public host, not loopback). 200 (an open registry) and 401 (a login is wanted) are both healthy.
"""

import http.client
import ssl
import sys

from crow import serve

HEALTHY = {200, 401}
TIMEOUT = 5.0  # seconds; the image's HEALTHCHECK --timeout is longer


def connection(config: serve.Settings, tls: bool) -> http.client.HTTPConnection:
    if config.uds is not None:
        raise SystemExit("crow.healthcheck: a Unix socket (CROW_BIND=unix:...) is not checked")
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", None) else config.host
    host = "::1" if host == "::" else host
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host, config.port, timeout=TIMEOUT, context=context)
    return http.client.HTTPConnection(host, config.port, timeout=TIMEOUT)


def status() -> int:
    """The status of ``GET /v2/`` on this server."""
    config = serve.settings()
    client = connection(config, config.tls is not None)
    try:
        client.request("GET", "/v2/")
        return client.getresponse().status
    finally:
        client.close()


def main() -> None:
    try:
        answer = status()
    except OSError as exc:
        print(f"crow.healthcheck: no answer: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if answer not in HEALTHY:
        print(f"crow.healthcheck: /v2/ answered {answer}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
