"""A supervisord plugin (`[rpcinterface:fleet]` in deploy/supervisord.conf): add app processes to the running `app`
group and remove them, without touching the others.

supervisord itself cannot: the group's size is `numprocs`, read when the config is parsed, and `supervisorctl
update` replaces a changed group by stopping all of its processes and starting the new set (Supervisor issue
#1154). This plugin builds the new process's config from the same `[program:app]` section of the config file
(numprocs 1, numprocs_start = the port, so its name, command and log file are exactly those a bigger `numprocs`
would have made) and adds the process to the live group; supervisor_twiddler's addProgramToGroup does the same.
The group's parsed config is left as the file says, so a later `supervisorctl reread`/`update` sees no change and
restarts nothing. It runs inside supervisord: it imports nothing of the fleet.

Methods (XML-RPC, namespace `fleet`): `fleet.addAppProcesses([port, ...])` returns the new names (app-PORT), not
started (start them with supervisor.startProcess); `fleet.removeAppProcesses([name, ...])` drops stopped ones.
"""

from __future__ import annotations

from supervisor.options import UnhosedConfigParser
from supervisor.states import STOPPED_STATES
from supervisor.xmlrpc import Faults, RPCError

GROUP = "app"
SECTION = "program:app"


class FleetRPCInterface:
    def __init__(self, supervisord):
        self.supervisord = supervisord

    def _group(self):
        group = self.supervisord.process_groups.get(GROUP)
        if group is None:
            raise RPCError(Faults.BAD_NAME, f"group: {GROUP}")
        return group

    def addAppProcesses(self, ports):  # XML-RPC names follow supervisor's camelCase
        """Add one app process per port to the `app` group (stopped); returns their names.

        @param array ports  app ports (integers) not in the group yet
        @return array       the new process names, app-PORT
        """
        group = self._group()
        options = self.supervisord.options
        configs = []
        for port in ports:
            if not isinstance(port, int) or not 0 < port < 65536:
                raise RPCError(Faults.INCORRECT_PARAMETERS, f"not a port: {port!r}")
            parser = UnhosedConfigParser()
            parser.expansions = options.environ_expansions
            parser.read(options.configfile)
            parser.set(SECTION, "numprocs", "1")
            parser.set(SECTION, "numprocs_start", str(port))
            try:
                (config,) = options.processes_from_section(parser, SECTION, GROUP)
            except ValueError as exc:
                raise RPCError(Faults.INCORRECT_PARAMETERS, str(exc)) from None
            if config.name in group.processes:
                raise RPCError(Faults.ALREADY_ADDED, config.name)
            # What supervisord does to every process config after parsing ([supervisord] environment).
            config.environment = {**(getattr(options, "environment", None) or {}), **(config.environment or {})}
            configs.append(config)
        for config in configs:
            config.create_autochildlogs()
            group.processes[config.name] = config.make_process(group)
        return [config.name for config in configs]

    def removeAppProcesses(self, names):
        """Remove stopped app processes from the `app` group.

        @param array names  process names (app-PORT), each stopped
        @return boolean     always True unless error
        """
        group = self._group()
        for name in names:
            process = group.processes.get(name)
            if process is None:
                raise RPCError(Faults.BAD_NAME, name)
            if process.pid or process.get_state() not in STOPPED_STATES:
                raise RPCError(Faults.STILL_RUNNING, name)
        for name in names:
            del group.processes[name]
        return True


def make_rpcinterface(supervisord, **_config):
    return FleetRPCInterface(supervisord)
