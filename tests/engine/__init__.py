"""Behaviour tests of the engine, run over every embedded store."""
