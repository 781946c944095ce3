"""Shared test support: fake AWS and a moto server, git repositories, tiny Keras models,
records written by hand, scripts run under the container contract.

Tests import from here (never from each other); the benchmarks import the offline AWS
helpers too (``benchmarks/_common.py``).
"""
