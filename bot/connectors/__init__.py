"""Connectors: outside support backends that receive crowdcare's support events."""
