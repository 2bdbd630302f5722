"""The base class of errors a user can fix (bad input, config, missing or unreadable file).

Library code raises a subclass whose message names the file, key or parameter and the fix;
every CLI (through ``training.cli.run_cli``) prints that message alone and exits with
status 2, without a traceback. Subclasses keep their builtin base too (``ConfigError`` is
still a ``ValueError``), so existing ``except`` clauses keep working.
"""
from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what to fix; not a bug in the framework."""


class ConfigError(UserError, ValueError):
    """A config file, key or override is invalid; the message names the key and the fix.
    (Defined here, not in training/config.py, so models and engine code can raise it without
    importing the config loader.)"""
