"""Facts about an image, read from the image itself: its config (user, entrypoint, volumes,
env, ...) and, where they can be read without running it, its files (passwd, group, the
entrypoint script and the scripts it runs from a directory, owners, the program's file
capabilities), from the local engine or its registry, cached by digest.

    from hardener.facts import facts_for, lookup
    facts = facts_for("postgres:16")          # ImageFacts or None
    found = lookup("${IMAGE:-app}:1")         # Lookup(facts, reason)
    facts.program_caps()                      # ("NET_BIND_SERVICE",): setcap'd program
"""

from .caps import FileCaps
from .caps import decode as decode_file_caps
from .entrypoint import analyse_argv, analyse_script, script_target
from .lookup import DEFAULT_LAYER_CAP, DEFAULT_TIMEOUT, Lookup, facts_for, lookup, resolve_reference
from .model import Drop, EntrypointFacts, ImageFacts, Owner

__all__ = [
    "DEFAULT_LAYER_CAP", "DEFAULT_TIMEOUT", "Drop", "EntrypointFacts", "FileCaps", "ImageFacts", "Lookup", "Owner",
    "analyse_argv", "analyse_script", "decode_file_caps", "facts_for", "lookup", "resolve_reference", "script_target",
]
