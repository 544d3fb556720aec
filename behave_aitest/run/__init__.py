"""One behave run.

``hooks`` are behave's hooks as plain functions (config and feature checks, start and stop);
``runtime`` holds what lives for the run (the event-loop portal, server scopes, live
conversations), with its parts ``conversation``, ``scopes`` (servers per scope), ``models``
(which model, the completer chain) and ``serverfeatures`` (resources and prompts); ``tags`` reads behave-aitest's own tags; ``reasons`` shapes step errors;
``repeats`` handles repeated runs and pass rates; ``quirks`` works around behave 1.3.3.

May import every lower package: ``errors``, ``text``, ``config``, ``model``, ``record``,
``mcp``, ``agent``. Never ``report``, ``parallel`` or ``cli``.
"""
