"""Helpers the tests share: scripted strategies, batch-queue checks, requirements."""
