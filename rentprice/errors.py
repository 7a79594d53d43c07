"""Errors a user can act on: stages print them as one line instead of a traceback."""


class RentpriceError(Exception):
    """Base class for errors whose message is enough for the user to fix the problem."""


class DataError(RentpriceError):
    """Input data is missing, malformed or fails a check."""


class ModelError(RentpriceError):
    """A model file is missing, foreign or incompatible with this environment."""


class ParamsError(RentpriceError):
    """A value in params.yaml is missing or invalid."""
