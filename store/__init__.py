"""Persistence for mmlr: settings, tables, engines, sessions and migrations.

Everything else imports from here; this package imports nothing of ours.
"""
