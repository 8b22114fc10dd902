"""dockyard: the SageMaker hosting plane you run yourself.

Kept import-free on purpose: ``dockyard.serving`` runs inside containers and must not pull in the
rest of the package through this module.
"""

__version__ = "0.1.0"
