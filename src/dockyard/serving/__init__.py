"""dockyard's model server: runs inside a managed container, or as a child process.

It implements the SageMaker container contract (``serve``; ``GET /ping``, ``POST /invocations`` on
SAGEMAKER_BIND_TO_PORT) and the SageMaker inference toolkit's handler protocol (``model_fn``,
``input_fn``, ``predict_fn``, ``output_fn``, ``transform_fn`` in SAGEMAKER_PROGRAM), with one
module per framework under ``frameworks``. It imports nothing from the rest of dockyard, because it
ships into images on its own, and imports a framework only when asked to serve it.

Modules: ``settings`` (environment), ``server`` (HTTP and start-up), ``handlers`` (the user
module), ``pipeline`` (one request through the handlers), ``codecs`` (default content types),
``runners`` and ``process_pool`` (where predictions run), ``safe_unpickle`` (restricted model
loading), ``errors``.
"""
