"""Managed images: the catalogue of framework servers dockyard provides and their AWS URI aliases."""
