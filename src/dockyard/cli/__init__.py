"""The ``dockyard`` command line."""
