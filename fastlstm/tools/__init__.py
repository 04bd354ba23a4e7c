"""The command line's verbs: bench and demo."""
