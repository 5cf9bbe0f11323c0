"""On-device speech emotion recognition: frontend, model bundle, classifier and CLI.

Importing ``edge`` is cheap: submodules are imported by whoever needs them, so a command
pays only for what it uses (the CLI never loads a TFLite runtime for ``--help``).
"""

__version__ = "0.1.0"
