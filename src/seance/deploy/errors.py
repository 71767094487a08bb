"""The one error type of `seance.deploy`: its message is a single line meant for the operator."""


class DeployError(Exception):
    pass
