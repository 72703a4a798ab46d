"""Factories and fakes that several test suites share (test modules never import each other)."""
