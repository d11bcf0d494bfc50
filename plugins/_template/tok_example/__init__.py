"""tok-example: a template tokcore plugin."""

from importlib.metadata import version as _version

__version__ = _version("tok-example")
