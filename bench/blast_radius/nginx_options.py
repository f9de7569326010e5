"""The nginx options the blast radius compares: deploy/nginx.conf as shipped, or with one option changed by a regex
edit of the rendered config (an edit that no longer matches is an error, so a renamed directive cannot silently
make two options the same)."""

from __future__ import annotations

import dataclasses
import re

from bench.errors import BenchError
from bench.tuning import NO_KEEPALIVE_EDITS


@dataclasses.dataclass(frozen=True)
class Edit:
    """A regex substitution on the rendered nginx.conf; it must match (count=0: every match, at least one)."""

    pattern: str
    replacement: str
    count: int = 1


# The alternative to stall shedding, compared and rejected: added to `location /` for the comparison, fast
# idempotent routes get a short read timeout and are retried once on another process when it fires.
FAST_READ_TIMEOUT = "500ms"
ADD_FAST_ROUTE_TIMEOUT = Edit(
    r"^([ \t]*)proxy_send_timeout 30s;\n",
    r"\g<0>\1location ~ ^/(json|plaintext|db|fortunes)$ {\n"
    r"\1    proxy_pass http://app;\n"
    r"\1    proxy_next_upstream error timeout;\n"
    r"\1    proxy_next_upstream_tries 2;\n"
    rf"\1    proxy_read_timeout {FAST_READ_TIMEOUT};\n"
    r"\1}\n",
)
# The first version's setting: a process that failed a request is skipped for 2 s.
MAX_FAILS_1 = Edit(r"max_fails=0;", "max_fails=1 fail_timeout=2s;", count=0)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    edits: tuple[Edit, ...] = ()

    def apply(self, conf: str) -> str:
        for edit in self.edits:
            conf, matched = re.subn(edit.pattern, edit.replacement, conf, count=edit.count, flags=re.M)
            if not matched:
                raise BenchError(f"nginx option {self.name!r}: {edit.pattern!r} matches nothing in nginx.conf")
        return conf


SHIPPED = "least_conn"


def variants() -> dict[str, Variant]:
    """The nginx options compared: deploy/nginx.conf as shipped, or with the changes named."""
    # The first version's upstream: a new connection to a process for every request.
    no_keepalive = tuple(Edit(pattern, replacement) for pattern, replacement in NO_KEEPALIVE_EDITS)
    timeout_everywhere = (
        Edit(r"^([ \t]*)proxy_next_upstream error;$", r"\1proxy_next_upstream error timeout;"),
        Edit(r"^([ \t]*)proxy_read_timeout 30s;$", rf"\1proxy_read_timeout {FAST_READ_TIMEOUT};"),
    )
    found = [
        Variant("round-robin", "round robin instead of least_conn", (Edit(r"^[ \t]*least_conn;\n", ""),)),
        Variant(
            SHIPPED,
            "deploy/nginx.conf as shipped: least_conn, upstream keep-alive, retry on connection errors only, "
            "max_fails=0",
        ),
        Variant("no-keepalive", "without upstream keep-alive (a new connection per request)", no_keepalive),
        Variant(
            "max_fails=1", "max_fails=1 fail_timeout=2s: a process that failed a request is skipped 2 s", (MAX_FAILS_1,)
        ),
        Variant(
            "fast-timeout",
            f"+ /json, /plaintext, /db, /fortunes: read timeout {FAST_READ_TIMEOUT}, retried once on timeout; "
            "max_fails=1 fail_timeout=2s (a timeout takes the process out for 2 s)",
            (ADD_FAST_ROUTE_TIMEOUT, MAX_FAILS_1),
        ),
        Variant(
            "fast-timeout,max_fails=0",
            "the same with max_fails=0 (a timeout does not take the process out)",
            (ADD_FAST_ROUTE_TIMEOUT,),
        ),
        Variant(
            "timeout-everywhere",
            f"every route: read timeout {FAST_READ_TIMEOUT} and retry on timeout (never do this)",
            timeout_everywhere,
        ),
    ]
    return {v.name: v for v in found}
