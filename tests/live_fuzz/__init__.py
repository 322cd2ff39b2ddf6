"""The live fuzz of tests/test_live_fuzz.py: its server, messages, model and client."""
