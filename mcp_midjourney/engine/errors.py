"""The engine's one error: something the model must be told, in words it can act on."""


class EngineError(Exception):
    """Something the model must be told, in words it can act on."""
