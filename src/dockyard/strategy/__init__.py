"""The container-selection flow as code: which strategy fits (``advisor``), a runnable project for
it (``scaffolds`` and the files under ``templates/``), and a saved model turned into SageMaker model
data for its framework (``packaging``, behind ``dockyard package``)."""
