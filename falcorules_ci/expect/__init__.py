"""Fixtures derived from Falcon IOAs, their expectations, and ATT&CK checks on rule tags."""
