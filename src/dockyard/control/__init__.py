"""The control plane: SageMaker hosting resources in a SQLite store, and the reconciler that
drives the runtime towards them."""
