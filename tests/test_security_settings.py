"""The production profile's settings and rules without a fleet (README "Security"): who app/access.py lets see the
internals, what nginx's profile lines say for each setting (accepted by nginx itself), and bad values refused
naming the variable.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from app.access import address_allowed, bearer_matches
from app.settings import Settings, SettingsError
from fleet.config import NGINX_TEMPLATE, FleetConfig, nginx_binary, profile_lines, render_nginx

KEY = "k" * 43
TOKEN = "Abc.def+ghi/jkl=mno_pqr-stu~vwx0123456789"
PRODUCTION = {"FLEET_ENV": "production", "FLEET_SECRET_KEY": KEY}


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


@pytest.mark.parametrize(
    ("values", "on"),
    [
        ({}, True),
        (PRODUCTION, False),
        ({**PRODUCTION, "FLEET_BENCHMARK_ENDPOINTS": "true"}, True),
        ({"FLEET_BENCHMARK_ENDPOINTS": "false"}, False),
        ({"FLEET_BENCHMARK_ENDPOINTS": "auto"}, True),
    ],
)
def test_benchmark_endpoints_are_off_in_production_unless_asked_for(values, on):
    assert Settings.from_mapping(values).benchmarks_on is on


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"FLEET_STATUS_ALLOW": "127.0.0.1,10.0.0.300"}, "FLEET_STATUS_ALLOW: "),
        ({"FLEET_STATUS_TOKEN": "short"}, "FLEET_STATUS_TOKEN: must be at least 32 characters"),
        ({"FLEET_STATUS_TOKEN": 'x"; default 1; ' + "y" * 32}, "FLEET_STATUS_TOKEN: may hold only"),
        ({"FLEET_BENCHMARK_ENDPOINTS": "sometimes"}, "FLEET_BENCHMARK_ENDPOINTS: must be auto, true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(values, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping(values)


def test_the_token_is_never_shown():
    settings = Settings.from_mapping({**PRODUCTION, "FLEET_STATUS_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)


def test_development_renders_the_template_unchanged_and_production_its_own_lines():
    template = NGINX_TEMPLATE.read_text()
    assert render_nginx(template, 8080, [8001, 8002], profile=profile_lines(Settings())) == template
    production = Settings.from_mapping({**PRODUCTION, "FLEET_STATUS_ALLOW": "127.0.0.1,10.1.0.0/16"})
    lines = profile_lines(production)
    assert "geo $fleet_production { default 1; }" in lines
    assert "geo $fleet_status_client { default 0; 127.0.0.1/32 1; 10.1.0.0/16 1; }" in lines
    assert "geo $fleet_benchmarks { default 0; }" in lines


def test_nginx_accepts_the_production_config_with_a_token(tmp_path):
    config = FleetConfig(var_dir=tmp_path, procs=2, app_env={**PRODUCTION, "FLEET_STATUS_TOKEN": TOKEN})
    config.write_runtime_files()
    # The token is in the owner-only include only, as a regex that matches exactly it.
    assert TOKEN not in (tmp_path / "nginx.conf").read_text()
    include = (tmp_path / "status-token.conf").read_text()
    pattern = re.search(r'"~(\^Bearer .*\$)" 1;', include)[1]  # the same in PCRE and Python for these characters
    assert re.match(pattern, f"Bearer {TOKEN}") and not re.match(pattern, f"Bearer {TOKEN}x")
    assert not re.match(pattern, "Bearer " + TOKEN.replace(".", "X").replace("+", "Y"))
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", f"{tmp_path}/nginx/", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
