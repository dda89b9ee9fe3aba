"""The version of pixbox (read by pyproject.toml and pixbox.__version__)."""

__version__ = "0.1.0"
