"""Who app/access.py lets see the internals (README "Security"): the allow-list of addresses and
networks, and only the exact bearer token.
"""

from __future__ import annotations

import pytest

from app.access import address_allowed, bearer_matches

TOKEN = "Abc.def+ghi/jkl=mno_pqr-stu~vwx0123456789"


@pytest.mark.parametrize(
    ("address", "allow", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1,::1", True),
        ("::1", "127.0.0.1,::1", True),
        ("127.0.0.2", "127.0.0.1,::1", False),
        ("::ffff:127.0.0.1", "127.0.0.1", True),  # an IPv4 client on a dual-stack socket
        ("10.1.2.3", "10.1.0.0/16", True),
        ("10.2.0.1", "10.1.0.0/16", False),
        ("not-an-address", "0.0.0.0/0", False),
        ("127.0.0.1", "", False),
    ],
)
def test_addresses_in_the_allow_list_see_the_internals(address, allow, allowed):
    assert address_allowed(address, allow) is allowed


def test_only_the_exact_bearer_token_counts():
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_matches(f"bearer {TOKEN}", TOKEN)  # the scheme is case-insensitive (RFC 7235)
    for header in (None, "", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer "):
        assert not bearer_matches(header, TOKEN), header
    assert not bearer_matches("Bearer ", "")  # no token set: nobody gets in by token
