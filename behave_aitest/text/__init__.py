"""Text that is safe to show: the bottom of the house.

``safetext`` escapes and caps untrusted text (model, tool and agent output) for every place it
is shown and makes report data encodable; ``redact`` is the one rule that keeps secrets out of
every output; ``files`` writes a file whole or not at all; ``patterns`` searches untrusted
text with a regular expression that cannot run away. They import only the standard library
(``patterns`` also the ``regex`` engine), so every other package may use them.
"""
