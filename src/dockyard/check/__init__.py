"""``dockyard check``: run a container and test it against the SageMaker container contract.

``results`` (check records and the report), ``contract`` (the checks, in order), ``targets``
(a directory or managed image run as a process), ``docker_target`` (an image run by a container
engine through the ``docker`` SDK), ``procnet`` (which ports a process listens on).
"""
