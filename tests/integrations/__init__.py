"""Integration tests with TRL and verl (a package, so its conftest.py and module names cannot clash with other
test folders; the tests import their shared helpers from `.fixed_batch` and `.random_llama`)."""
