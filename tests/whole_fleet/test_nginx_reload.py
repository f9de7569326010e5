"""fleet/nginx_reload.py on a running fleet: it returns only once nginx answers every request with the new
config, and refuses a config nginx rejects.
"""

from __future__ import annotations

import pytest

from fleet import nginx_reload
from fleet.supervisor import Supervisor
from tests.client import get


@pytest.mark.fleet
def test_nginx_reload_returns_once_the_new_config_serves_requests(start_fleet):
    config = start_fleet(mode="threads", procs=1)
    supervisor = Supervisor(config.socket)
    deployed = (config.var_dir / "nginx.conf").read_text()
    for round_ in range(3):
        location = f"server_name _;\n        location = /round {{ return 200 'round {round_}'; }}"
        nginx_reload.load(config, supervisor, deployed.replace("server_name _;", location, 1), f"round {round_}")
        # No wait: when load returns, every request is answered by the new config.
        assert get(f"{config.url}/round").body == f"round {round_}".encode()
    broken = deployed.replace("server_name _;", "server_name _;\n        no_such_directive;", 1)
    with pytest.raises(nginx_reload.ReloadError, match="nginx rejects config 'broken'"):
        nginx_reload.load(config, supervisor, broken, "broken")
