"""Loopback checks shared by `doctor` and every platform: is a port free, does a URL answer."""

from __future__ import annotations

import socket

__all__ = ["port_free", "http_ok"]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (connections lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_ok(url: str, *, timeout_s: float) -> bool:
    """True when a GET of ``url`` (a 127.0.0.1 URL of the kit's own) answers 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - the kit's own loopback URLs
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
