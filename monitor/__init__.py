"""The service shell of mmlr: CLI, scheduler, the E-utilities client, the PubMed parser,
polling, and the E-utilities replay server used by the demo and the tests."""
