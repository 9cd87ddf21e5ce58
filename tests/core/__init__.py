"""Tests of eapo.core (a package, so its module names cannot clash with other test folders)."""
