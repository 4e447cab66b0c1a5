"""Test infrastructure shared by the suites: real servers started per session, service checks."""
