"""User-facing errors.

Every error a user can fix (a bad config, an unknown component, bad input data) is a
`TokcoreError`: its message is one line that says where, what, and how to fix it. The CLI
prints it without a traceback and exits 2. Anything else is a bug or a runtime failure.
"""

from __future__ import annotations


class TokcoreError(Exception):
    """An error the user can fix; `str(err)` is one complete line."""


class ConfigError(TokcoreError):
    """A config file, key or value is wrong.

    `file` and `key` locate the problem; either may be filled in later by the code that
    knows it (the config loader knows which file a key came from, a component does not).
    """

    def __init__(self, message: str, *, key: str = "", file: str = ""):
        super().__init__(message)
        self.message = message
        self.key = key
        self.file = file

    def located(self, *, file: str = "", prefix: str = "") -> "ConfigError":
        """A copy with the file set and `prefix` put before the key (`model.quantizer` + `dim`)."""
        key = ".".join(p for p in (prefix, self.key) if p)
        return ConfigError(self.message, key=key, file=self.file or file)

    def __str__(self) -> str:
        return ": ".join(p for p in (self.file, self.key, self.message) if p)


class RegistryError(TokcoreError):
    """A component name is unknown, ambiguous, or its plugin cannot be used."""


class PluginLoadError(RegistryError):
    """A plugin's module failed to import; the rest of the registry keeps working."""


class InputError(TokcoreError):
    """A data sample is invalid; the message names the sample and the fix."""
