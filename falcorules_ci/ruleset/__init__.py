"""Compiling collected rules into a ruleset, and the ``load_ruleset`` entry point."""
