"""Reliability tests of the eapo CLI (a package, so its conftest.py and module names cannot clash with other
test folders; the tests import their shared helpers from `.reliability_support`)."""
