"""Fixtures shared by the project's own tests."""

pytest_plugins = ["pytester"]
