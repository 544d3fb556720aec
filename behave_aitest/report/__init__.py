"""The report: one document, several renderings.

``document`` builds the versioned JSON document from behave's model and the records (stats,
shards merged); ``render`` turns it into HTML (``templates/``) and Markdown; ``diff`` compares a
run with a baseline. The behave formatters that write them are ``behave_aitest.formatter``.

May import every lower package, through ``run``. Never ``parallel`` or ``cli``.
"""
