"""The application make_app builds (app/web.py): the production key signs its cookies."""

from __future__ import annotations

from app.settings import Settings
from app.web import make_app

GOOD_KEY = "k" * 16 + "9f3c1e7a2b5d8c4e6f0a"  # 36 characters, not a placeholder

PRODUCTION = {"FLEET_ENV": "production", "FLEET_SECRET_KEY": GOOD_KEY}


def test_the_key_signs_cookies():
    app = make_app(Settings.from_mapping(PRODUCTION), None, blocking=None, port=1)
    assert app.settings["cookie_secret"] == GOOD_KEY
