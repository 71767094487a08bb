"""The `seance` command. Each part registers its commands here by dotted path and is imported only
when its command runs, so `seance secrets …` never pays for the gateway's imports and vice versa."""

from __future__ import annotations

import importlib

import click

from seance import __version__

# command name -> "module:attribute" of a click.Command
COMMANDS = {
    "check": "seance.gateway.check:check",
    "gateway": "seance.gateway.cli:gateway",
    "import-litellm": "seance.gateway.import_cli:import_litellm",
    "secrets": "seance.secrets.cli:secrets",
    "synth": "seance.deploy.cli:synth",
    "deploy": "seance.deploy.cli:deploy",
}


class Interrupted(click.ClickException):
    exit_code = 130  # as a shell reports a command stopped by Ctrl-C


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        # click would print "Aborted!"; every other failure is one "Error: ..." line, so this is too
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            raise Interrupted("interrupted (Ctrl-C); nothing more was done") from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise  # a missing dependency is a bug to see, not a missing part
            # The container image holds the gateway only: say so instead of a traceback.
            raise click.UsageError(f"'seance {cmd_name}' is not part of this installation") from None
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="seance")
def main() -> None:
    """Seance: LLM gateway, SOPS secrets and Kubernetes deploy tooling."""
