"""The one error the sampler layer raises for a value the parameter contract does not allow."""


class ParameterError(ValueError):
    """A parameter name or value that the contract does not allow."""
